"""Fixed sinusoidal position encodings as used by MT3 (`[sin | cos]`, not interleaved).

See docs/mt3_details.md#network-traps.
"""

import keras
import numpy as np
from keras import ops


def sinusoidal_position_table(length, dim, min_timescale=1.0, max_timescale=10000.0):
    """Returns the `[length, dim]` float32 table MT3 adds to its inputs.

    Column `j < dim/2` is `sin(pos / timescale_j)`, column `dim/2 + j` is the matching cosine.
    The inverse timescales run geometrically from `1/min_timescale` to `1/max_timescale`
    *inclusive* (the exponent's denominator is `dim/2 - 1`), which is what makes this table
    differ from the usual interleaved Transformer encoding. Computed in float64 like the
    original, then rounded once to float32.
    """
    half = dim // 2
    log_step = -np.log(max_timescale / min_timescale) / (half - 1)
    inverse_timescales = min_timescale * np.exp(np.arange(half) * log_step)
    angles = np.arange(length)[:, np.newaxis] * inverse_timescales[np.newaxis, :]
    table = np.zeros((length, dim), dtype=np.float32)
    table[:, :half] = np.sin(angles)
    table[:, half : 2 * half] = np.cos(angles)
    return table


def is_per_row(index):
    """Whether a decoding position is one per batch row (a `[batch]` tensor) rather than one
    for the whole batch (an int or scalar tensor)."""
    return not isinstance(index, int) and len(ops.shape(index)) == 1


@keras.saving.register_keras_serializable(package="keras_mt3")
class SinusoidalPositionEmbedding(keras.layers.Layer):
    """Adds the fixed MT3 position table to `[batch, length, dim]` inputs.

    The table is a constant (not a weight): nothing is learned or stored in checkpoints.
    `start_index` (an int or scalar tensor) offsets the positions, for one-step decoding; a
    `[batch]` vector gives each row of a one-position input its own position (decoder slots
    at different steps, `keras_mt3.models.continuous_batching`).
    """

    def __init__(self, max_length, **kwargs):
        super().__init__(**kwargs)
        self.max_length = int(max_length)
        self._table = None

    def build(self, input_shape):
        table = sinusoidal_position_table(self.max_length, input_shape[-1])
        self._table = ops.convert_to_tensor(table, dtype=self.compute_dtype)

    def position_rows(self, start_index, length):
        """The `[length, dim]` rows for positions `start_index ... start_index + length - 1`."""
        return ops.slice(self._table, (start_index, 0), (length, ops.shape(self._table)[1]))

    def call(self, inputs, start_index=0):
        if is_per_row(start_index):
            return inputs + ops.take(self._table, start_index, axis=0)[:, None, :]
        length = ops.shape(inputs)[1]
        return inputs + self.position_rows(start_index, length)[None]

    def get_config(self):
        config = super().get_config()
        config["max_length"] = self.max_length
        return config
