import keras
import numpy as np
import pytest

from keras_mt3.errors import KerasMT3Error
from keras_mt3.models.losses import MT3Loss, token_losses


def numpy_token_losses(targets, logits, z_loss):
    logits = logits.astype(np.float64)
    peak = logits.max(-1, keepdims=True)
    log_z = np.log(np.exp(logits - peak).sum(-1)) + peak[..., 0]
    target_logits = np.take_along_axis(logits, targets[..., None], -1)[..., 0]
    return log_z - target_logits + z_loss * log_z**2


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    logits = (3.0 * rng.standard_normal((2, 5, 11)) + 2.0).astype(np.float32)
    targets = np.array([[5, 7, 1, 0, 0], [3, 4, 9, 10, 1]], np.int32)
    return targets, logits


def test_token_losses_are_cross_entropy_plus_z_loss(batch):
    targets, logits = batch
    actual = keras.ops.convert_to_numpy(token_losses(targets, logits, z_loss=1e-4))
    np.testing.assert_allclose(actual, numpy_token_losses(targets, logits, 1e-4), rtol=1e-5)
    without_z = keras.ops.convert_to_numpy(token_losses(targets, logits, z_loss=0.0))
    assert np.all(actual > without_z)  # log Z != 0 here, so the z-loss adds something


def test_default_loss_is_the_mean_over_non_pad_tokens(batch):
    targets, logits = batch
    per_token = numpy_token_losses(targets, logits, 1e-4)
    valid = targets > 0
    loss = float(keras.ops.convert_to_numpy(MT3Loss()(targets, logits)))
    assert loss == pytest.approx(per_token[valid].mean(), rel=1e-5)
    # Padding positions do not count, whatever their logits.
    noisy = logits.copy()
    noisy[~valid] = 1e3
    noisy_loss = float(keras.ops.convert_to_numpy(MT3Loss()(targets, noisy)))
    assert noisy_loss == pytest.approx(loss, rel=1e-5)


def test_sum_normalization_is_t5x_unnormalized_sum(batch):
    targets, logits = batch
    per_token = numpy_token_losses(targets, logits, 1e-4)
    loss = float(keras.ops.convert_to_numpy(MT3Loss(normalization="sum")(targets, logits)))
    assert loss == pytest.approx(per_token[targets > 0].sum(), rel=1e-5)


def test_sample_weights_weight_whole_examples(batch):
    targets, logits = batch
    per_token = numpy_token_losses(targets, logits, 1e-4)
    weights = np.array([0.0, 2.0], np.float32)
    loss = float(keras.ops.convert_to_numpy(MT3Loss()(targets, logits, sample_weight=weights)))
    assert loss == pytest.approx(per_token[1].mean(), rel=1e-5)


def test_all_padding_gives_zero_not_nan(batch):
    _, logits = batch
    loss = keras.ops.convert_to_numpy(MT3Loss()(np.zeros((2, 5), np.int32), logits))
    assert float(loss) == 0.0


def test_config_round_trip_and_bad_normalization():
    loss = MT3Loss(z_loss=0.0, normalization="sum")
    restored = MT3Loss.from_config(loss.get_config())
    assert (restored.z_loss, restored.normalization, restored.reduction) == (0.0, "sum", "sum")
    assert keras.losses.deserialize(keras.losses.serialize(loss)).normalization == "sum"
    with pytest.raises(KerasMT3Error, match="normalization"):
        MT3Loss(normalization="per_sequence")


def test_gradient_pushes_the_target_logit_up_and_log_z_towards_zero():
    logits = np.zeros((1, 1, 4), np.float32) + 5.0
    targets = np.array([[2]], np.int32)
    loss_fn = MT3Loss(z_loss=1e-2)
    gradient = _gradient(lambda z: loss_fn(targets, z), logits)
    # d/dz_i = softmax_i (1 + 2 z_loss log Z) - onehot_i, with log Z = 5 + ln 4.
    expected = np.full(4, 0.25) * (1 + 2e-2 * (5 + np.log(4))) - np.eye(4)[2]
    np.testing.assert_allclose(gradient[0, 0], expected, rtol=1e-4, atol=1e-6)


def _gradient(function, value):
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(function)(value))
    if backend == "tensorflow":
        import tensorflow as tf

        value = tf.constant(value)
        with tf.GradientTape() as tape:
            tape.watch(value)
            loss = function(value)
        return tape.gradient(loss, value).numpy()
    import torch

    value = torch.tensor(value, requires_grad=True)
    (gradient,) = torch.autograd.grad(function(value), value)
    return gradient.numpy()
