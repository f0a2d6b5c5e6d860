"""Saving and loading presets: a preset folder and a `.keras` file give back the same model,
hub handles resolve through huggingface_hub's and kagglehub's own caches (offline), and
neither preset_io nor the converter imports a model class."""

import ast
import json
import pathlib
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import tiny_transcriber

from keras_mt3 import preset_io
from keras_mt3.errors import PresetError
from keras_mt3.models.mt3_backbone import MT3Backbone
from keras_mt3.models.mt3_transcriber import MT3Transcriber

PACKAGE = pathlib.Path(preset_io.__file__).resolve().parent


@pytest.fixture(scope="module")
def tiny():
    return tiny_transcriber(decode_batch_size=2, max_decode_length=12, dropout=0.0)


@pytest.fixture(scope="module")
def log_mel():
    return np.random.default_rng(0).normal(size=(3, 256, 512)).astype("float32")


@pytest.fixture(scope="module")
def tokens(tiny, log_mel):
    tokens = tiny.generate(log_mel)
    assert tokens.shape == (3, 12)
    return tokens


def test_save_to_preset_then_from_preset_gives_identical_tokens(tiny, log_mel, tokens, tmp_path):
    directory = tiny.save_to_preset(tmp_path / "preset")
    assert sorted(p.name for p in directory.iterdir()) == [
        "config.json", "metadata.json", "model.weights.h5"
    ]
    metadata = preset_io.read_metadata(directory)
    assert metadata["class_name"] == "keras_mt3>MT3Transcriber"
    assert metadata["parameter_count"] == tiny.count_params() > 0
    assert metadata["keras_version"] == keras.__version__ and metadata["date"]
    loaded = MT3Transcriber.from_preset(directory)
    assert (loaded.decode_batch_size, loaded.max_decode_length) == (2, 12)
    np.testing.assert_array_equal(loaded.generate(log_mel), tokens)
    # Saved settings can be replaced at load time.
    assert MT3Transcriber.from_preset(str(directory), decode_batch_size=1).decode_batch_size == 1


def test_keras_file_round_trip_gives_identical_tokens(tiny, log_mel, tokens, tmp_path):
    tiny.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(loaded, MT3Transcriber) and loaded.vocabulary == tiny.vocabulary
    np.testing.assert_array_equal(loaded.generate(log_mel), tokens)


def test_a_trained_model_saves_without_its_compile_state(tiny, tmp_path):
    trained = MT3Transcriber.from_config(tiny.get_config())
    trained.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    directory = trained.save_to_preset(tmp_path / "preset")
    assert "compile_config" not in json.loads((directory / "config.json").read_text())
    assert not MT3Transcriber.from_preset(directory).compiled


