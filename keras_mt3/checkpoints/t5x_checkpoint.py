"""Reads the model parameters of a T5X checkpoint directory with msgpack + NumPy only.

A T5X checkpoint directory holds a `checkpoint` file, a flax msgpack tree
`{"version", "optimizer": {"target": params, "state": ...}}`, and one zarr v2 folder per large
parameter. In the tree, arrays are msgpack extension objects; large arrays are replaced by a
TensorStore spec naming their zarr folder (relative to the checkpoint directory). Only
`optimizer/target` (the model weights) is read. The layout: docs/mt3_details.md#checkpoint-layout.

Every `.zarray` is validated (`parse_zarray`) before a chunk key is listed or memory is
allocated, and every value read must be finite. The checkpoint downloader (`keras_mt3.checkpoints.presets`)
applies the same checks to the files a server sends before it keeps them.
"""

import hashlib
import json
import math
import pathlib
import zlib
from typing import NamedTuple

import msgpack
import numpy as np

from keras_mt3.errors import CheckpointError
from keras_mt3.utils import progress_bar

CHECKPOINT_FILE = "checkpoint"
ZARRAY_FILE = ".zarray"

# Bounds on a `.zarray`, so that a damaged or hostile one cannot make the reader list billions
# of chunk keys or allocate more memory than a T5X checkpoint needs: T5-XXL's largest array is
# about 0.5 GB, MT3's 3 MB, and T5X writes chunks of at most 64 MiB.
MAX_ARRAY_BYTES = 1 << 32
MAX_CHUNKS_PER_ARRAY = 1 << 16
_DIMENSION_SEPARATORS = (".", "/")
_COMPRESSOR_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "zlib": zlib.MAX_WBITS}

# flax.serialization extension codes.
_EXT_NDARRAY = 1
_EXT_COMPLEX = 2
_EXT_NUMPY_SCALAR = 3
_CHUNKED_ARRAY_KEY = "__msgpack_chunked_array__"


def read_t5x_checkpoint(
    directory, progress=None, *, expected=None, official_files=None, require_official=False
):
    """Returns `{t5x parameter name: float ndarray}` for the model weights of a checkpoint.

    Names are slash-joined tree paths below `optimizer/target`, e.g.
    `"encoder/layers_0/attention/query/kernel"`.

    Args:
        directory: the checkpoint directory.
        progress: show a progress bar (default: when stderr is a terminal).
        expected: `{name: {"shape", "dtype"}}`: the parameters the checkpoint must hold
            (see `check_parameters`), checked before any array is read. A "chunks" entry is
            ignored: how a checkpoint is chunked is its writer's choice.
        official_files: `{relative path: {"size", "sha256"}}` of an official checkpoint. When
            the directory's `checkpoint` file is that checkpoint's, every file read must match
            its entry, which catches damaged or swapped files; any other checkpoint is read
            without hashes, unless `require_official` makes that an error too.

    Raises:
        CheckpointError: the directory, its `checkpoint` file or a zarr folder is missing,
            unreadable, corrupt, holds non-finite values, differs from the official files, or
            is inconsistent with the tree's specs or with `expected`. Its `files` names the
            damaged files when known.
    """
    directory = pathlib.Path(directory).expanduser()
    if not directory.is_dir():
        raise CheckpointError(
            f"T5X checkpoint directory {str(directory)!r} does not exist. Pass the folder that "
            f"holds the `{CHECKPOINT_FILE}` file and the `target.*` zarr folders."
        )
    raw_tree = _read_tree_bytes(directory / CHECKPOINT_FILE)
    leaves = read_tree(raw_tree, directory / CHECKPOINT_FILE)
    if expected is not None:
        check_parameters(leaves, expected, f"the checkpoint in {directory}")
    official = official_files if _is_official(raw_tree, official_files) else None
    if require_official and official is None:
        _check_official(official_files, CHECKPOINT_FILE, raw_tree)
    specs = {name: leaf for name, leaf in leaves.items() if is_tensorstore_spec(leaf)}
    folders = {name: _zarr_folder(directory, name, spec) for name, spec in specs.items()}
    _check_folders_match_specs(directory, folders)

    params = {}
    bar = progress_bar(total=len(leaves), desc="reading checkpoint", unit="param", enabled=progress)
    with bar:
        for name, leaf in leaves.items():
            if name in specs:
                params[name] = _read_zarr_array(
                    folders[name], name, specs[name], (expected or {}).get(name), official
                )
            else:
                params[name] = _inline_array(leaf, name)
                _check_finite(params[name], name, CHECKPOINT_FILE)
            bar.update(1)
    return params


def t5x_folder_name(name):
    """The zarr folder T5X writes parameter `name` to: `target.` + the dotted tree path."""
    return "target." + name.replace("/", ".")


