"""Optimizers for training MT3: T5X's Adafactor (what MT3 was trained with) or AdamW.

`T5XAdafactor` follows `t5x/adafactor.py` with MT3's settings: constant learning rate (1e-3),
no momentum, second-moment decay `1 - t ** -0.8`, factored second moments for matrices whose
two dimensions are both >= 128, update clipping at RMS 1.0, and updates scaled by the
parameter's RMS (at least 1e-3). Kernels the backbone keeps 3-D (attention: `[hidden, heads,
head_dim]` and `[heads, head_dim, hidden]`) are factored as the 2-D matrices T5X stores.

It is used instead of `keras.optimizers.Adafactor` because that one multiplies the row and
column factors before taking the inverse square root: for embedding rows that get no gradient
the product underflows to 0 (XLA flushes subnormals) and 0 / 0 turns the whole matrix into NaN
after one step. T5X (and this class) take each factor's inverse square root separately.
"""

import keras
from keras import ops

from keras_mt3.errors import KerasMT3Error

MT3_LEARNING_RATE = 1e-3
ADAMW_DEFAULTS = {"learning_rate": 3e-4, "weight_decay": 0.01, "global_clipnorm": 1.0}
OPTIMIZERS = ("adafactor", "adamw")


def factored_shape(shape, min_dim_size_to_factor=128):
    """`(rows, cols)` whose second moments are factored, or None to keep them whole.

    Variables of more than two axes are first viewed as matrices by merging, each time, the
    adjacent pair of axes with the smallest product: `[512, 6, 64]` -> `[512, 384]` and
    `[6, 64, 512]` -> `[384, 512]`, the layouts of T5X's attention kernels.
    """
    dims = [int(dim) for dim in shape]
    if len(dims) < 2:
        return None
    while len(dims) > 2:
        merge = min(range(len(dims) - 1), key=lambda axis: dims[axis] * dims[axis + 1])
        dims[merge : merge + 2] = [dims[merge] * dims[merge + 1]]
    if min(dims) < min_dim_size_to_factor:
        return None
    return tuple(dims)


@keras.saving.register_keras_serializable(package="keras_mt3")
class T5XAdafactor(keras.optimizers.Optimizer):
    """Adafactor as in T5X (`beta1=None`, `multiply_by_parameter_scale=True`, `factored=True`).

    Args:
        learning_rate: float or schedule (MT3: constant 1e-3).
        decay_rate: second-moment decay exponent: `decay = 1 - step ** -decay_rate`.
        clipping_threshold: updates are scaled down to at most this RMS.
        min_dim_size_to_factor: factor only matrices whose both dimensions are at least this.
        epsilon1: added to squared gradients.
        epsilon2: floor of the parameter RMS that scales updates.
        multiply_by_parameter_scale: scale updates by the parameter's RMS.
    """

    def __init__(
        self,
        learning_rate=MT3_LEARNING_RATE,
        decay_rate=0.8,
        clipping_threshold=1.0,
        min_dim_size_to_factor=128,
        epsilon1=1e-30,
        epsilon2=1e-3,
        multiply_by_parameter_scale=True,
        name="t5x_adafactor",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.decay_rate = float(decay_rate)
        self.clipping_threshold = float(clipping_threshold)
        self.min_dim_size_to_factor = int(min_dim_size_to_factor)
        self.epsilon1 = float(epsilon1)
        self.epsilon2 = float(epsilon2)
        self.multiply_by_parameter_scale = bool(multiply_by_parameter_scale)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._shapes, self._rows, self._cols, self._full = [], [], [], []
        for variable in var_list:
            shape = factored_shape(variable.shape, self.min_dim_size_to_factor)
            self._shapes.append(shape)
            if shape is None:
                self._rows.append(None)
                self._cols.append(None)
                self._full.append(
                    self.add_variable_from_reference(variable, name="second_moment")
                )
            else:
                self._rows.append(
                    self.add_variable((shape[0],), dtype=variable.dtype, name="row_moment")
                )
                self._cols.append(
                    self.add_variable((shape[1],), dtype=variable.dtype, name="col_moment")
                )
                self._full.append(None)

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        gradient = ops.cast(_dense(gradient), dtype)
        step = ops.cast(self.iterations + 1, dtype)
        decay = 1.0 - ops.power(step, -self.decay_rate)
        squared = ops.square(gradient) + self.epsilon1
        shape = self._shapes[index]
        if shape is None:
            moment = decay * self._full[index] + (1.0 - decay) * squared
            self.assign(self._full[index], moment)
            update = gradient * ops.rsqrt(moment)
        else:
            squared = ops.reshape(squared, shape)
            row = decay * self._rows[index] + (1.0 - decay) * ops.mean(squared, axis=1)
            col = decay * self._cols[index] + (1.0 - decay) * ops.mean(squared, axis=0)
            self.assign(self._rows[index], row)
            self.assign(self._cols[index], col)
            row_factor = ops.rsqrt(row / ops.mean(row))
            col_factor = ops.rsqrt(col)
            update = ops.reshape(gradient, shape) * row_factor[:, None] * col_factor[None, :]
            update = ops.reshape(update, variable.shape)
        update = update / ops.maximum(1.0, _rms(update) / self.clipping_threshold)
        scale = ops.cast(learning_rate, dtype)
        if self.multiply_by_parameter_scale:
            scale = scale * ops.maximum(_rms(variable), self.epsilon2)
        self.assign_sub(variable, scale * update)

    def get_config(self):
        config = super().get_config()
        config.update(
            decay_rate=self.decay_rate,
            clipping_threshold=self.clipping_threshold,
            min_dim_size_to_factor=self.min_dim_size_to_factor,
            epsilon1=self.epsilon1,
            epsilon2=self.epsilon2,
            multiply_by_parameter_scale=self.multiply_by_parameter_scale,
        )
        return config


def _dense(gradient):
    # Embedding gradients arrive as sparse IndexedSlices under TensorFlow; the moments need
    # them dense.
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if isinstance(gradient, tf.IndexedSlices):
            return tf.convert_to_tensor(gradient)
    return gradient


def _rms(x):
    return ops.sqrt(ops.mean(ops.square(x)))


def make_optimizer(name="adafactor", learning_rate=None, **kwargs):
    """`"adafactor"`: `T5XAdafactor` (MT3's, lr 1e-3); `"adamw"`: AdamW with lr 3e-4, weight
    decay 0.01 and global gradient clipping at norm 1.0. `kwargs` go to the optimizer."""
    if name == "adafactor":
        rate = MT3_LEARNING_RATE if learning_rate is None else learning_rate
        return T5XAdafactor(learning_rate=rate, **kwargs)
    if name == "adamw":
        options = {**ADAMW_DEFAULTS, **kwargs}
        if learning_rate is not None:
            options["learning_rate"] = learning_rate
        return keras.optimizers.AdamW(**options)
    raise KerasMT3Error(f"unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}")

