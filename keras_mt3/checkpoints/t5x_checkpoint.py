"""Reads the model parameters of a T5X checkpoint directory with msgpack + NumPy only.

A T5X checkpoint directory holds a `checkpoint` file, a flax msgpack tree
`{"version", "optimizer": {"target": params, "state": ...}}`, and one zarr v2 folder per large
parameter. In the tree, arrays are msgpack extension objects; large arrays are replaced by a
TensorStore spec naming their zarr folder (relative to the checkpoint directory). Only
`optimizer/target` (the model weights) is read.
"""

import gzip
import json
import math
import pathlib
import zlib

import msgpack
import numpy as np

from keras_mt3.errors import CheckpointError
from keras_mt3.utils import progress_bar

CHECKPOINT_FILE = "checkpoint"

# flax.serialization extension codes.
_EXT_NDARRAY = 1
_EXT_COMPLEX = 2
_EXT_NUMPY_SCALAR = 3
_CHUNKED_ARRAY_KEY = "__msgpack_chunked_array__"


def read_t5x_checkpoint(directory, progress=None):
    """Returns `{t5x parameter name: float ndarray}` for the model weights of a checkpoint.

    Names are slash-joined tree paths below `optimizer/target`, e.g.
    `"encoder/layers_0/attention/query/kernel"`.

    Raises:
        CheckpointError: the directory, its `checkpoint` file or a zarr folder is missing,
            unreadable, corrupt, or inconsistent with the tree's specs.
    """
    directory = pathlib.Path(directory).expanduser()
    if not directory.is_dir():
        raise CheckpointError(
            f"T5X checkpoint directory {str(directory)!r} does not exist. Pass the folder that "
            f"holds the `{CHECKPOINT_FILE}` file and the `target.*` zarr folders."
        )
    tree = _read_tree(directory / CHECKPOINT_FILE)
    optimizer = tree.get("optimizer") if isinstance(tree, dict) else None
    target = optimizer.get("target") if isinstance(optimizer, dict) else None
    if not isinstance(target, dict) or not target:
        raise CheckpointError(
            f"{directory / CHECKPOINT_FILE} holds no `optimizer/target` parameters; it is not a "
            "T5X training checkpoint. Point to the checkpoint directory of a T5X model."
        )
    leaves = dict(_flatten(target))
    specs = {name: leaf for name, leaf in leaves.items() if _is_tensorstore_spec(leaf)}
    folders = {name: _zarr_folder(directory, name, spec) for name, spec in specs.items()}
    _check_folders_match_specs(directory, folders)

    params = {}
    bar = progress_bar(total=len(leaves), desc="reading checkpoint", unit="param", enabled=progress)
    with bar:
        for name, leaf in leaves.items():
            if name in specs:
                params[name] = _read_zarr_array(folders[name], name, specs[name])
            else:
                params[name] = _inline_array(leaf, name)
            bar.update(1)
    return params


# ---- the msgpack tree -----------------------------------------------------------------------


def _read_tree(path):
    if not path.is_file():
        raise CheckpointError(
            f"{path.parent} is not a T5X checkpoint: it has no `{CHECKPOINT_FILE}` file. Pass the "
            "directory of a T5X checkpoint (e.g. the one holding `checkpoint` and `target.*/`)."
        )
    try:
        raw = path.read_bytes()
        return msgpack.unpackb(raw, ext_hook=_decode_extension, raw=False, strict_map_key=False)
    except CheckpointError:
        raise
    except Exception as error:  # msgpack raises several unrelated types for bad input
        raise CheckpointError(
            f"{path} is not a readable flax msgpack checkpoint ({type(error).__name__}: {error}). "
            "The file may be truncated or not a T5X checkpoint; download it again."
        ) from error


def _decode_extension(code, data):
    if code == _EXT_NDARRAY:
        return _array_from_bytes(data)
    if code == _EXT_NUMPY_SCALAR:
        return _array_from_bytes(data)[()]
    if code == _EXT_COMPLEX:
        real, imag = msgpack.unpackb(data)
        return complex(real, imag)
    raise CheckpointError(f"unknown msgpack extension type {code} in the checkpoint tree")


