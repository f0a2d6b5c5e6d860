import gzip
import hashlib
import json
import tracemalloc

import msgpack
import numpy as np
import pytest

from keras_mt3.checkpoints.t5x_checkpoint import read_t5x_checkpoint
from keras_mt3.errors import CheckpointError

pytestmark = pytest.mark.backend_independent

KERNEL = "encoder/layers_0/attention/query/kernel"
SCALE = "encoder/layers_0/pre_attention_layer_norm/scale"
EMBEDDING = "decoder/token_embedder/embedding"


def _params():
    rng = np.random.default_rng(0)
    return {
        KERNEL: rng.normal(size=(6, 4)).astype("float32"),
        SCALE: rng.normal(size=(6,)).astype("float32"),
        EMBEDDING: rng.normal(size=(7, 6)).astype("float32"),
    }


@pytest.fixture
def checkpoint(tmp_path, t5x_checkpoint_writer):
    return t5x_checkpoint_writer(
        tmp_path / "ckpt", _params(), inline={SCALE}, chunks={EMBEDDING: (3, 4)}
    )


def _folder(name):
    return "target." + name.replace("/", ".")


def test_reads_inline_and_zarr_params_exactly(checkpoint):
    params = read_t5x_checkpoint(checkpoint)
    expected = _params()
    assert sorted(params) == sorted(expected)
    for name, array in expected.items():
        assert params[name].dtype == np.float32
        np.testing.assert_array_equal(params[name], array)


def test_multi_chunk_zarr_with_padded_edge_chunks(checkpoint):
    # 7x6 in 3x4 chunks: a 3x2 grid whose last row and column are partial.
    assert len(list((checkpoint / _folder(EMBEDDING)).glob("[0-9]*"))) == 6
    np.testing.assert_array_equal(read_t5x_checkpoint(checkpoint)[EMBEDDING], _params()[EMBEDDING])


def test_flax_chunked_msgpack_array(tmp_path):
    array = np.arange(12, dtype="float32").reshape(3, 4)
    pieces = np.split(array.ravel(), [5])
    chunked = {
        "__msgpack_chunked_array__": True,
        "shape": {"0": 3, "1": 4},
        "chunks": {"0": _ext_array(pieces[0]), "1": _ext_array(pieces[1])},
    }
    tree = {"version": 3, "optimizer": {"target": {"w": chunked}, "state": {}}}
    (tmp_path / "checkpoint").write_bytes(msgpack.packb(tree))
    np.testing.assert_array_equal(read_t5x_checkpoint(tmp_path)["w"], array)


def _ext_array(array):
    return msgpack.ExtType(1, msgpack.packb((list(array.shape), array.dtype.name, array.tobytes())))


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_t5x_checkpoint(tmp_path / "nowhere")


def test_directory_without_checkpoint_file(tmp_path):
    with pytest.raises(CheckpointError, match="no `checkpoint` file"):
        read_t5x_checkpoint(tmp_path)


def test_checkpoint_file_that_is_not_msgpack(tmp_path):
    (tmp_path / "checkpoint").write_bytes(b"\xc1 this is not msgpack")
    with pytest.raises(CheckpointError, match="not a readable flax msgpack"):
        read_t5x_checkpoint(tmp_path)


def test_tree_without_model_params(tmp_path):
    (tmp_path / "checkpoint").write_bytes(msgpack.packb({"version": 3, "step": 1}))
    with pytest.raises(CheckpointError, match="no `optimizer/target`"):
        read_t5x_checkpoint(tmp_path)


def test_truncated_chunk_names_the_parameter(checkpoint):
    chunk = checkpoint / _folder(KERNEL) / "0.0"
    chunk.write_bytes(chunk.read_bytes()[:-20])
    with pytest.raises(CheckpointError, match=f"{KERNEL}.*truncated or corrupt"):
        read_t5x_checkpoint(checkpoint)


def test_chunk_with_wrong_byte_count(checkpoint):
    chunk = checkpoint / _folder(KERNEL) / "0.0"
    chunk.write_bytes(gzip.compress(np.zeros(5, "<f4").tobytes()))
    with pytest.raises(CheckpointError, match="holds 20 bytes, expected 96"):
        read_t5x_checkpoint(checkpoint)


def test_missing_chunk_file(checkpoint):
    (checkpoint / _folder(EMBEDDING) / "2.1").unlink()
    with pytest.raises(CheckpointError, match="chunk file .*2.1 is missing"):
        read_t5x_checkpoint(checkpoint)


def test_missing_zarr_folder(checkpoint):
    folder = checkpoint / _folder(KERNEL)
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    with pytest.raises(CheckpointError, match=f"incomplete.*{KERNEL}"):
        read_t5x_checkpoint(checkpoint)


def test_unreferenced_zarr_folder(checkpoint):
    (checkpoint / "target.decoder.extra.kernel").mkdir()
    with pytest.raises(CheckpointError, match="does not reference: target.decoder.extra.kernel"):
        read_t5x_checkpoint(checkpoint)


def test_zarray_shape_differs_from_tree_spec(checkpoint):
    zarray = checkpoint / _folder(KERNEL) / ".zarray"
    metadata = json.loads(zarray.read_text())
    metadata["shape"] = [4, 6]
    zarray.write_text(json.dumps(metadata))
    with pytest.raises(CheckpointError, match=f"{KERNEL}.*shape \\[6, 4\\].*\\[4, 6\\]"):
        read_t5x_checkpoint(checkpoint)


