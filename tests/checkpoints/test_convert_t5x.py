import json

import keras
import numpy as np
import pytest
from helpers import TINY_BACKBONE_CONFIG, backbone_inputs

from keras_mt3.checkpoints.convert_t5x import backbone_config_from_t5x
from keras_mt3.checkpoints.convert_t5x import convert_t5x_checkpoint
from keras_mt3.checkpoints.convert_t5x import load_backbone_from_preset_dir
from keras_mt3.checkpoints.convert_t5x import load_t5x_weights
from keras_mt3.checkpoints.convert_t5x import t5x_variable_map
from keras_mt3.errors import CheckpointError
from keras_mt3.errors import PresetError
from keras_mt3.models.mt3_backbone import MT3Backbone

TINY = dict(TINY_BACKBONE_CONFIG, num_decoder_layers=3)  # unlike the encoder's two
QUERY = "decoder/layers_1/encoder_decoder_attention/query/kernel"
OUT = "encoder/layers_0/attention/out/kernel"


def _t5x_params(seed=0):
    """Random parameters in T5X's names and (flat) shapes for the TINY configuration."""
    rng = np.random.default_rng(seed)
    shapes = {name: shape for name, (_, shape) in t5x_variable_map(MT3Backbone(**TINY)).items()}
    return {name: rng.normal(size=shape).astype("float32") for name, shape in shapes.items()}


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
        for depth in range(4):
            np.testing.assert_array_equal(query[:, head, depth], params[QUERY][:, head * 4 + depth])
            np.testing.assert_array_equal(out[head, depth], params[OUT][head * 4 + depth])
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
    assert f"{OUT}: checkpoint (16, 8), model expects (8, 16)" in message
    for old, weight in zip(before, backbone.weights):
        np.testing.assert_array_equal(_numpy(weight), old)


@pytest.mark.backend_independent
def test_config_is_inferred_from_shapes():
    config = backbone_config_from_t5x(_t5x_params())
    assert config["vocabulary_size"] == 20 and config["hidden_dim"] == 16
    assert config["num_encoder_layers"] == 2 and config["num_decoder_layers"] == 3
    assert config["intermediate_dim"] == 24 and config["input_dim"] == 10


@pytest.fixture
def tiny_checkpoint(tmp_path, t5x_checkpoint_writer):
    params = _t5x_params()
    inline = {name for name in params if name.endswith("/scale")}
    return t5x_checkpoint_writer(tmp_path / "t5x", params, inline=inline), params


def test_convert_save_load_gives_identical_outputs(tmp_path, tiny_checkpoint):
    checkpoint, params = tiny_checkpoint
    sizes_not_in_shapes = {
        "num_heads": 2,
        "head_dim": 4,
        "max_encoder_length": 12,
        "max_decoder_length": 16,
    }
    preset_config = {"backbone": sizes_not_in_shapes, "vocabulary": "mt3"}
    output = convert_t5x_checkpoint(checkpoint, tmp_path / "preset", preset_config)
    assert sorted(p.name for p in output.iterdir()) == ["config.json", "model.weights.h5"]
    config = json.loads((output / "config.json").read_text())
    assert config["vocabulary"] == "mt3" and config["backbone"]["num_decoder_layers"] == 3

    loaded, vocabulary = load_backbone_from_preset_dir(output)
    assert vocabulary == "mt3"
    direct = MT3Backbone(**TINY)
    load_t5x_weights(direct, params)
    np.testing.assert_array_equal(_numpy(loaded(_inputs())), _numpy(direct(_inputs())))

    # Converting again over an existing preset replaces it and leaves no staging folders.
    convert_t5x_checkpoint(checkpoint, output, preset_config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preset", "t5x"]


def test_loading_an_incomplete_preset(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(PresetError, match="model.weights.h5 is missing"):
        load_backbone_from_preset_dir(tmp_path)
    (tmp_path / "model.weights.h5").write_bytes(b"not h5")
    with pytest.raises(PresetError, match="not a valid keras-mt3 preset config"):
        load_backbone_from_preset_dir(tmp_path)


def test_loading_weights_that_do_not_match_the_config(tmp_path):
    backbone = MT3Backbone(**TINY)
    backbone.save_weights(str(tmp_path / "model.weights.h5"))
    other = dict(TINY, num_decoder_layers=2)
    (tmp_path / "config.json").write_text(json.dumps({"backbone": other, "vocabulary": "mt3"}))
    with pytest.raises(PresetError, match="could not load"):
        load_backbone_from_preset_dir(tmp_path)


@pytest.mark.checkpoint
def test_official_checkpoint_round_trips_through_a_preset(tmp_path, checkpoint_dir, reference_dir):
    from keras_mt3.checkpoints.t5x_checkpoint import read_t5x_checkpoint

    preset = convert_t5x_checkpoint(checkpoint_dir, tmp_path / "mt3")
    loaded, vocabulary = load_backbone_from_preset_dir(preset)
    assert vocabulary == "mt3"
    loaded_config, default_config = loaded.get_config(), MT3Backbone().get_config()
    loaded_config.pop("name"), default_config.pop("name")
    assert loaded_config == default_config
    direct = MT3Backbone()
    load_t5x_weights(direct, read_t5x_checkpoint(checkpoint_dir))
    log_mel = np.load(reference_dir / "piano_chorale.inputs.npz")["encoder_input_tokens"]
    inputs = {
        "encoder_inputs": log_mel[:1],
        "decoder_token_ids": np.array([[0, 1131, 1061, 1019]], "int32"),
    }
    np.testing.assert_array_equal(_numpy(loaded(inputs)), _numpy(direct(inputs)))


@pytest.mark.backend_independent
@pytest.mark.parametrize("preset", ["mt3", "ismir2021"])
def test_preset_manifest_describes_the_model_it_builds(preset):
    # The manifests are what downloads are checked against; they must list exactly the
    # parameters, T5X shapes and dtype that loading into the preset's backbone requires.
    from keras_mt3 import presets

    backbone = MT3Backbone(**presets.PRESETS[preset]["backbone"])
    required = {name: list(shape) for name, (_, shape) in t5x_variable_map(backbone).items()}
    parameters = presets.load_manifest(preset)["parameters"]
    assert {name: entry["shape"] for name, entry in parameters.items()} == required
    assert {entry["dtype"] for entry in parameters.values()} == {"float32"}
