import json
import shutil

import keras
import numpy as np
import pytest
from helpers import TINY_BACKBONE_CONFIG, backbone_inputs

from keras_mt3 import preset_io
from keras_mt3.checkpoints import presets
from keras_mt3.checkpoints import t5x_checkpoint
from keras_mt3.checkpoints.convert_t5x import backbone_config_from_t5x
from keras_mt3.checkpoints.convert_t5x import convert_t5x_checkpoint
from keras_mt3.checkpoints.convert_t5x import load_t5x_weights
from keras_mt3.checkpoints.convert_t5x import t5x_variable_map
from keras_mt3.codec.vocabulary import MT3_VOCABULARY
from keras_mt3.constants import NUM_MEL_BINS
from keras_mt3.errors import CheckpointError
from keras_mt3.errors import PresetError
from keras_mt3.models.mt3_backbone import MT3Backbone
from keras_mt3.models.mt3_transcriber import MT3Transcriber

# Small, but with what a conversion reads from a checkpoint as MT3 has it: the mt3 vocabulary's
# embedding rows, 512 log-mel bins and 64-wide attention heads; three decoder layers against the
# encoder's two.
TINY = dict(
    TINY_BACKBONE_CONFIG,
    vocabulary_size=MT3_VOCABULARY.num_embeddings,
    head_dim=64,
    num_decoder_layers=3,
    input_dim=NUM_MEL_BINS,
    max_encoder_length=MT3_VOCABULARY.input_frames,
)
del TINY["max_decoder_length"]  # not in a checkpoint: a conversion keeps the default
HEAD_DIM = TINY["head_dim"]
QUERY = "decoder/layers_1/encoder_decoder_attention/query/kernel"
OUT = "encoder/layers_0/attention/out/kernel"
EMBEDDING = "decoder/token_embedder/embedding"


def _t5x_params(seed=0):
    """Random parameters in T5X's names and (flat) shapes for the TINY configuration."""
    rng = np.random.default_rng(seed)
    shapes = {name: shape for name, (_, shape) in t5x_variable_map(MT3Backbone(**TINY)).items()}
    return {name: rng.normal(size=shape).astype("float32") for name, shape in shapes.items()}


def _scales(params):
    return {name for name in params if name.endswith("/scale")}


def _inputs():
    return backbone_inputs(TINY, batch_size=2, decoder_length=5, seed=1)


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def test_every_t5x_name_maps_to_a_distinct_variable():
    mapping = t5x_variable_map(MT3Backbone(**TINY))
    backbone_variables = {id(v) for v in MT3Backbone(**TINY).weights}
    assert len(mapping) == len(backbone_variables) == 2 * 9 + 2 + 3 * 14 + 3
    assert len({id(variable) for variable, _ in mapping.values()}) == len(mapping)


def test_load_reshapes_attention_kernels_head_major():
    params = _t5x_params()
    backbone = MT3Backbone(**TINY)
    load_t5x_weights(backbone, params)
    query = _numpy(backbone.decoder_layers[1].cross_attention.query_kernel)
    out = _numpy(backbone.encoder_layers[0].attention.output_kernel)
    for head in range(2):
        for depth in range(HEAD_DIM):
            flat = head * HEAD_DIM + depth
            np.testing.assert_array_equal(query[:, head, depth], params[QUERY][:, flat])
            np.testing.assert_array_equal(out[head, depth], params[OUT][flat])
    for name, (variable, _) in t5x_variable_map(backbone).items():
        np.testing.assert_array_equal(_numpy(variable).reshape(params[name].shape), params[name])


def test_mismatched_checkpoint_lists_every_problem_and_assigns_nothing():
    params = _t5x_params()
    del params[QUERY]
    params["decoder/layers_9/mlp/wo/kernel"] = np.zeros((24, 16), "float32")
    params[OUT] = np.zeros((16, 8), "float32")
    backbone = MT3Backbone(**TINY)
    before = [_numpy(w) for w in backbone.weights]
    with pytest.raises(CheckpointError) as error:
        load_t5x_weights(backbone, params)
    message = str(error.value)
    assert f"missing from the checkpoint: {QUERY}" in message
    assert "no place for: decoder/layers_9/mlp/wo/kernel" in message
    assert f"{OUT}: checkpoint (16, 8), model expects (128, 16)" in message
    for old, weight in zip(before, backbone.weights):
        np.testing.assert_array_equal(_numpy(weight), old)


@pytest.mark.backend_independent
def test_sizes_and_vocabulary_are_read_from_the_checkpoint():
    config, vocabulary = backbone_config_from_t5x(_t5x_params())
    assert config == TINY and vocabulary == "mt3"


