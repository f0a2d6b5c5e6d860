import keras
import numpy as np
from t5_numpy_reference import attention
from t5_numpy_reference import gated_gelu_mlp
from t5_numpy_reference import rms_norm
from t5_numpy_reference import value

from helpers import run_layer_test

from keras_mt3.layers.decoder_layer import MT3DecoderLayer

HEADS, HEAD_DIM, HIDDEN = 2, 4, 8


def _layer():
    layer = MT3DecoderLayer(num_heads=HEADS, head_dim=HEAD_DIM, intermediate_dim=16, dropout=0.1)
    layer.build((None, None, HIDDEN))
    rng = np.random.default_rng(0)
    for weight in layer.weights:
        offset = 1.0 if len(weight.shape) == 1 else 0.0  # norm scales around 1
        weight.assign(rng.normal(size=weight.shape).astype("float32") * 0.5 + offset)
    return layer


def _kernels(attn):
    kernels = (attn.query_kernel, attn.key_kernel, attn.value_kernel, attn.output_kernel)
    return [value(kernel) for kernel in kernels]


def _reference(layer, x, encoded, self_mask):
    h = rms_norm(x, value(layer.pre_self_attention_layer_norm.scale))
    x = x + attention(h, h, *_kernels(layer.self_attention), mask=self_mask)
    h = rms_norm(x, value(layer.pre_cross_attention_layer_norm.scale))
    x = x + attention(h, encoded, *_kernels(layer.cross_attention))
    mlp = layer.mlp
    kernels = [value(k) for k in (mlp.gate_kernel, mlp.linear_kernel, mlp.output_kernel)]
    return x + gated_gelu_mlp(rms_norm(x, value(layer.pre_mlp_layer_norm.scale)), *kernels)


def _inputs():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 5, HIDDEN)).astype("float32") * 2
    encoded = rng.normal(size=(2, 7, HIDDEN)).astype("float32")
    return x, encoded


def test_teacher_forcing_matches_reference():
    layer = _layer()
    x, encoded = _inputs()
    causal = np.tril(np.ones((5, 5), bool))[None]
    got = keras.ops.convert_to_numpy(layer(x, encoded, causal))
    np.testing.assert_allclose(got, _reference(layer, x, encoded, causal), atol=2e-4, rtol=1e-4)


def test_cached_positions_match_teacher_forcing():
    layer = _layer()
    x, encoded = _inputs()
    causal = np.tril(np.ones((5, 5), bool))[None]
    full = keras.ops.convert_to_numpy(layer(x, encoded, causal))
    cross_key, cross_value = layer.cross_attention.project_key_value(encoded)
    key_cache = value_cache = keras.ops.zeros((2, HEADS, 6, HEAD_DIM))
    for index in range(5):
        step, key_cache, value_cache = layer.call_cached(
            x[:, index : index + 1], cross_key, cross_value, key_cache, value_cache, index
        )
        step = keras.ops.convert_to_numpy(step)
        np.testing.assert_allclose(step[:, 0], full[:, index], atol=1e-5)


def test_layer_contract():
    x, encoded = _inputs()
    causal = np.tril(np.ones((5, 5), bool))[None]
    init = dict(num_heads=HEADS, head_dim=HEAD_DIM, intermediate_dim=16, dropout=0.1)
    run_layer_test(MT3DecoderLayer, init, (x, encoded, causal), (2, 5, HIDDEN),
                   expected_num_weights=14)