def test_unreadable_zarray(checkpoint):
    (checkpoint / _folder(KERNEL) / ".zarray").write_text("{not json")
    with pytest.raises(CheckpointError, match=f"{KERNEL}.*unreadable"):
        read_t5x_checkpoint(checkpoint)


def _edit_zarray(checkpoint, name, **changes):
    zarray = checkpoint / _folder(name) / ".zarray"
    zarray.write_text(json.dumps({**json.loads(zarray.read_text()), **changes}))


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"dimension_separator": "/../../escaped/"}, "dimension_separator '/../../escaped/' is"),
        ({"dtype": "|O"}, "dtype '|O', not a float type"),
        ({"chunks": [0, 4]}, r"invalid shape \[7, 6\] or chunks \[0, 4\]"),
        ({"shape": [7, "6"]}, r"invalid shape \[7, '6'\]"),
        ({"shape": [2**40, 2**40], "chunks": [1, 1]}, "chunks, more than 65536"),
        ({"shape": [2**17, 2**17], "chunks": [2**17, 2**17]}, "bytes, more than 4294967296"),
    ],
)
def test_invalid_zarray_is_refused_before_anything_is_allocated(checkpoint, changes, match):
    _edit_zarray(checkpoint, EMBEDDING, **changes)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=f"{EMBEDDING}.*{match}") as info:
            read_t5x_checkpoint(checkpoint)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20
    assert info.value.files == (f"{_folder(EMBEDDING)}/.zarray",)
    assert not (checkpoint.parent / "escaped").exists()


def test_chunk_that_inflates_past_its_size(checkpoint):
    chunk = checkpoint / _folder(KERNEL) / "0.0"
    chunk.write_bytes(gzip.compress(np.zeros(10**6, "<f4").tobytes()))
    with pytest.raises(CheckpointError, match=f"{KERNEL}.*inflates to more than 96 bytes"):
        read_t5x_checkpoint(checkpoint)


def test_non_finite_values_name_the_parameter_and_file(checkpoint):
    block = np.zeros((3, 4), "<f4")
    block[2, 1] = np.nan
    (checkpoint / _folder(EMBEDDING) / "1.0").write_bytes(gzip.compress(block.tobytes()))
    with pytest.raises(CheckpointError, match=f"'{EMBEDDING}' holds 1 NaN or infinite") as info:
        read_t5x_checkpoint(checkpoint)
    assert info.value.files == (f"{_folder(EMBEDDING)}/1.0",)


def test_non_finite_inline_array(tmp_path, t5x_checkpoint_writer):
    params = {SCALE: np.array([1.0, np.inf, -np.inf], "float32")}
    checkpoint = t5x_checkpoint_writer(tmp_path / "ckpt", params, inline={SCALE})
    with pytest.raises(CheckpointError, match=f"'{SCALE}' holds 2 NaN or infinite.*checkpoint"):
        read_t5x_checkpoint(checkpoint)


def _file_entries(checkpoint):
    return {
        str(path.relative_to(checkpoint)): {
            "size": path.stat().st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
        for path in checkpoint.rglob("*")
        if path.is_file()
    }


def test_official_files_are_checked_only_for_the_official_checkpoint(
    checkpoint, tmp_path, t5x_checkpoint_writer
):
    official = _file_entries(checkpoint)
    assert sorted(read_t5x_checkpoint(checkpoint, official_files=official)) == sorted(_params())
    # Same `checkpoint` file, another chunk: a damaged copy of the official checkpoint.
    block = np.ones((3, 4), "<f4")
    (checkpoint / _folder(EMBEDDING) / "0.1").write_bytes(gzip.compress(block.tobytes()))
    with pytest.raises(CheckpointError, match="embedding/0.1 differs from the official") as info:
        read_t5x_checkpoint(checkpoint, official_files=official)
    assert info.value.files == (f"{_folder(EMBEDDING)}/0.1",)
    # Another checkpoint altogether is read without hashes.
    other = t5x_checkpoint_writer(tmp_path / "other", _params(), step=5)
    assert sorted(read_t5x_checkpoint(other, official_files=official)) == sorted(_params())


def test_expected_parameters(checkpoint):
    expected = {name: {"shape": list(a.shape), "dtype": "float32"} for name, a in _params().items()}
    assert sorted(read_t5x_checkpoint(checkpoint, expected=expected)) == sorted(expected)
    wrong = dict(expected, **{KERNEL: {"shape": [4, 6], "dtype": "float32"}})
    del wrong[SCALE]
    match = f"1 unexpected parameter.*{SCALE}.*{KERNEL} has shape"
    with pytest.raises(CheckpointError, match=match):
        read_t5x_checkpoint(checkpoint, expected=wrong)


@pytest.mark.checkpoint
def test_official_mt3_checkpoint(checkpoint_dir):
    params = read_t5x_checkpoint(checkpoint_dir)
    assert len(params) == 189
    assert sum(array.size for array in params.values()) == 45_896_704
    assert {array.dtype for array in params.values()} == {np.dtype("float32")}
    assert params["decoder/token_embedder/embedding"].shape == (1536, 512)
    assert params["encoder/layers_7/attention/out/kernel"].shape == (384, 512)
    # The folded 1/sqrt(head_dim): query kernels are ~8x smaller than key kernels.
    ratio = np.std(params["encoder/layers_0/attention/key/kernel"]) / np.std(params[KERNEL])
    assert 5 < ratio < 12