def zarr_folder_name(spec):
    """The folder name a TensorStore spec points to (its path's last component)."""
    return str(spec["kvstore"].get("path", "")).rstrip("/").rsplit("/", 1)[-1]


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def _is_official(raw_tree, official_files):
    entry = (official_files or {}).get(CHECKPOINT_FILE)
    return entry is not None and sha256_hex(raw_tree) == entry["sha256"]


def _check_official(official, relative, raw):
    if official is None:
        return
    entry = official.get(relative)
    if entry is None or len(raw) != entry["size"] or sha256_hex(raw) != entry["sha256"]:
        raise CheckpointError(
            f"{relative} differs from the official checkpoint's file (size or sha256); this "
            "copy of the official checkpoint is damaged. Copy or download it again.",
            files=[relative],
        )


def check_parameters(leaves, expected, where):
    """Checks a tree's `{name: leaf}` against `expected` (`{name: {"shape", ...}}`).

    The names must be the expected ones; a zarr-stored parameter must live in its T5X folder
    (`t5x_folder_name`) and declare the expected shape, an inline one must have that shape.
    The zarr metadata itself is checked later, by `check_layout`.
    """
    missing = sorted(set(expected) - set(leaves))
    unexpected = sorted(set(leaves) - set(expected))
    problems = []
    if missing:
        problems.append(f"{len(missing)} parameter(s) missing: {preview_names(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected parameter(s): {preview_names(unexpected)}")
    for name in sorted(set(leaves) & set(expected)):
        leaf, want = leaves[name], tuple(expected[name]["shape"])
        if is_tensorstore_spec(leaf):
            if zarr_folder_name(leaf) != t5x_folder_name(name):
                problems.append(f"{name} is stored in folder {zarr_folder_name(leaf)!r}")
            metadata = leaf.get("metadata")
            shape = metadata.get("shape", want) if isinstance(metadata, dict) else want
        else:
            shape = np.shape(leaf)
        if _as_shape(shape) != want:
            problems.append(f"{name} has shape {list(shape)}, expected {list(want)}")
    if problems:
        raise CheckpointError(
            f"{where} does not hold the expected parameters ({preview_names(problems, 3, '; ')})."
            " It is not the checkpoint this preset needs, or it is damaged.",
            files=[CHECKPOINT_FILE],
        )


def check_layout(name, layout, expected_entry, chunks=False):
    """Checks a parameter's validated `ZarrLayout` against its `expected` entry.

    The chunk shape is a storage choice of whoever wrote the checkpoint, so it is compared only
    with `chunks` (a download of the official checkpoint) and when the entry records one.
    """
    wanted = {"shape": tuple(expected_entry["shape"]), "dtype": np.dtype(expected_entry["dtype"])}
    if chunks and "chunks" in expected_entry:
        wanted["chunks"] = tuple(expected_entry["chunks"])
    for field, value in wanted.items():
        if getattr(layout, field) != value:
            raise CheckpointError(
                f"parameter {name!r}: the zarr array has {field} {getattr(layout, field)}, "
                f"expected {value}. It is not the checkpoint this preset needs, or it is damaged."
            )


def preview_names(names, limit=8, separator=", "):
    """The first `limit` of `names`, joined, and how many more there are."""
    shown = separator.join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


# ---- the msgpack tree -----------------------------------------------------------------------


def _read_tree_bytes(path):
    if not path.is_file():
        raise CheckpointError(
            f"{path.parent} is not a T5X checkpoint: it has no `{CHECKPOINT_FILE}` file. Pass the "
            "directory of a T5X checkpoint (e.g. the one holding `checkpoint` and `target.*/`)."
        )
    try:
        return path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"{path} is unreadable ({error})", files=[CHECKPOINT_FILE]) from error


def read_tree(raw, path):
    """`{parameter name: leaf}` of the model weights in `raw`, the bytes of the `checkpoint` file
    at `path`: arrays, or the TensorStore specs of zarr-stored ones. The one parser of T5X
    trees: the reader, the downloader and the manifest writer all go through it."""
    return _target_leaves(_parse_tree(raw, path), path)


def tree_sha256(directory):
    """sha256 of the `checkpoint` file in `directory`: what identifies a T5X checkpoint (its
    tree names every zarr folder and, in the official one, records the training step)."""
    return sha256_hex(_read_tree_bytes(pathlib.Path(directory) / CHECKPOINT_FILE))


