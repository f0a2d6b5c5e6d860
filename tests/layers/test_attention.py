import keras
import numpy as np
import pytest
from t5_numpy_reference import attention as reference_attention
from t5_numpy_reference import value

from helpers import run_layer_test

from keras_mt3.layers.attention import T5Attention

HIDDEN, HEADS, HEAD_DIM = 12, 3, 4


def _layer(seed=0):
    layer = T5Attention(HEADS, HEAD_DIM, dropout=0.5)
    layer.build((None, None, HIDDEN))
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32") * 0.5)
    return layer


def _kernels(layer):
    kernels = (layer.query_kernel, layer.key_kernel, layer.value_kernel, layer.output_kernel)
    return [value(kernel) for kernel in kernels]


def _inputs(*shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_kernel_shapes_keep_heads_separate():
    layer = _layer()
    assert tuple(layer.query_kernel.shape) == (HIDDEN, HEADS, HEAD_DIM)
    assert tuple(layer.output_kernel.shape) == (HEADS, HEAD_DIM, HIDDEN)
    assert len(layer.weights) == 4  # no biases


def test_matches_unscaled_reference_with_and_without_mask():
    layer = _layer()
    queries, memory = _inputs(2, 5, HIDDEN), _inputs(2, 7, HIDDEN, seed=2)
    mask = np.random.default_rng(3).random((2, 5, 7)) > 0.3
    mask[:, :, 0] = True
    for kwargs, ref_mask in (({}, None), ({"attention_mask": mask}, mask)):
        got = keras.ops.convert_to_numpy(layer(queries, memory, **kwargs))
        expected = reference_attention(queries, memory, *_kernels(layer), mask=ref_mask)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_scaling_by_sqrt_head_dim_would_differ():
    # Guards against a silent 1/sqrt(head_dim): the reference without it is what we match.
    layer = _layer()
    x = _inputs(1, 4, HIDDEN)
    wq, wk, wv, wo = _kernels(layer)
    scaled = reference_attention(x, x, wq / np.sqrt(HEAD_DIM), wk, wv, wo)
    got = keras.ops.convert_to_numpy(layer(x))
    assert np.abs(got - scaled).max() > 1e-2


def test_fully_masked_row_attends_uniformly():
    layer = _layer()
    x = _inputs(1, 3, HIDDEN)
    mask = np.ones((1, 3, 3), bool)
    mask[0, 1] = False
    got = keras.ops.convert_to_numpy(layer(x, attention_mask=mask))
    _, _, wv, wo = _kernels(layer)
    uniform = np.einsum("bknh,nhd->bd", np.einsum("bkd,dnh->bknh", x, wv), wo) / 3
    np.testing.assert_allclose(got[0, 1], uniform[0], atol=1e-4)


def test_cached_steps_equal_causal_attention():
    layer = _layer()
    length, capacity = 5, 8
    x = _inputs(2, length, HIDDEN)
    causal = np.tril(np.ones((length, length), bool))[None]
    full = keras.ops.convert_to_numpy(layer(x, attention_mask=causal))
    key_cache = keras.ops.zeros((2, HEADS, capacity, HEAD_DIM))
    value_cache = keras.ops.zeros((2, HEADS, capacity, HEAD_DIM))
    for index in range(length):
        step, key_cache, value_cache = layer.attend_with_cache(
            x[:, index : index + 1], key_cache, value_cache, index
        )
        step = keras.ops.convert_to_numpy(step)
        np.testing.assert_allclose(step[:, 0], full[:, index], atol=1e-5)
    # Positions past the last step stay empty.
    assert np.all(keras.ops.convert_to_numpy(key_cache)[:, :, length:] == 0)


def test_appending_cache_steps_equal_causal_attention():
    layer = _layer()
    length = 5
    x = _inputs(2, length, HIDDEN)
    causal = np.tril(np.ones((length, length), bool))[None]
    full = keras.ops.convert_to_numpy(layer(x, attention_mask=causal))
    key_cache = keras.ops.zeros((2, HEADS, 0, HEAD_DIM))
    value_cache = keras.ops.zeros((2, HEADS, 0, HEAD_DIM))
    for index in range(length):
        step, key_cache, value_cache = layer.attend_with_cache(
            x[:, index : index + 1], key_cache, value_cache, index, cache_write="append"
        )
        step = keras.ops.convert_to_numpy(step)
        np.testing.assert_allclose(step[:, 0], full[:, index], atol=1e-5)
        assert tuple(key_cache.shape) == (2, HEADS, index + 1, HEAD_DIM)


def test_in_place_cache_steps_equal_copying_ones():
    layer = _layer()
    x = _inputs(2, 4, HIDDEN)
    caches = {}
    for cache_write in ("update", "in_place"):
        key_cache = keras.ops.zeros((2, HEADS, 6, HEAD_DIM))
        value_cache = keras.ops.zeros((2, HEADS, 6, HEAD_DIM))
        steps = []
        for index in range(4):
            step, key_cache, value_cache = layer.attend_with_cache(
                x[:, index : index + 1], key_cache, value_cache, index, cache_write=cache_write
            )
            steps.append(keras.ops.convert_to_numpy(step))
        caches[cache_write] = (steps, keras.ops.convert_to_numpy(key_cache))
    np.testing.assert_array_equal(caches["update"][0], caches["in_place"][0])
    np.testing.assert_array_equal(caches["update"][1], caches["in_place"][1])


def test_unknown_cache_write_is_refused():
    layer = _layer()
    cache = keras.ops.zeros((1, HEADS, 4, HEAD_DIM))
    with pytest.raises(ValueError, match="cache_write"):
        layer.attend_with_cache(_inputs(1, 1, HIDDEN), cache, cache, 0, cache_write="insert")


def test_dropout_only_in_training_and_shared_across_queries():
    layer = _layer()
    queries = np.repeat(_inputs(1, 1, HIDDEN), 4, axis=1)  # identical queries
    # Distinct keys/values, so dropping any key changes the output (with identical values a
    # dropped key can be exactly compensated by the 1/(1-rate) rescaling).
    keys_values = _inputs(1, 16, HIDDEN, seed=2)
    inference = keras.ops.convert_to_numpy(layer(queries, keys_values))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(queries, keys_values)), inference)
    trained = keras.ops.convert_to_numpy(layer(queries, keys_values, training=True))
    assert not np.allclose(trained, inference)
    # One mask per (batch, head, key), broadcast over queries: identical queries stay identical.
    np.testing.assert_allclose(trained, np.broadcast_to(trained[:, :1], trained.shape), atol=1e-6)


def test_layer_contract_self_and_cross_attention():
    init = {"num_heads": 2, "head_dim": 3, "dropout": 0.1}
    queries, memory = _inputs(2, 5, HIDDEN), _inputs(2, 7, HIDDEN, seed=2)
    run_layer_test(T5Attention, init, queries, (2, 5, HIDDEN), expected_num_weights=4)
    run_layer_test(T5Attention, init, (queries, memory), (2, 5, HIDDEN))