def _array_from_bytes(data):
    shape, dtype_name, buffer = msgpack.unpackb(data, raw=False)
    try:
        dtype = np.dtype(dtype_name)
    except TypeError as error:
        raise CheckpointError(
            f"the checkpoint stores an array of unsupported dtype {dtype_name!r}"
        ) from error
    expected = math.prod(shape) * dtype.itemsize
    if len(buffer) != expected:
        raise CheckpointError(
            f"an inline array of shape {tuple(shape)} {dtype} holds {len(buffer)} bytes instead of "
            f"{expected}; the checkpoint file is corrupt"
        )
    return np.frombuffer(buffer, dtype=dtype).reshape(shape).copy()  # writable, owns its memory


def _flatten(tree, prefix=""):
    """Yields `(slash/joined/name, leaf)`; spec dicts and chunked arrays count as leaves."""
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not _is_tensorstore_spec(value):
            if _CHUNKED_ARRAY_KEY in value:
                yield name, _join_chunks(value, name)
            else:
                yield from _flatten(value, name + "/")
        else:
            yield name, value


def _join_chunks(chunked, name):
    # flax splits arrays over 2**30 bytes into flat pieces: {"shape": {"0": d0, ...},
    # "chunks": {"0": piece0, ...}} (tuples stored as dicts keyed by position).
    try:
        shape = tuple(chunked["shape"][str(i)] for i in range(len(chunked["shape"])))
        pieces = [chunked["chunks"][str(i)] for i in range(len(chunked["chunks"]))]
        return np.concatenate([np.ravel(piece) for piece in pieces]).reshape(shape)
    except (KeyError, ValueError, TypeError) as error:
        raise CheckpointError(f"chunked array {name!r} in the checkpoint is malformed") from error


def _is_tensorstore_spec(value):
    return isinstance(value, dict) and "driver" in value and "kvstore" in value


def _inline_array(leaf, name):
    if isinstance(leaf, np.ndarray):
        return leaf
    if isinstance(leaf, (np.generic, int, float)):
        return np.asarray(leaf)
    raise CheckpointError(f"parameter {name!r} is neither an array nor a zarr spec: {leaf!r}")


# ---- zarr folders ---------------------------------------------------------------------------


def _zarr_folder(directory, name, spec):
    if spec.get("driver") != "zarr":
        raise CheckpointError(
            f"parameter {name!r} uses TensorStore driver {spec.get('driver')!r}; only zarr "
            "checkpoints are supported"
        )
    path = str(spec["kvstore"].get("path", "")).rstrip("/")
    if "://" in path or path.startswith("/"):
        # An absolute or remote location (gs://...) recorded before the checkpoint was copied
        # here: its folder is looked up by name beside the `checkpoint` file.
        path = path.rsplit("/", 1)[-1]
    return directory / path


def _check_folders_match_specs(directory, folders):
    missing = sorted(
        f"{name} (expects {folder.name}/)"
        for name, folder in folders.items()
        if not (folder / ".zarray").is_file()
    )
    if missing:
        raise CheckpointError(
            f"the checkpoint in {directory} is incomplete: {len(missing)} zarr folder(s) are "
            f"missing or lack `.zarray`: {', '.join(missing[:5])}"
            + (" ..." if len(missing) > 5 else "")
            + ". Download the whole checkpoint directory again."
        )
    shared = sorted({f.name for f in folders.values() if list(folders.values()).count(f) > 1})
    if shared:
        raise CheckpointError(
            f"the checkpoint in {directory} is corrupt: several parameters point to the same "
            f"zarr folder(s) {', '.join(shared[:5])}. Download it again."
        )
    referenced = {folder.name for folder in folders.values()}
    unexpected = sorted(
        path.name
        for path in directory.glob("target.*")
        if path.is_dir() and path.name not in referenced
    )
    if unexpected:
        raise CheckpointError(
            f"the checkpoint in {directory} has zarr folders its `{CHECKPOINT_FILE}` file does not "
            f"reference: {', '.join(unexpected[:5])}. The directory mixes files of different "
            "checkpoints; use a clean copy."
        )


