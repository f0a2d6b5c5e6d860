import keras
import numpy as np
import pytest
from helpers import TINY_BACKBONE_CONFIG, backbone_inputs, run_layer_test, tiny_backbone

from keras_mt3.models.mt3_backbone import MT3Backbone

# Reference segments checked against the original model: the first, a middle one, and the last
# (zero-padded) segment of the piano clip; two of the multi-instrument clip.
PARITY_SEGMENTS = [
    ("piano_chorale", 0),
    ("piano_chorale", 5),
    ("piano_chorale", 10),
    ("multi_band", 0),
    ("multi_band", 3),
]


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


@pytest.fixture(scope="module")
def tiny():
    return tiny_backbone()


def _batch(length=6, batch_size=3, seed=0):
    return backbone_inputs(TINY_BACKBONE_CONFIG, batch_size, length, seed, first_id=2)


def test_weights_exist_after_construction_with_expected_count(tiny):
    assert tiny.built
    # Per encoder layer: 2 norms + 4 attention + 3 MLP kernels; per decoder layer: 3 + 8 + 3.
    assert len(tiny.weights) == 1 + 2 * 9 + 1 + 1 + 2 * 14 + 1 + 1
    assert MT3Backbone().count_params() == 45_896_704  # the official checkpoint's size


def test_logits_shape_and_dtype(tiny):
    logits = _numpy(tiny(_batch()))
    assert logits.shape == (3, 6, 20)
    assert logits.dtype == np.float32


def test_model_contract():
    batch = _batch()
    run_layer_test(MT3Backbone, TINY_BACKBONE_CONFIG, batch, (3, 6, 20))


def test_decoder_is_causal(tiny):
    batch = _batch()
    changed = dict(batch, decoder_token_ids=batch["decoder_token_ids"].copy())
    changed["decoder_token_ids"][:, 4] = 1
    before, after = _numpy(tiny(batch)), _numpy(tiny(changed))
    np.testing.assert_allclose(after[:, :4], before[:, :4], atol=1e-6)
    assert not np.allclose(after[:, 4:], before[:, 4:])


def test_trailing_padding_mask_leaves_real_positions_unchanged(tiny):
    batch = _batch(length=6)
    padding_mask = np.array([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4], "int32")
    masked = _numpy(tiny(dict(batch, decoder_padding_mask=padding_mask)))
    unmasked = _numpy(tiny(batch))
    for row, valid in enumerate(padding_mask.sum(axis=1)):
        np.testing.assert_allclose(masked[row, :valid], unmasked[row, :valid], atol=1e-5)
    assert not np.allclose(masked[2, 2:], unmasked[2, 2:])


def test_training_uses_dropout(tiny):
    batch = _batch()
    np.testing.assert_array_equal(_numpy(tiny(batch)), _numpy(tiny(batch)))
    assert not np.allclose(_numpy(tiny(batch, training=True)), _numpy(tiny(batch)))


def test_decode_steps_match_teacher_forcing_across_cache_growth(tiny):
    batch = _batch(length=7)
    encoded = tiny.encode(batch["encoder_inputs"])
    full = _numpy(tiny.decode(encoded, batch["decoder_token_ids"]))
    cache = tiny.init_cache(encoded, 3)
    for index in range(7):
        if index == 3:
            cache = tiny.grow_cache(cache, 16)
        token_ids = batch["decoder_token_ids"][:, index : index + 1]
        logits, cache = tiny.decode_step(token_ids, cache, index)
        np.testing.assert_allclose(_numpy(logits), full[:, index], atol=1e-5)


# ---- parity with the original MT3 (official checkpoint, reference outputs) ----------------


@pytest.fixture(scope="module")
def mt3_backbone(checkpoint_dir):
    from keras_mt3.checkpoints.convert_t5x import load_t5x_weights
    from keras_mt3.checkpoints.t5x_checkpoint import read_t5x_checkpoint

    backbone = MT3Backbone()
    load_t5x_weights(backbone, read_t5x_checkpoint(checkpoint_dir))
    return backbone


@pytest.mark.checkpoint
@pytest.mark.parametrize("clip,index", PARITY_SEGMENTS)
def test_matches_original_mt3(mt3_backbone, reference_dir, clip, index):
    inputs = np.load(reference_dir / f"{clip}.inputs.npz")["encoder_input_tokens"]
    inputs = inputs[index : index + 1]
    reference = np.load(reference_dir / f"{clip}.logits.npz")
    tokens = reference[f"tokens_{index}"].astype("int32")
    encoded = mt3_backbone.encode(inputs)
    assert np.abs(_numpy(encoded)[0] - reference[f"encoded_{index}"]).max() < 1e-4
    decoder_inputs = np.concatenate([[0], tokens[:-1]]).astype("int32")[None]  # shift right, BOS 0
    logits = _numpy(mt3_backbone.decode(encoded, decoder_inputs))[0]
    assert np.abs(logits - reference[f"logits_{index}"]).max() < 1e-3
    np.testing.assert_array_equal(logits.argmax(axis=-1), tokens)