@pytest.mark.backend_independent
def test_an_embedding_of_no_known_vocabulary_is_refused():
    params = _t5x_params()
    params[EMBEDDING] = np.zeros((20, 16), "float32")
    with pytest.raises(CheckpointError, match=r"20 rows, which fits no known MT3 vocabulary"):
        backbone_config_from_t5x(params)


@pytest.fixture
def tiny_checkpoint(tmp_path, t5x_checkpoint_writer):
    params = _t5x_params()
    return t5x_checkpoint_writer(tmp_path / "t5x", params, inline=_scales(params)), params


def _logits(model):
    return _numpy(model.backbone(_inputs()))


def _direct_logits(params):
    backbone = MT3Backbone(**TINY)
    load_t5x_weights(backbone, params)
    return _numpy(backbone(_inputs()))


def _never_read(*args, **kwargs):
    raise AssertionError("the T5X checkpoint was read again")


def test_convert_writes_a_preset_that_loads_as_the_same_model(tmp_path, tiny_checkpoint):
    checkpoint, params = tiny_checkpoint
    output = convert_t5x_checkpoint(checkpoint, tmp_path / "preset", MT3Transcriber)
    assert sorted(p.name for p in output.iterdir()) == [
        "config.json", "metadata.json", "model.weights.h5"
    ]
    config = json.loads((output / "config.json").read_text())
    assert config["registered_name"] == "keras_mt3>MT3Transcriber"
    assert config["config"]["backbone"]["config"]["num_decoder_layers"] == 3
    metadata = preset_io.read_metadata(output)
    assert metadata["source"] == {
        "format": "t5x",
        "preset": None,
        "checkpoint_sha256": t5x_checkpoint.sha256_hex((checkpoint / "checkpoint").read_bytes()),
    }
    assert metadata["parameter_count"] == sum(array.size for array in params.values())

    loaded = MT3Transcriber.from_preset(str(output))
    assert loaded.vocabulary.name == "mt3"
    np.testing.assert_array_equal(_logits(loaded), _direct_logits(params))
    # An existing preset is replaced only when asked, and no staging folder is left behind.
    with pytest.raises(PresetError, match="already holds a preset"):
        convert_t5x_checkpoint(checkpoint, output, MT3Transcriber)
    convert_t5x_checkpoint(checkpoint, output, MT3Transcriber, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preset", "t5x"]


def test_a_t5x_folder_loads_directly_with_the_sizes_it_has(tiny_checkpoint):
    checkpoint, params = tiny_checkpoint
    model = MT3Transcriber.from_preset(checkpoint, decode_batch_size=3)
    assert model.decode_batch_size == 3 and model.backbone.num_decoder_layers == 3
    np.testing.assert_array_equal(_logits(model), _direct_logits(params))


def test_a_t5x_folder_of_no_known_vocabulary_is_refused(tmp_path, t5x_checkpoint_writer):
    params = _t5x_params()
    params[EMBEDDING] = np.zeros((20, 16), "float32")
    params["decoder/logits_dense/kernel"] = np.zeros((16, 20), "float32")
    checkpoint = t5x_checkpoint_writer(tmp_path / "t5x", params)
    with pytest.raises(CheckpointError, match="fits no known MT3 vocabulary"):
        MT3Transcriber.from_preset(checkpoint)


def test_what_holds_no_model_is_refused_clearly(tmp_path, tiny_checkpoint):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PresetError, match="neither a Keras preset folder .* nor a T5X"):
        MT3Transcriber.from_preset(tmp_path / "empty")
    with pytest.raises(PresetError, match="missing' does not exist"):
        MT3Transcriber.from_preset(str(tmp_path / "missing"))
    with pytest.raises(PresetError, match="Known presets: ismir2021, mt3"):
        MT3Transcriber.from_preset("mt4")
    with pytest.raises(PresetError, match="goes with a preset name"):
        MT3Transcriber.from_preset(str(tiny_checkpoint[0]), checkpoint_dir=tiny_checkpoint[0])


@pytest.fixture
def tiny_preset(tmp_path, monkeypatch, tiny_checkpoint):
    """Preset `tiny`: the tiny checkpoint registered as an official one (a manifest hashing
    every file), found through $KERAS_MT3_CHECKPOINT_DIR, with a cache of its own."""
    checkpoint, params = tiny_checkpoint
    presets.write_manifest(checkpoint, tmp_path / "tiny.json")
    spec = dict(presets.PRESETS["mt3"], manifest=tmp_path / "tiny.json")
    monkeypatch.setitem(presets.PRESETS, "tiny", spec)
    monkeypatch.setenv(presets.CHECKPOINT_DIR_ENV, str(checkpoint))
    monkeypatch.setenv(presets.CACHE_ENV, str(tmp_path / "cache"))
    return checkpoint, params