def _parse_tree(raw, path):
    """The flax msgpack tree in `raw` (the bytes of the `checkpoint` file at `path`)."""
    try:
        return msgpack.unpackb(raw, ext_hook=_decode_extension, raw=False, strict_map_key=False)
    except CheckpointError:
        raise
    except Exception as error:  # msgpack raises several unrelated types for bad input
        raise CheckpointError(
            f"{path} is not a readable flax msgpack checkpoint ({type(error).__name__}: {error}). "
            "The file may be truncated or not a T5X checkpoint; download it again.",
            files=[CHECKPOINT_FILE],
        ) from error


def _target_leaves(tree, path):
    optimizer = tree.get("optimizer") if isinstance(tree, dict) else None
    target = optimizer.get("target") if isinstance(optimizer, dict) else None
    if not isinstance(target, dict) or not target:
        raise CheckpointError(
            f"{path} holds no `optimizer/target` parameters; it is not a T5X training "
            "checkpoint. Point to the checkpoint directory of a T5X model.",
            files=[CHECKPOINT_FILE],
        )
    return dict(_flatten(target))


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
        if isinstance(value, dict) and not is_tensorstore_spec(value):
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


def is_tensorstore_spec(value):
    return isinstance(value, dict) and "driver" in value and isinstance(value.get("kvstore"), dict)


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
        path = zarr_folder_name(spec)
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


class ZarrLayout(NamedTuple):
    """A validated `.zarray`: what reading or fetching a zarr v2 array needs to know."""

    shape: tuple
    chunks: tuple
    dtype: np.dtype
    separator: str
    order: str
    compressor: object  # None, "gzip" or "zlib"
    metadata: dict

    @property
    def chunk_bytes(self):
        return math.prod(self.chunks) * self.dtype.itemsize

    def chunk_keys(self):
        """Yields `(chunk index, file name)` of every chunk; a 0-d array's one chunk is "0"."""
        grid = [math.ceil(size / chunk) for size, chunk in zip(self.shape, self.chunks)]
        for index in np.ndindex(*grid):
            yield index, self.separator.join(map(str, index)) or "0"


def parse_zarray(raw, name, relative):
    """Validates `raw`, the bytes of parameter `name`'s `.zarray` file `relative`.

    Only what this reader can read within bounds passes: zarr v2, a float dtype, integer shape
    and chunks of the same rank, a `.` or `/` dimension separator (chunk file names are built
    from it, so nothing else may reach a path), gzip/zlib/no compression, no filters, at most
    `MAX_CHUNKS_PER_ARRAY` chunks and `MAX_ARRAY_BYTES` bytes. Returns a `ZarrLayout`.
    """
    where = f"parameter {name!r}: {relative}"

    def fail(problem, cause=None):
        raise CheckpointError(f"{where} {problem}", files=[relative]) from cause

    try:
        metadata = json.loads(raw)
    except ValueError as error:
        fail(f"is unreadable ({error}); the checkpoint is corrupt. Download it again.", error)
    if not isinstance(metadata, dict):
        fail("is not a JSON object; the checkpoint is corrupt. Download it again.")
    absent = [field for field in ("shape", "chunks", "dtype") if field not in metadata]
    if absent:
        fail(f"lacks {', '.join(absent)}; the checkpoint is corrupt. Download it again.")
    if metadata.get("zarr_format", 2) != 2:
        fail("is not zarr format 2, the only one supported")
    if metadata.get("filters"):
        fail("uses zarr filters, which are not supported")
    compressor = metadata.get("compressor") or {}
    codec = compressor.get("id") if isinstance(compressor, dict) else repr(compressor)
    if codec is not None and codec not in _COMPRESSOR_WBITS:
        fail(f"uses zarr compressor {codec!r}, which is not supported (gzip, zlib or none)")
    shape, chunks = _as_shape(metadata["shape"]), _as_shape(metadata["chunks"])
    if shape is None or chunks is None or len(shape) != len(chunks) or 0 in chunks:
        fail(f"declares an invalid shape {metadata['shape']!r} or chunks {metadata['chunks']!r}")
    try:
        dtype = np.dtype(metadata["dtype"])
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind != "f":
        fail(f"declares dtype {metadata['dtype']!r}, not a float type")
    layout = ZarrLayout(
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        separator=metadata.get("dimension_separator") or ".",
        order=metadata.get("order", "C"),
        compressor=codec,
        metadata=metadata,
    )
    problem = _layout_problem(layout)
    if problem:
        fail(f"is invalid: {problem}. The checkpoint is corrupt or not a T5X checkpoint.")
    return layout


def _layout_problem(layout):
    if layout.separator not in _DIMENSION_SEPARATORS:
        return f"dimension_separator {layout.separator!r} is neither '.' nor '/'"
    if layout.order not in ("C", "F"):
        return f"order {layout.order!r} is neither 'C' nor 'F'"
    count = math.prod(math.ceil(size / chunk) for size, chunk in zip(layout.shape, layout.chunks))
    if count > MAX_CHUNKS_PER_ARRAY:
        return f"{count} chunks, more than {MAX_CHUNKS_PER_ARRAY}"
    largest = max(math.prod(layout.shape) * layout.dtype.itemsize, layout.chunk_bytes)
    if largest > MAX_ARRAY_BYTES:
        return f"an array or chunk of {largest} bytes, more than {MAX_ARRAY_BYTES}"
    return None