def _read_zarr_array(folder, name, spec):
    metadata = _read_zarr_metadata(folder, name)
    shape = tuple(metadata["shape"])
    chunks = tuple(metadata["chunks"])
    dtype = np.dtype(metadata["dtype"])
    spec_metadata = spec.get("metadata", {})
    for field in ("shape", "chunks", "dtype"):
        if field in spec_metadata and spec_metadata[field] != metadata[field]:
            raise CheckpointError(
                f"parameter {name!r}: the checkpoint tree says {field} {spec_metadata[field]!r} "
                f"but {folder.name}/.zarray says {metadata[field]!r}; the checkpoint is "
                "inconsistent (mixed files?). Download it again."
            )
    if metadata.get("filters"):
        raise CheckpointError(f"parameter {name!r}: zarr filters are not supported")
    separator = metadata.get("dimension_separator", ".")
    order = metadata.get("order", "C")
    array = np.empty(shape, dtype=dtype)
    grid = [range(math.ceil(size / chunk)) for size, chunk in zip(shape, chunks)]
    for chunk_index in np.ndindex(*[len(axis) for axis in grid]):
        key = separator.join(str(i) for i in chunk_index) or "0"  # a 0-d array's chunk is "0"
        chunk_path = folder / key
        if not chunk_path.is_file():
            raise CheckpointError(
                f"parameter {name!r}: chunk file {folder.name}/{key} is missing; the checkpoint "
                "is incomplete. Download it again."
            )
        raw = _decompress(chunk_path.read_bytes(), metadata.get("compressor"), name, chunk_path)
        expected = math.prod(chunks) * dtype.itemsize
        if len(raw) != expected:
            raise CheckpointError(
                f"parameter {name!r}: chunk {folder.name}/{key} holds {len(raw)} bytes, expected "
                f"{expected} for a {chunks} {dtype} chunk; the file is corrupt. Download the "
                "checkpoint again."
            )
        block = np.frombuffer(raw, dtype=dtype).reshape(chunks, order=order)
        target = tuple(
            slice(i * chunk, min((i + 1) * chunk, size))
            for i, chunk, size in zip(chunk_index, chunks, shape)
        )
        array[target] = block[tuple(slice(0, s.stop - s.start) for s in target)]
    return array.astype(dtype.newbyteorder("="), copy=False)


def _read_zarr_metadata(folder, name):
    try:
        metadata = json.loads((folder / ".zarray").read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(
            f"parameter {name!r}: {folder.name}/.zarray is unreadable ({error}); the checkpoint "
            "is corrupt. Download it again."
        ) from error
    absent = [field for field in ("shape", "chunks", "dtype") if field not in metadata]
    if absent:
        raise CheckpointError(
            f"parameter {name!r}: {folder.name}/.zarray lacks {', '.join(absent)}; the "
            "checkpoint is corrupt. Download it again."
        )
    if metadata.get("zarr_format", 2) != 2:
        raise CheckpointError(f"parameter {name!r}: only zarr format 2 is supported")
    return metadata


def _decompress(raw, compressor, name, path):
    codec = (compressor or {}).get("id")
    try:
        if codec is None:
            return raw
        if codec == "gzip":
            return gzip.decompress(raw)
        if codec == "zlib":
            return zlib.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise CheckpointError(
            f"parameter {name!r}: chunk {path.parent.name}/{path.name} is truncated or corrupt "
            f"({error}). Download the checkpoint again."
        ) from error
    raise CheckpointError(
        f"parameter {name!r}: zarr compressor {codec!r} is not supported (gzip, zlib or none)"
    )
