"""Shared fixtures: where the test data lives and what happens without it, and small T5X
checkpoints built on disk (flax msgpack tree + zarr v2 folders) for reader and download tests.

Test data (the official checkpoint and the original MT3's reference outputs) is read from
``$KERAS_MT3_TEST_DATA`` (default: ``../shared`` beside the repository). Tests that need it skip
with a clear reason on a machine that lacks it, unless ``KERAS_MT3_REQUIRE_TEST_DATA=1``: then
missing data is an error, so a run that should check fidelity cannot pass without checking it
(CI sets it).
"""

import gzip
import json
import math
import os
import pathlib

import msgpack
import numpy as np
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
TEST_DATA_DIR = pathlib.Path(os.environ.get("KERAS_MT3_TEST_DATA", REPO_ROOT.parent / "shared"))
REFERENCE_DIR = TEST_DATA_DIR / "reference" / "mt3"
REAL_DIR = TEST_DATA_DIR / "reference" / "real"
REAL_CLIPS = ("02-AchLiebenChristen", "03-ChristederdubistTagundLicht")
CHECKPOINT_DIR = pathlib.Path(
    os.environ.get("KERAS_MT3_CHECKPOINT_DIR", TEST_DATA_DIR / "checkpoints" / "mt3")
)
REFERENCE_CLIPS = ("piano_chorale", "multi_band")
REQUIRE_TEST_DATA_ENV = "KERAS_MT3_REQUIRE_TEST_DATA"


def missing_test_data(reason):
    """Skips the test, or fails it when the run requires the test data."""
    if os.environ.get(REQUIRE_TEST_DATA_ENV, "") not in ("", "0"):
        pytest.fail(f"{reason}; {REQUIRE_TEST_DATA_ENV} is set, so this is an error",
                    pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """The keras-mt3 cache of this test session (`$KERAS_MT3_CACHE`, inherited by the commands
    tests run): presets converted by one test are reused by the next, and nothing is written
    to the user's cache or beside the test data."""
    with pytest.MonkeyPatch.context() as patch:
        directory = tmp_path_factory.mktemp("keras_mt3_cache")
        patch.setenv("KERAS_MT3_CACHE", str(directory))
        yield directory


@pytest.fixture(scope="session")
def reference_dir():
    if not all((REFERENCE_DIR / f"{clip}.json").is_file() for clip in REFERENCE_CLIPS):
        missing_test_data(
            f"MT3 reference outputs not found in {REFERENCE_DIR} (set KERAS_MT3_TEST_DATA)"
        )
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def real_dir():
    """The real recordings (Bach10 chorales) with their ground-truth MIDI."""
    files = [REAL_DIR / f"{clip}.{extension}" for clip in REAL_CLIPS for extension in ("wav", "mid")]
    if not all(path.is_file() for path in files):
        missing_test_data(f"real recordings not found in {REAL_DIR} (set KERAS_MT3_TEST_DATA)")
    return REAL_DIR


@pytest.fixture(scope="session")
def checkpoint_dir():
    if not (CHECKPOINT_DIR / "checkpoint").is_file():
        missing_test_data(
            f"official MT3 checkpoint not found in {CHECKPOINT_DIR} (set KERAS_MT3_CHECKPOINT_DIR)"
        )
    return CHECKPOINT_DIR


@pytest.fixture(scope="session")
def release_dist(tmp_path_factory):
    """The sdist and wheel of this checkout, built once per session outside it."""
    from release_helpers import build_release

    return build_release(tmp_path_factory.mktemp("dist"))


@pytest.fixture
def fresh_venv(tmp_path):
    """The python of a new virtual environment outside the checkout, without keras-mt3 of its
    own (see `release_helpers`)."""
    from release_helpers import make_venv

    return make_venv(tmp_path / "venv")


# ---- small T5X checkpoints ------------------------------------------------------------------


def _pack_array(array):
    payload = msgpack.packb((list(array.shape), array.dtype.name, array.tobytes("C")))
    return msgpack.ExtType(1, payload)


def _pack_numpy_scalar(value):
    payload = msgpack.packb(((), value.dtype.name, value.tobytes()))
    return msgpack.ExtType(3, payload)


def _nest(flat):
    tree = {}
    for name, value in flat.items():
        *parents, leaf = name.split("/")
        node = tree
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return tree


def _zarr_spec(folder_name, array, chunks):
    return {
        "driver": "zarr",
        "dtype": str(array.dtype),
        "kvstore": {"driver": "gfile", "path": folder_name + "/"},
        "metadata": {
            "chunks": list(chunks),
            "compressor": {"id": "gzip", "level": 1},
            "dtype": "<f4",
            "shape": list(array.shape),
        },
    }


def _write_zarr(folder, array, chunks):
    folder.mkdir()
    metadata = {
        "chunks": list(chunks),
        "compressor": {"id": "gzip", "level": 1},
        "dimension_separator": ".",
        "dtype": "<f4",
        "fill_value": None,
        "filters": None,
        "order": "C",
        "shape": list(array.shape),
        "zarr_format": 2,
    }
    (folder / ".zarray").write_text(json.dumps(metadata))
    grid = [range(math.ceil(size / chunk)) for size, chunk in zip(array.shape, chunks)]
    for index in np.ndindex(*[len(axis) for axis in grid]):
        # Zarr v2 stores edge chunks at full chunk size, padded.
        block = np.zeros(chunks, dtype="<f4")
        region = tuple(slice(i * c, (i + 1) * c) for i, c in zip(index, chunks))
        piece = array[region]
        block[tuple(slice(0, n) for n in piece.shape)] = piece
        (folder / ".".join(map(str, index))).write_bytes(gzip.compress(block.tobytes(), 1))


def write_t5x_checkpoint(directory, params, inline=(), chunks=None, step=1000):
    """Writes `params` ({t5x name: float32 array}) as a T5X checkpoint in `directory`.

    Names in `inline` are stored inside the msgpack tree, the rest as zarr folders named like
    T5X's (`target.` + dotted name). `chunks` maps names to a zarr chunk shape (default: one
    chunk). Returns `directory`.
    """
    directory.mkdir(parents=True, exist_ok=True)
    chunks = chunks or {}
    target = {}
    for name, array in params.items():
        array = np.asarray(array, dtype="float32")
        if name in inline:
            target[name] = _pack_array(array)
            continue
        folder_name = "target." + name.replace("/", ".")
        chunk_shape = tuple(chunks.get(name, array.shape))
        target[name] = _zarr_spec(folder_name, array, chunk_shape)
        _write_zarr(directory / folder_name, array, chunk_shape)
    tree = {
        "version": 3,
        "optimizer": {
            "target": _nest(target),
            "state": {"step": _pack_numpy_scalar(np.int32(step)), "param_states": {}},
        },
    }
    (directory / "checkpoint").write_bytes(msgpack.packb(tree))
    return directory


@pytest.fixture
def t5x_checkpoint_writer():
    return write_t5x_checkpoint
