import keras
import numpy as np
from t5_numpy_reference import attention
from t5_numpy_reference import gated_gelu_mlp
from t5_numpy_reference import rms_norm
from t5_numpy_reference import value

from helpers import run_layer_test

from keras_mt3.layers.encoder_layer import MT3EncoderLayer


def _randomize(layer, seed=0):
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        offset = 1.0 if len(weight.shape) == 1 else 0.0  # norm scales around 1
        weight.assign(rng.normal(size=weight.shape).astype("float32") * 0.5 + offset)


def test_pre_norm_residual_block_matches_reference():
    layer = MT3EncoderLayer(num_heads=2, head_dim=4, intermediate_dim=16, dropout=0.1)
    layer.build((None, None, 8))
    _randomize(layer)
    x = np.random.default_rng(1).normal(size=(2, 5, 8)).astype("float32") * 3
    attn, mlp = layer.attention, layer.mlp
    normed = rms_norm(x, value(layer.pre_attention_layer_norm.scale))
    kernels = (attn.query_kernel, attn.key_kernel, attn.value_kernel, attn.output_kernel)
    h = x + attention(normed, normed, *[value(k) for k in kernels])
    expected = h + gated_gelu_mlp(
        rms_norm(h, value(layer.pre_mlp_layer_norm.scale)),
        *[value(k) for k in (mlp.gate_kernel, mlp.linear_kernel, mlp.output_kernel)],
    )
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), expected, atol=2e-4, rtol=1e-4)


def test_rms_normalization_is_t5_rmsnorm():
    layer = keras.layers.RMSNormalization(epsilon=1e-6)
    layer.build((None, 6))
    layer.scale.assign(np.arange(1, 7, dtype="float32"))
    tiny = [1e-4, -2e-4, 3e-4, 0.0, 5e-4, -1e-4]  # where epsilon matters
    x = np.array([tiny, [3.0, -1.0, 2.0, 0.5, -4.0, 10.0]], "float32")
    expected = rms_norm(x.astype(np.float64), np.arange(1, 7))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), expected, rtol=1e-5)
    assert keras.ops.convert_to_numpy(layer(x)).dtype == np.float32


def test_training_applies_dropout():
    layer = MT3EncoderLayer(num_heads=2, head_dim=4, intermediate_dim=16, dropout=0.3)
    x = np.random.default_rng(2).normal(size=(2, 5, 8)).astype("float32")
    inference = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), inference)
    assert not np.allclose(keras.ops.convert_to_numpy(layer(x, training=True)), inference)


def test_layer_contract():
    x = np.random.default_rng(3).normal(size=(2, 5, 8)).astype("float32")
    init = dict(num_heads=2, head_dim=4, intermediate_dim=16, dropout=0.1)
    run_layer_test(MT3EncoderLayer, init, x, (2, 5, 8), expected_num_weights=9)
