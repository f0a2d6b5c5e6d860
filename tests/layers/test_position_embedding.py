import keras
import numpy as np
import pytest
from helpers import run_layer_test

from keras_mt3.layers.position_embedding import SinusoidalPositionEmbedding
from keras_mt3.layers.position_embedding import sinusoidal_position_table


@pytest.mark.backend_independent
def test_table_is_concatenated_sin_cos_with_timescales_from_1_to_1e4():
    table = sinusoidal_position_table(2048, 512)
    assert table.shape == (2048, 512) and table.dtype == np.float32
    positions = np.array([0, 1, 7, 255, 1023, 2047])[:, None]
    # 256 inverse timescales, geometric from 1 down to exactly 1e-4 (denominator 255).
    inverse_timescales = 10000.0 ** (-np.arange(256) / 255.0)
    angles = positions * inverse_timescales
    np.testing.assert_allclose(table[positions[:, 0], :256], np.sin(angles), atol=1e-6)
    np.testing.assert_allclose(table[positions[:, 0], 256:], np.cos(angles), atol=1e-6)
    assert table[1, 255] == pytest.approx(np.sin(1e-4), rel=1e-5)
    np.testing.assert_array_equal(table[0], np.r_[np.zeros(256), np.ones(256)])


@pytest.mark.backend_independent
def test_longer_table_extends_shorter_one():
    np.testing.assert_array_equal(
        sinusoidal_position_table(256, 64), sinusoidal_position_table(1024, 64)[:256]
    )


def test_layer_adds_rows_from_start_index():
    layer = SinusoidalPositionEmbedding(max_length=32)
    inputs = np.random.default_rng(0).normal(size=(2, 5, 16)).astype("float32")
    table = sinusoidal_position_table(32, 16)
    outputs = keras.ops.convert_to_numpy(layer(inputs))
    np.testing.assert_allclose(outputs, inputs + table[:5], atol=1e-6)
    shifted = layer(inputs[:, :1], start_index=keras.ops.convert_to_tensor(9, "int32"))
    shifted = keras.ops.convert_to_numpy(shifted)
    np.testing.assert_allclose(shifted, inputs[:, :1] + table[9:10], atol=1e-6)
    assert layer.weights == []  # a constant, nothing to train or store


def test_layer_contract():
    inputs = np.random.default_rng(1).normal(size=(2, 5, 16)).astype("float32")
    run_layer_test(SinusoidalPositionEmbedding, {"max_length": 32}, inputs, (2, 5, 16),
                   expected_num_weights=0)
