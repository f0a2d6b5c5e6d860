"""Training under the current backend: a tiny model learns 8 rendered clips by heart and T5X
Adafactor matches its reference. Whole runs: test_training_run.py (the library) and
tests/cli/test_train_command.py (the command)."""

import helpers
import keras
import numpy as np
import pytest

from keras_mt3.data.pipeline import TrainingDataConfig, evaluation_dataset
from keras_mt3.data.synthetic import synthetic_pairs
from keras_mt3.models.losses import MT3Loss
from keras_mt3.models.optimizers import T5XAdafactor, factored_shape, make_optimizer

JIT_COMPILE = keras.backend.backend() != "torch"  # explicit: XLA under jax/tensorflow


def learning_transcriber(frames, target_length, dropout=0.0):
    """Wider than the helpers' tiny model and two layers deep: enough to learn 8 clips."""
    layers = dict(num_encoder_layers=2, num_decoder_layers=2)
    return helpers.tiny_transcriber(
        decode_batch_size=8, hidden_dim=64, head_dim=32, intermediate_dim=128, **layers,
        max_encoder_length=frames, max_decoder_length=target_length, dropout=dropout,
    )


def test_tiny_model_memorizes_eight_rendered_clips_until_greedy_decoding_is_exact():
    keras.utils.set_random_seed(0)
    # 0.5 s clips are 63 frames: one 64-frame window each, so the 8 examples are fixed.
    pairs = synthetic_pairs(8, 0.5, seed=3, programs=(0,), notes_per_second=4)
    config = TrainingDataConfig(window_frames=64, target_length=24, batch_size=8)
    ((x, y),) = list(evaluation_dataset(pairs, config).as_numpy_iterator())
    assert x["encoder_inputs"].shape == (8, 64, 512) and np.all((y > 0).sum(1) >= 6)

    model = learning_transcriber(64, 24)
    model.compile(
        optimizer=make_optimizer("adamw", 3e-3, weight_decay=0.0),
        loss=MT3Loss(),
        jit_compile=JIT_COMPILE,
    )
    initial_loss = model.evaluate(x, y, verbose=0)
    for _ in range(4):
        history = model.fit(x, y, batch_size=8, epochs=40, verbose=0, shuffle=False)
        tokens = model.generate(x["encoder_inputs"])
        if np.array_equal(tokens, y):
            break
    final_loss = history.history["loss"][-1]
    assert final_loss <= 0.05 * initial_loss, (initial_loss, final_loss)
    np.testing.assert_array_equal(tokens, y)


def numpy_t5x_adafactor(params, gradients, steps, lr=1e-3):
    """t5x/adafactor.py (beta1=None, factored, parameter scale, clipping 1.0), in NumPy."""
    params = params.astype(np.float64)
    shape = factored_shape(params.shape)
    row = col = full = None
    for step, gradient in enumerate(gradients, start=1):
        decay = 1.0 - step**-0.8
        squared = gradient.astype(np.float64) ** 2 + 1e-30
        if shape is None:
            full = (1 - decay) * squared if full is None else decay * full + (1 - decay) * squared
            update = gradient / np.sqrt(full)
        else:
            squared = squared.reshape(shape)
            new_row, new_col = squared.mean(1), squared.mean(0)
            row = (1 - decay) * new_row if row is None else decay * row + (1 - decay) * new_row
            col = (1 - decay) * new_col if col is None else decay * col + (1 - decay) * new_col
            update = gradient.reshape(shape) / np.sqrt(row / row.mean())[:, None] / np.sqrt(col)
            update = update.reshape(params.shape)
        update /= max(1.0, np.sqrt(np.mean(update**2)))
        params = params - lr * max(np.sqrt(np.mean(params**2)), 1e-3) * update
    return params


@pytest.mark.parametrize("shape", [(128, 256), (256, 2, 64), (2, 64, 256), (64, 32), (16,)])
def test_t5x_adafactor_matches_the_t5x_update_rule(shape):
    rng = np.random.default_rng(0)
    initial = rng.standard_normal(shape).astype(np.float32) * 0.05
    gradients = [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]
    if len(shape) == 2:
        gradients[1][: shape[0] // 2] = 0.0  # rows without gradient (unused embeddings)
    variable = keras.Variable(initial)
    optimizer = T5XAdafactor(learning_rate=1e-3)
    for gradient in gradients:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(gradient), variable)])
    actual = keras.ops.convert_to_numpy(variable.value)
    expected = numpy_t5x_adafactor(initial, gradients, 3)
    assert np.all(np.isfinite(actual))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-7)


def test_factoring_follows_t5x_matrix_layouts():
    assert factored_shape((512, 6, 64)) == (512, 384)
    assert factored_shape((6, 64, 512)) == (384, 512)
    assert factored_shape((1536, 512)) == (1536, 512)
    assert factored_shape((512,)) is None and factored_shape((64, 512)) is None
