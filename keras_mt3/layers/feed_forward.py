"""T5.1.1 gated-GELU feed-forward block: `wo(gelu_tanh(x @ wi_0) * (x @ wi_1))`.

The tanh form of GELU matters: docs/mt3_details.md#network-traps.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_mt3")
class GatedGeluFeedForward(keras.layers.Layer):
    """Gated GELU MLP without biases.

    The GELU is the tanh approximation: the released MT3 weights were trained with it, and the
    exact (erf) form shifts the logits by up to ~0.02. Dropout (training only) is applied to the
    gated hidden units with one mask shared across the length axis.

    The kernels are plain weights rather than `Dense` sublayers: this block runs once per layer
    per generated token, and eager backends pay a per-sublayer-call overhead.
    """

    def __init__(self, intermediate_dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.intermediate_dim = int(intermediate_dim)
        self.dropout = float(dropout)
        self.hidden_dropout = keras.layers.Dropout(
            self.dropout, noise_shape=(None, 1, None), name="hidden_dropout"
        )

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        initializer = keras.initializers.VarianceScaling(
            1.0, mode="fan_in", distribution="truncated_normal"
        )
        inner_shape = (hidden_dim, self.intermediate_dim)
        self.gate_kernel = self.add_weight(inner_shape, initializer, name="wi_0_kernel")
        self.linear_kernel = self.add_weight(inner_shape, initializer, name="wi_1_kernel")
        self.output_kernel = self.add_weight(
            (self.intermediate_dim, hidden_dim), initializer, name="wo_kernel"
        )

    def call(self, inputs, training=False):
        gate = ops.gelu(ops.matmul(inputs, self.gate_kernel), approximate=True)
        hidden = gate * ops.matmul(inputs, self.linear_kernel)
        if training:
            hidden = self.hidden_dropout(hidden, training=training)
        return ops.matmul(hidden, self.output_kernel)

    def get_config(self):
        config = super().get_config()
        config.update({"intermediate_dim": self.intermediate_dim, "dropout": self.dropout})
        return config