def _as_shape(value):
    """`value` as a tuple of non-negative ints, or None if it is not one."""
    if not isinstance(value, (list, tuple)):
        return None
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value):
        return None
    return tuple(value)


def read_chunk(raw, layout, index, name, relative):
    """Decodes chunk `index` from `raw`, the bytes of chunk file `relative`.

    Returns `(region, values)`: where the chunk lies in the array and its values there (edge
    chunks are stored padded to the full chunk shape), checked to be finite.
    """
    expected = layout.chunk_bytes
    data = _decompress(raw, layout.compressor, expected, name, relative)
    if len(data) != expected:
        raise CheckpointError(
            f"parameter {name!r}: chunk {relative} holds {len(data)} bytes, expected "
            f"{expected} for a {layout.chunks} {layout.dtype} chunk; the file is corrupt. "
            "Download the checkpoint again.",
            files=[relative],
        )
    block = np.frombuffer(data, dtype=layout.dtype).reshape(layout.chunks, order=layout.order)
    region = tuple(
        slice(i * chunk, min((i + 1) * chunk, size))
        for i, chunk, size in zip(index, layout.chunks, layout.shape)
    )
    values = block[tuple(slice(0, s.stop - s.start) for s in region)]
    _check_finite(values, name, relative)
    return region, values


def _decompress(raw, codec, expected, name, relative):
    if codec is None:
        return raw
    # Never inflate more than one byte past the chunk's size: a corrupt or hostile chunk must
    # not be able to exhaust memory.
    decompressor = zlib.decompressobj(_COMPRESSOR_WBITS[codec])
    try:
        data = decompressor.decompress(raw, expected + 1)
    except zlib.error as error:
        problem = str(error)
    else:
        if len(data) > expected:
            problem = f"it inflates to more than {expected} bytes"
        elif not decompressor.eof or decompressor.unused_data:
            problem = "the compressed stream is cut short or followed by extra bytes"
        else:
            return data
    raise CheckpointError(
        f"parameter {name!r}: chunk {relative} is truncated or corrupt ({problem}). Download "
        "the checkpoint again.",
        files=[relative],
    )


def _read_zarr_array(folder, name, spec, expected_entry, official):
    relative = f"{folder.name}/{ZARRAY_FILE}"
    try:
        raw = (folder / ZARRAY_FILE).read_bytes()
    except OSError as error:
        raise CheckpointError(
            f"parameter {name!r}: {relative} is unreadable ({error}); the checkpoint is "
            "corrupt. Download it again.",
            files=[relative],
        ) from error
    _check_official(official, relative, raw)
    layout = parse_zarray(raw, name, relative)
    metadata = layout.metadata
    spec_metadata = spec.get("metadata", {})
    for field in ("shape", "chunks", "dtype"):
        if field in spec_metadata and spec_metadata[field] != metadata[field]:
            raise CheckpointError(
                f"parameter {name!r}: the checkpoint tree says {field} {spec_metadata[field]!r} "
                f"but {relative} says {metadata[field]!r}; the checkpoint is "
                "inconsistent (mixed files?). Download it again."
            )
    if expected_entry is not None:
        check_layout(name, layout, expected_entry)
    chunk_keys = list(layout.chunk_keys())
    missing = [key for _, key in chunk_keys if not (folder / key).is_file()]
    if missing:
        raise CheckpointError(
            f"parameter {name!r}: chunk file {folder.name}/{missing[0]} is missing; the "
            "checkpoint is incomplete. Download it again.",
            files=[f"{folder.name}/{key}" for key in missing],
        )
    array = np.empty(layout.shape, dtype=layout.dtype)
    for chunk_index, key in chunk_keys:
        chunk_relative = f"{folder.name}/{key}"
        raw = (folder / key).read_bytes()
        _check_official(official, chunk_relative, raw)
        region, values = read_chunk(raw, layout, chunk_index, name, chunk_relative)
        array[region] = values
    return array.astype(layout.dtype.newbyteorder("="), copy=False)


def _check_finite(array, name, relative):
    if array.dtype.kind not in "fc" or np.isfinite(array).all():
        return
    count = int(array.size - np.count_nonzero(np.isfinite(array)))
    raise CheckpointError(
        f"parameter {name!r} holds {count} NaN or infinite value(s) (in {relative}); the "
        "checkpoint is damaged. Download it again.",
        files=[relative],
    )
