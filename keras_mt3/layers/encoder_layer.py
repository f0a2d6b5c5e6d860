"""One MT3 encoder block: pre-RMSNorm self-attention and gated-GELU MLP, each residual."""

import keras

from keras_mt3.layers.attention import T5Attention
from keras_mt3.layers.feed_forward import GatedGeluFeedForward

LAYER_NORM_EPSILON = 1e-6


def residual_dropout(rate, name):
    """T5-style dropout: one mask per (batch, feature), shared across the length axis."""
    return keras.layers.Dropout(rate, noise_shape=(None, 1, None), name=name)


@keras.saving.register_keras_serializable(package="keras_mt3")
class MT3EncoderLayer(keras.layers.Layer):
    """`x + Drop(Attn(Norm(x)))`, then `x + Drop(MLP(Norm(x)))`. The encoder uses no mask."""

    def __init__(self, num_heads, head_dim, intermediate_dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.head_dim = int(head_dim)
        self.intermediate_dim = int(intermediate_dim)
        self.dropout = float(dropout)
        self.pre_attention_layer_norm = keras.layers.RMSNormalization(
            epsilon=LAYER_NORM_EPSILON, name="pre_attention_layer_norm"
        )
        self.attention = T5Attention(num_heads, head_dim, dropout, name="attention")
        self.pre_mlp_layer_norm = keras.layers.RMSNormalization(
            epsilon=LAYER_NORM_EPSILON, name="pre_mlp_layer_norm"
        )
        self.mlp = GatedGeluFeedForward(intermediate_dim, dropout, name="mlp")
        self.attention_dropout = residual_dropout(dropout, "attention_dropout")
        self.mlp_dropout = residual_dropout(dropout, "mlp_dropout")

    def build(self, input_shape):
        for layer in (self.pre_attention_layer_norm, self.attention, self.pre_mlp_layer_norm):
            layer.build(input_shape)
        self.mlp.build(input_shape)

    def call(self, inputs, training=False):
        x = inputs
        attended = self.attention(self.pre_attention_layer_norm(x), training=training)
        x = x + self.attention_dropout(attended, training=training)
        transformed = self.mlp(self.pre_mlp_layer_norm(x), training=training)
        return x + self.mlp_dropout(transformed, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "head_dim": self.head_dim,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
            }
        )
        return config