def test_a_preset_is_converted_once_then_loaded_from_the_cache(tiny_preset, monkeypatch):
    checkpoint, params = tiny_preset
    first = MT3Transcriber.from_preset("tiny")
    cached = presets.converted_preset_dir("tiny")
    source = preset_io.read_metadata(cached)["source"]
    assert source["preset"] == "tiny" and source["format"] == "t5x"
    monkeypatch.setattr(t5x_checkpoint, "read_t5x_checkpoint", _never_read)
    second = MT3Transcriber.from_preset("tiny", decode_batch_size=1)
    assert second.decode_batch_size == 1 and first.decode_batch_size == 16
    np.testing.assert_array_equal(_logits(second), _direct_logits(params))
    np.testing.assert_array_equal(_logits(first), _logits(second))
    assert [p.name for p in cached.parent.iterdir()] == ["tiny"]  # no staging folders


def test_the_cache_is_converted_again_for_a_new_or_after_a_damaged_conversion(
    tmp_path, tiny_preset, t5x_checkpoint_writer
):
    checkpoint, params = tiny_preset
    MT3Transcriber.from_preset("tiny")
    # A later checkpoint in the same folder: another step, other values.
    newer = _t5x_params(seed=1)
    shutil.rmtree(checkpoint)
    t5x_checkpoint_writer(checkpoint, newer, inline=_scales(newer), step=2000)
    presets.write_manifest(checkpoint, tmp_path / "tiny.json")
    np.testing.assert_array_equal(
        _logits(MT3Transcriber.from_preset("tiny")), _direct_logits(newer)
    )
    (presets.converted_preset_dir("tiny") / preset_io.WEIGHTS_FILE).write_bytes(b"damaged")
    np.testing.assert_array_equal(
        _logits(MT3Transcriber.from_preset("tiny")), _direct_logits(newer)
    )


@pytest.mark.checkpoint
def test_the_official_preset_loads_from_its_conversion(checkpoint_dir, reference_dir, monkeypatch):
    model = MT3Transcriber.from_preset("mt3", checkpoint_dir=checkpoint_dir, progress=False)
    source = preset_io.read_metadata(presets.converted_preset_dir("mt3"))["source"]
    official = presets.load_manifest("mt3")["files"]["checkpoint"]["sha256"]
    assert source == {"format": "t5x", "preset": "mt3", "checkpoint_sha256": official}
    defaults = MT3Backbone().get_config()
    assert {key: model.backbone.get_config()[key] for key in defaults if key != "name"} == {
        key: value for key, value in defaults.items() if key != "name"
    }
    direct = MT3Backbone()
    load_t5x_weights(direct, t5x_checkpoint.read_t5x_checkpoint(checkpoint_dir))
    monkeypatch.setattr(t5x_checkpoint, "read_t5x_checkpoint", _never_read)
    cached = MT3Transcriber.from_preset("mt3", checkpoint_dir=checkpoint_dir)
    log_mel = np.load(reference_dir / "piano_chorale.inputs.npz")["encoder_input_tokens"]
    inputs = {
        "encoder_inputs": log_mel[:1],
        "decoder_token_ids": np.array([[0, 1131, 1061, 1019]], "int32"),
    }
    np.testing.assert_array_equal(_numpy(cached.backbone(inputs)), _numpy(direct(inputs)))


@pytest.mark.backend_independent
@pytest.mark.parametrize("preset", ["mt3", "ismir2021"])
def test_preset_manifest_describes_the_model_it_builds(preset):
    # The manifests are what downloads are checked against; they must list exactly the
    # parameters, T5X shapes and dtype that loading into the preset's backbone requires.
    from keras_mt3.codec.vocabulary import get_vocabulary

    vocabulary = get_vocabulary(presets.PRESETS[preset]["vocabulary"])
    backbone = MT3Backbone(
        vocabulary_size=vocabulary.num_embeddings, max_encoder_length=vocabulary.input_frames
    )
    required = {name: list(shape) for name, (_, shape) in t5x_variable_map(backbone).items()}
    parameters = presets.load_manifest(preset)["parameters"]
    assert {name: entry["shape"] for name, entry in parameters.items()} == required
    assert {entry["dtype"] for entry in parameters.values()} == {"float32"}
