import json

import keras
import numpy as np
import pytest
from helpers import tiny_backbone

from keras_mt3.models.greedy_decoding import default_cache_lengths
from keras_mt3.models.greedy_decoding import greedy_decode
from keras_mt3.models.greedy_decoding import make_greedy_decode_fn
from keras_mt3.models.mt3_backbone import MT3Backbone

MAX_LENGTH = 20
# With these NumPy-seeded weights and inputs, rows emit EOS at different steps (3, 4, 5, 19)
# and two rows never do: the loop must keep finished rows padded while others continue.
SEED = 8


@pytest.fixture(scope="module")
def tiny_model_and_inputs():
    shapes = dict(input_dim=16, max_encoder_length=20, max_decoder_length=32)
    backbone = tiny_backbone(vocabulary_size=16, hidden_dim=32, head_dim=8, intermediate_dim=48,
                             **shapes)
    rng = np.random.RandomState(SEED)
    for weight in backbone.weights:
        fan_in = np.prod(weight.shape[:-1]) if "output" in weight.path else weight.shape[0]
        stddev = 1.0 if len(weight.shape) < 2 else 1 / np.sqrt(fan_in)
        weight.assign(rng.normal(0, stddev, weight.shape).astype("float32"))
    inputs = rng.randn(8, 20, 16).astype("float32")
    return backbone, inputs


def _uncached_greedy(backbone, inputs, steps):
    """Argmax-iterates full teacher-forced passes, then cuts each row after its first EOS.

    Every pass sees all `steps` positions (later ones still zero): the decoder is causal, and
    one fixed shape keeps eager backends from recompiling per length.
    """
    encoded = backbone.encode(inputs)
    sequence = np.zeros((len(inputs), steps + 1), "int32")
    for step in range(steps):
        logits = keras.ops.convert_to_numpy(backbone.decode(encoded, sequence[:, :-1]))
        sequence[:, step + 1] = logits[:, step].argmax(-1)
    tokens = sequence[:, 1:]
    for row in tokens:
        eos = np.flatnonzero(row == 1)
        if eos.size:
            row[eos[0] + 1 :] = 0
    return tokens


@pytest.fixture(scope="module")
def expected_tokens(tiny_model_and_inputs):
    return _uncached_greedy(*tiny_model_and_inputs, MAX_LENGTH)


def test_reference_rows_finish_at_different_steps(expected_tokens):
    finish_steps = {_eos_step(row) for row in expected_tokens}
    assert None in finish_steps and len(finish_steps) >= 4


def _eos_step(row):
    return int(np.argmax(row == 1)) if (row == 1).any() else None


@pytest.mark.parametrize(
    "cache_lengths", [None, (MAX_LENGTH,), (4, 8, MAX_LENGTH), (1, MAX_LENGTH)]
)
def test_cached_greedy_equals_uncached_argmax(
    tiny_model_and_inputs, expected_tokens, cache_lengths
):
    backbone, inputs = tiny_model_and_inputs
    encoded = backbone.encode(inputs)
    tokens = greedy_decode(backbone, encoded, max_length=MAX_LENGTH, cache_lengths=cache_lengths)
    tokens = keras.ops.convert_to_numpy(tokens)
    assert tokens.dtype == np.int32 and tokens.shape == (8, MAX_LENGTH)
    np.testing.assert_array_equal(tokens, expected_tokens)


def test_compiled_decode_fn_equals_uncached_argmax(tiny_model_and_inputs, expected_tokens):
    backbone, inputs = tiny_model_and_inputs
    decode_fn = make_greedy_decode_fn(backbone, MAX_LENGTH)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(decode_fn(inputs)), expected_tokens)
    # A second batch of the same shape reuses the compiled program and still decodes correctly.
    flipped = keras.ops.convert_to_numpy(decode_fn(inputs[::-1].copy()))
    np.testing.assert_array_equal(flipped, expected_tokens[::-1])


def test_stops_when_every_row_has_finished(tiny_model_and_inputs, expected_tokens):
    backbone, inputs = tiny_model_and_inputs
    finished_rows = [row for row in range(8) if (expected_tokens[row] == 1).any()]
    last_eos = max(int(np.argmax(expected_tokens[row] == 1)) for row in finished_rows)
    steps = []
    original_step = backbone.decode_step

    def counting_step(*args, **kwargs):
        steps.append(1)
        return original_step(*args, **kwargs)

    backbone.decode_step = counting_step
    try:
        # Eagerly (outside jit) each step runs Python once under torch; JAX and TensorFlow
        # trace the loop body once per cache phase instead, so count only under torch.
        encoded = backbone.encode(inputs[finished_rows])
        tokens = keras.ops.convert_to_numpy(greedy_decode(backbone, encoded, MAX_LENGTH))
    finally:
        del backbone.decode_step
    np.testing.assert_array_equal(tokens, expected_tokens[finished_rows])
    if keras.backend.backend() == "torch":
        assert len(steps) == last_eos + 1


def test_default_cache_lengths():
    assert default_cache_lengths(1024) == (128, 1024)
    assert default_cache_lengths(100) == (100,)
    assert default_cache_lengths(1024, eager=True) == (32, 64, 128, 256, 512, 1024)


@pytest.mark.parametrize("cache_lengths", [(8, 4, MAX_LENGTH), (4, 8), ()])
def test_rejects_bad_cache_schedules(tiny_model_and_inputs, cache_lengths):
    backbone, inputs = tiny_model_and_inputs
    with pytest.raises(ValueError, match="cache_lengths"):
        encoded = backbone.encode(inputs[:1])
        greedy_decode(backbone, encoded, MAX_LENGTH, cache_lengths=cache_lengths)


# ---- the official checkpoint reproduces the original model's tokens ------------------------


@pytest.mark.checkpoint
def test_official_checkpoint_reproduces_reference_tokens(checkpoint_dir, reference_dir):
    from keras_mt3.checkpoints.convert_t5x import load_t5x_weights
    from keras_mt3.checkpoints.t5x_checkpoint import read_t5x_checkpoint

    backbone = MT3Backbone()
    load_t5x_weights(backbone, read_t5x_checkpoint(checkpoint_dir))
    # The last, zero-padded piano segment (4 tokens) and a busy multi-instrument segment whose
    # 130 tokens outgrow the first 128-position cache phase.
    segments = [("piano_chorale", 10), ("multi_band", 2)]
    inputs = np.stack(
        [
            np.load(reference_dir / f"{clip}.inputs.npz")["encoder_input_tokens"][index]
            for clip, index in segments
        ]
    )
    tokens = keras.ops.convert_to_numpy(make_greedy_decode_fn(backbone, 1024)(inputs))
    for row, (clip, index) in enumerate(segments):
        expected = json.loads((reference_dir / f"{clip}.json").read_text())["segments"][index]
        expected = expected["model_vocab_ids"]
        np.testing.assert_array_equal(tokens[row, : len(expected)], expected)
        assert expected[-1] == 1 and not tokens[row, len(expected) :].any()
