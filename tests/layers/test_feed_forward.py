import keras
import numpy as np
from t5_numpy_reference import gated_gelu_mlp
from t5_numpy_reference import value

from helpers import run_layer_test

from keras_mt3.layers.encoder_layer import residual_dropout
from keras_mt3.layers.feed_forward import GatedGeluFeedForward


def _mlp():
    mlp = GatedGeluFeedForward(intermediate_dim=10, dropout=0.5)
    mlp.build((None, None, 6))
    rng = np.random.default_rng(0)
    for weight in mlp.weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32"))
    return mlp


def test_matches_tanh_gelu_reference_not_exact_gelu():
    mlp = _mlp()
    x = np.random.default_rng(1).normal(size=(2, 4, 6)).astype("float32") * 2
    kernels = [value(k) for k in (mlp.gate_kernel, mlp.linear_kernel, mlp.output_kernel)]
    got = keras.ops.convert_to_numpy(mlp(x))
    np.testing.assert_allclose(got, gated_gelu_mlp(x, *kernels), atol=1e-4, rtol=1e-4)
    exact_gate = keras.ops.convert_to_numpy(keras.activations.gelu(x @ kernels[0]))
    assert np.abs(got - (exact_gate * (x @ kernels[1])) @ kernels[2]).max() > 1e-3
    assert len(mlp.weights) == 3  # no biases


def test_dropout_only_when_training():
    mlp = _mlp()
    x = np.ones((1, 3, 6), "float32")
    inference = keras.ops.convert_to_numpy(mlp(x))
    trained = keras.ops.convert_to_numpy(mlp(x, training=True))
    assert not np.allclose(trained, inference)
    # The same hidden units are dropped at every position of a sequence.
    np.testing.assert_allclose(trained, np.broadcast_to(trained[:, :1], trained.shape), atol=1e-5)


def test_residual_dropout_mask_is_shared_along_length():
    dropout = residual_dropout(0.5, "drop")
    outputs = keras.ops.convert_to_numpy(dropout(np.ones((3, 7, 40), "float32"), training=True))
    assert set(np.unique(outputs)) == {0.0, 2.0}
    np.testing.assert_array_equal(outputs, np.broadcast_to(outputs[:, :1], outputs.shape))
    assert 0 < (outputs == 0).mean() < 1


def test_layer_contract():
    x = np.random.default_rng(2).normal(size=(2, 4, 6)).astype("float32")
    init = {"intermediate_dim": 10, "dropout": 0.5}
    run_layer_test(GatedGeluFeedForward, init, x, (2, 4, 6), expected_num_weights=3)