def test_saving_never_replaces_what_is_not_a_preset(tiny, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(PresetError, match="holds no preset"):
        tiny.save_to_preset(other)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    directory = tiny.save_to_preset(tmp_path / "preset")
    with pytest.raises(PresetError, match="already holds a preset"):
        tiny.save_to_preset(directory, overwrite=False)
    (tmp_path / "empty").mkdir()
    tiny.save_to_preset(tmp_path / "empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "other", "preset"]


def test_broken_presets_are_refused_clearly(tiny, tmp_path):
    directory = tiny.save_to_preset(tmp_path / "preset")
    backbone_only = tmp_path / "backbone"
    preset_io.save_to_preset(tiny.backbone, backbone_only)
    with pytest.raises(PresetError, match="holds a MT3Backbone, not a MT3Transcriber"):
        MT3Transcriber.from_preset(backbone_only)
    smaller = MT3Backbone.from_config(dict(tiny.backbone.get_config(), num_decoder_layers=0))
    preset_io.save_to_preset(smaller, tmp_path / "smaller", overwrite=False)
    # Keras itself ignores arrays the model has no place for: they are counted.
    shutil.copy(directory / "model.weights.h5", tmp_path / "smaller" / "model.weights.h5")
    with pytest.raises(PresetError, match="could not load .*the file holds 28 arrays, the"):
        preset_io.load_preset_dir(tmp_path / "smaller")
    (directory / "config.json").write_text(json.dumps({"backbone": {}, "vocabulary": "mt3"}))
    with pytest.raises(PresetError, match="names no class"):
        MT3Transcriber.from_preset(directory)
    (directory / "model.weights.h5").unlink()
    with pytest.raises(PresetError, match="model.weights.h5 is missing"):
        MT3Transcriber.from_preset(directory)


# ---- hubs, offline ---------------------------------------------------------------------------


def _assert_same_weights(model, expected):
    assert model.get_config() == expected.get_config()
    for weight, expected_weight in zip(model.get_weights(), expected.get_weights(), strict=True):
        np.testing.assert_array_equal(weight, expected_weight)


def test_hf_handle_loads_from_the_hugging_face_cache_offline(tiny, tmp_path, monkeypatch):
    constants = pytest.importorskip("huggingface_hub.constants")
    # The cache as huggingface_hub lays it out: a snapshot per revision, refs naming them.
    repo = tmp_path / "hub" / "models--someone--mt3-tiny"
    revision = "0123456789abcdef0123456789abcdef01234567"
    tiny.save_to_preset(repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    # huggingface_hub reads its settings once, at import: set both the variables and its copy.
    for name, value in (("HF_HUB_CACHE", str(tmp_path / "hub")), ("HF_HUB_OFFLINE", "1")):
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    _assert_same_weights(MT3Transcriber.from_preset("hf://someone/mt3-tiny"), tiny)
    with pytest.raises(PresetError, match="could not fetch preset hf://someone/other"):
        MT3Transcriber.from_preset("hf://someone/other")
    with pytest.raises(PresetError, match="use hf://OWNER/REPO"):
        MT3Transcriber.from_preset("hf://someone")


def test_kaggle_handle_loads_from_the_kagglehub_cache_offline(tiny, tmp_path, monkeypatch):
    pytest.importorskip("kagglehub")
    # The cache as kagglehub lays it out: a folder per version, a marker once it is complete.
    variation = tmp_path / "kaggle" / "models" / "someone" / "mt3" / "keras" / "tiny"
    tiny.save_to_preset(variation / "2")
    (variation / "2.complete").touch()
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kaggle"))
    _assert_same_weights(MT3Transcriber.from_preset("kaggle://someone/mt3/keras/tiny/2"), tiny)
    with pytest.raises(PresetError, match="kaggle://OWNER/MODEL/FRAMEWORK/VARIATION"):
        MT3Transcriber.from_preset("kaggle://someone/mt3")


def test_a_missing_hub_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # what an absent package gives
    monkeypatch.setitem(sys.modules, "kagglehub", None)
    with pytest.raises(PresetError, match=r"pip install 'keras-mt3\[hf\]'"):
        MT3Transcriber.from_preset("hf://someone/mt3")
    with pytest.raises(PresetError, match=r"pip install 'keras-mt3\[kaggle\]'"):
        MT3Transcriber.from_preset("kaggle://someone/mt3/keras/tiny")


# ---- layering --------------------------------------------------------------------------------


def _imported_modules(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


@pytest.mark.backend_independent
def test_neither_the_converter_nor_preset_io_imports_a_model_class():
    # The converter builds the class from_preset hands it; preset_io deserializes by name.
    for path in sorted((PACKAGE / "checkpoints").glob("*.py")):
        imported = [m for m in _imported_modules(path) if m.startswith("keras_mt3.models")]
        assert not imported, path
    imported = [
        m for m in _imported_modules(PACKAGE / "preset_io.py")
        if m.startswith(("keras_mt3.checkpoints", "keras_mt3.models"))
    ]
    assert not imported
    # The model reaches the converter only when from_preset is called.
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, keras_mt3.models.mt3_transcriber, keras_mt3.preset_io;"
         "print(sorted(m for m in sys.modules if m.startswith('keras_mt3.checkpoints')))"],
        capture_output=True, text=True, check=True, cwd=PACKAGE.parent,
    )
    assert loaded.stdout.strip() == "[]"
