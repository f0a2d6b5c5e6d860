"""One MT3 decoder block: causal self-attention, cross-attention and MLP, all pre-RMSNorm."""

import keras
from keras import ops

from keras_mt3.layers.attention import CACHE_UPDATE
from keras_mt3.layers.attention import T5Attention
from keras_mt3.layers.encoder_layer import LAYER_NORM_EPSILON
from keras_mt3.layers.encoder_layer import residual_dropout
from keras_mt3.layers.feed_forward import GatedGeluFeedForward


@keras.saving.register_keras_serializable(package="keras_mt3")
class MT3DecoderLayer(keras.layers.Layer):
    """Decoder block with a teacher-forcing `call` and a one-position `call_cached`.

    `call(inputs, encoded, self_attention_mask, cross_attention_mask)` processes whole
    sequences (masks are boolean-like `[batch, query, key]`, broadcastable).
    `call_cached` processes one new position against precomputed cross-attention keys/values
    and a static self-attention cache (inference only, no dropout).
    """

    def __init__(self, num_heads, head_dim, intermediate_dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.head_dim = int(head_dim)
        self.intermediate_dim = int(intermediate_dim)
        self.dropout = float(dropout)

        def norm(name):
            return keras.layers.RMSNormalization(epsilon=LAYER_NORM_EPSILON, name=name)

        self.pre_self_attention_layer_norm = norm("pre_self_attention_layer_norm")
        self.self_attention = T5Attention(num_heads, head_dim, dropout, name="self_attention")
        self.pre_cross_attention_layer_norm = norm("pre_cross_attention_layer_norm")
        self.cross_attention = T5Attention(
            num_heads, head_dim, dropout, name="encoder_decoder_attention"
        )
        self.pre_mlp_layer_norm = norm("pre_mlp_layer_norm")
        self.mlp = GatedGeluFeedForward(intermediate_dim, dropout, name="mlp")
        self.self_attention_dropout = residual_dropout(dropout, "self_attention_dropout")
        self.cross_attention_dropout = residual_dropout(dropout, "cross_attention_dropout")
        self.mlp_dropout = residual_dropout(dropout, "mlp_dropout")

    def build(self, input_shape):
        for layer in (
            self.pre_self_attention_layer_norm,
            self.self_attention,
            self.pre_cross_attention_layer_norm,
            self.cross_attention,
            self.pre_mlp_layer_norm,
            self.mlp,
        ):
            layer.build(input_shape)

    def call(
        self,
        inputs,
        encoded,
        self_attention_mask=None,
        cross_attention_mask=None,
        training=False,
    ):
        x = inputs
        attended = self.self_attention(
            self.pre_self_attention_layer_norm(x),
            attention_mask=self_attention_mask,
            training=training,
        )
        x = x + self.self_attention_dropout(attended, training=training)
        attended = self.cross_attention(
            self.pre_cross_attention_layer_norm(x),
            encoded,
            attention_mask=cross_attention_mask,
            training=training,
        )
        x = x + self.cross_attention_dropout(attended, training=training)
        transformed = self.mlp(self.pre_mlp_layer_norm(x), training=training)
        return x + self.mlp_dropout(transformed, training=training)

    def call_cached(
        self,
        inputs,
        cross_key,
        cross_value,
        self_key_cache,
        self_value_cache,
        index,
        cache_write=CACHE_UPDATE,
    ):
        """One decoding position. Returns `(outputs, self_key_cache, self_value_cache)`.

        `cache_write` and `index` are `T5Attention.attend_with_cache`'s:
        static caches written in place (`"update"`, the default) or caches that grow by this
        position (`"append"`); one position for all rows or one per row.

        Sublayers are run through `.call`: this runs once per layer per generated token, and
        under eager torch `Layer.__call__`'s bookkeeping costs more than the math itself.
        """
        x = ops.convert_to_tensor(inputs, self.compute_dtype)  # `.call` does not convert
        attended, self_key_cache, self_value_cache = self.self_attention.attend_with_cache(
            self.pre_self_attention_layer_norm.call(x),
            self_key_cache,
            self_value_cache,
            index,
            cache_write,
        )
        x = x + attended
        query = self.cross_attention.project_query(self.pre_cross_attention_layer_norm.call(x))
        x = x + self.cross_attention.attend(query, cross_key, cross_value)
        x = x + self.mlp.call(self.pre_mlp_layer_norm.call(x))
        return x, self_key_cache, self_value_cache

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
