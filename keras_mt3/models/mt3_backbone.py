"""MT3Backbone: the T5.1.1-small encoder-decoder of MT3, from log-mel frames to token logits."""

import keras
from keras import ops

from keras_mt3.constants import DEFAULT_FRAMES_PER_SEGMENT, MAX_DECODE_LENGTH, NUM_MEL_BINS
from keras_mt3.layers.attention import CACHE_UPDATE
from keras_mt3.layers.attention import dense_layout
from keras_mt3.layers.decoder_layer import MT3DecoderLayer
from keras_mt3.layers.encoder_layer import LAYER_NORM_EPSILON
from keras_mt3.layers.encoder_layer import MT3EncoderLayer
from keras_mt3.layers.encoder_layer import residual_dropout
from keras_mt3.layers.position_embedding import SinusoidalPositionEmbedding


@keras.saving.register_keras_serializable(package="keras_mt3")
class MT3Backbone(keras.Model):
    """MT3's Transformer: continuous-input encoder + autoregressive token decoder.

    Calling the model (teacher forcing) maps
    `{"encoder_inputs": [B, T, input_dim] float32, "decoder_token_ids": [B, L] int32}` to logits
    `[B, L, vocabulary_size]`. `decoder_token_ids` are the targets shifted right with 0 as BOS.
    An optional `"decoder_padding_mask"` `[B, L]` (1 for real *target* tokens, 0 for padding)
    reproduces T5X's training masks; without it every position is valid, which gives the
    original model's logits on any given token sequence.

    Inference building blocks: `encode`, `decode`, and the cached one-token-at-a-time pair
    `init_cache` / `decode_step` used by greedy decoding.

    Args:
        vocabulary_size: rows of the token embedding and width of the logits.
        hidden_dim: model width (d_model).
        num_heads, head_dim: attention heads and their width (inner dim = product).
        intermediate_dim: width of the gated-GELU MLP.
        num_encoder_layers, num_decoder_layers: block counts.
        input_dim: features per encoder frame (log-mel bins).
        max_encoder_length, max_decoder_length: longest sequences (position table rows).
        dropout: dropout rate used when `training=True`.
    """

    def __init__(
        self,
        vocabulary_size=1536,
        hidden_dim=512,
        num_heads=6,
        head_dim=64,
        intermediate_dim=1024,
        num_encoder_layers=8,
        num_decoder_layers=8,
        input_dim=NUM_MEL_BINS,
        max_encoder_length=DEFAULT_FRAMES_PER_SEGMENT,
        max_decoder_length=MAX_DECODE_LENGTH,
        dropout=0.1,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.vocabulary_size = int(vocabulary_size)
        self.hidden_dim = int(hidden_dim)
        self.num_heads = int(num_heads)
        self.head_dim = int(head_dim)
        self.intermediate_dim = int(intermediate_dim)
        self.num_encoder_layers = int(num_encoder_layers)
        self.num_decoder_layers = int(num_decoder_layers)
        self.input_dim = int(input_dim)
        self.max_encoder_length = int(max_encoder_length)
        self.max_decoder_length = int(max_decoder_length)
        self.dropout = float(dropout)
        block_args = (self.num_heads, self.head_dim, self.intermediate_dim, self.dropout)

        self.continuous_inputs_projection = keras.layers.Dense(
            self.hidden_dim,
            use_bias=False,
            kernel_initializer=_fan_in_initializer(),
            name="continuous_inputs_projection",
        )
        self.encoder_position_embedding = SinusoidalPositionEmbedding(
            self.max_encoder_length, name="encoder_position_embedding"
        )
        self.encoder_input_dropout = residual_dropout(self.dropout, "encoder_input_dropout")
        self.encoder_layers = [
            MT3EncoderLayer(*block_args, name=f"encoder_layer_{i}")
            for i in range(self.num_encoder_layers)
        ]
        self.encoder_norm = keras.layers.RMSNormalization(
            epsilon=LAYER_NORM_EPSILON, name="encoder_norm"
        )
        self.encoder_output_dropout = residual_dropout(self.dropout, "encoder_output_dropout")

        self.token_embedder = keras.layers.Embedding(
            self.vocabulary_size,
            self.hidden_dim,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0),
            name="token_embedder",
        )
        self.decoder_position_embedding = SinusoidalPositionEmbedding(
            self.max_decoder_length, name="decoder_position_embedding"
        )
        self.decoder_input_dropout = residual_dropout(self.dropout, "decoder_input_dropout")
        self.decoder_layers = [
            MT3DecoderLayer(*block_args, name=f"decoder_layer_{i}")
            for i in range(self.num_decoder_layers)
        ]
        self.decoder_norm = keras.layers.RMSNormalization(
            epsilon=LAYER_NORM_EPSILON, name="decoder_norm"
        )
        self.decoder_output_dropout = residual_dropout(self.dropout, "decoder_output_dropout")
        self.logits_dense = keras.layers.Dense(
            self.vocabulary_size,
            use_bias=False,
            kernel_initializer=_fan_in_initializer(),
            name="logits_dense",
        )
        self.build()

    def build(self, input_shape=None):
        # Every shape is known from the config, so the weights exist right after __init__
        # (ready for `load_weights` / checkpoint conversion) whatever `input_shape` says.
        hidden_shape = (None, None, self.hidden_dim)
        self.continuous_inputs_projection.build((None, None, self.input_dim))
        for layer in (self.encoder_position_embedding, self.encoder_norm):
            layer.build(hidden_shape)
        for layer in self.encoder_layers:
            layer.build(hidden_shape)
        self.token_embedder.build((None, None))
        for layer in (self.decoder_position_embedding, self.decoder_norm):
            layer.build(hidden_shape)
        for layer in self.decoder_layers:
            layer.build(hidden_shape)
        self.logits_dense.build(hidden_shape)
        self.built = True

    # ---- full-sequence passes -----------------------------------------------------------

    def call(self, inputs, training=False):
        encoded = self.encode(inputs["encoder_inputs"], training=training)
        return self.decode(
            encoded,
            inputs["decoder_token_ids"],
            training=training,
            decoder_padding_mask=inputs.get("decoder_padding_mask"),
        )

    def encode(self, encoder_inputs, training=False):
        """`[B, T, input_dim]` log-mel frames -> `[B, T, hidden_dim]`. No mask (as MT3)."""
        x = self.continuous_inputs_projection(ops.cast(encoder_inputs, "float32"))
        x = self.encoder_position_embedding(x)
        x = self.encoder_input_dropout(x, training=training)
        for layer in self.encoder_layers:
            x = layer(x, training=training)
        x = self.encoder_norm(x)
        return self.encoder_output_dropout(x, training=training)

    def decode(self, encoded, decoder_token_ids, training=False, decoder_padding_mask=None):
        """Teacher-forced logits `[B, L, vocabulary_size]` for `decoder_token_ids` `[B, L]`."""
        length = ops.shape(decoder_token_ids)[1]
        positions = ops.arange(length)
        self_attention_mask = (positions[:, None] >= positions[None, :])[None]
        cross_attention_mask = None
        if decoder_padding_mask is not None:
            valid = ops.cast(decoder_padding_mask, "bool")
            self_attention_mask = ops.logical_and(
                self_attention_mask, ops.logical_and(valid[:, :, None], valid[:, None, :])
            )
            cross_attention_mask = valid[:, :, None]
        x = self.token_embedder(decoder_token_ids)
        x = self.decoder_position_embedding(x)
        x = self.decoder_input_dropout(x, training=training)
        for layer in self.decoder_layers:
            x = layer(x, encoded, self_attention_mask, cross_attention_mask, training=training)
        return self._logits(x, training=training)

    def _logits(self, x, training=False):
        x = self.decoder_norm(x)
        x = self.decoder_output_dropout(x, training=training)
        return self.logits_dense(x)

    # ---- cached incremental decoding ------------------------------------------------------

    def init_cache(self, encoded, max_length):
        """Decoding state for up to `max_length` positions of the decoder.

        A dict of tuples (one entry per decoder layer): `cross_key` / `cross_value` are the
        encoder's projected keys/values `[B, heads, T, head_dim]`, computed once;
        `self_key` / `self_value` are zero-filled `[B, heads, max_length, head_dim]` caches
        that `decode_step` fills position by position.
        """
        batch_size = ops.shape(encoded)[0]
        cross = [layer.cross_attention.project_key_value(encoded) for layer in self.decoder_layers]
        shape = (batch_size, self.num_heads, max_length, self.head_dim)
        layers = range(self.num_decoder_layers)
        # One buffer per cache, never shared: `decode_step(..., cache_write="in_place")` writes
        # into them.
        return {
            "cross_key": tuple(dense_layout(key) for key, _ in cross),
            "cross_value": tuple(dense_layout(value) for _, value in cross),
            "self_key": tuple(ops.zeros(shape, "float32") for _ in layers),
            "self_value": tuple(ops.zeros(shape, "float32") for _ in layers),
        }

    def grow_cache(self, cache, max_length):
        """Returns `cache` with its self-attention caches zero-padded to `max_length` positions.

        Decoding can start with a short cache (attention over fewer empty positions is faster)
        and move to a longer one only when a sequence outgrows it.
        """
        current = ops.shape(cache["self_key"][0])[2]
        if max_length == current:
            return cache
        if max_length < current:
            raise ValueError(f"cannot shrink a decoding cache from {current} to {max_length}")
        padding = ((0, 0), (0, 0), (0, max_length - current), (0, 0))
        return dict(
            cache,
            self_key=tuple(ops.pad(part, padding) for part in cache["self_key"]),
            self_value=tuple(ops.pad(part, padding) for part in cache["self_value"]),
        )

    def decode_step(self, token_ids, cache, index, cache_write=CACHE_UPDATE):
        """Feeds `token_ids` `[B, 1]` at decoder position `index` (int or scalar tensor, or a
        `[B]` vector of per-row positions).

        Returns `(logits [B, vocabulary_size], cache)`; the new cache holds this position's
        self-attention keys/values. Results equal `decode` on the full prefix.
        `cache_write` is `T5Attention.attend_with_cache`'s: `"update"` writes the static
        caches of `init_cache(encoded, max_length)` at `index` (`"in_place"` likewise, into
        the given buffers, which the caller must not use again); `"append"` grows caches that
        hold exactly the positions so far (start from `init_cache(encoded, 0)`).
        """
        # `.call` skips per-call layer bookkeeping (see `MT3DecoderLayer.call_cached`).
        x = self.token_embedder.call(token_ids)
        x = self.decoder_position_embedding.call(x, start_index=index)
        self_keys, self_values = [], []
        for i, layer in enumerate(self.decoder_layers):
            x, key_cache, value_cache = layer.call_cached(
                x,
                cache["cross_key"][i],
                cache["cross_value"][i],
                cache["self_key"][i],
                cache["self_value"][i],
                index,
                cache_write,
            )
            self_keys.append(key_cache)
            self_values.append(value_cache)
        new_cache = dict(cache, self_key=tuple(self_keys), self_value=tuple(self_values))
        logits = self.logits_dense.call(self.decoder_norm.call(x))
        return logits[:, 0, :], new_cache

    # ---- serialization --------------------------------------------------------------------

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "vocabulary_size": self.vocabulary_size,
            "hidden_dim": self.hidden_dim,
            "num_heads": self.num_heads,
            "head_dim": self.head_dim,
            "intermediate_dim": self.intermediate_dim,
            "num_encoder_layers": self.num_encoder_layers,
            "num_decoder_layers": self.num_decoder_layers,
            "input_dim": self.input_dim,
            "max_encoder_length": self.max_encoder_length,
            "max_decoder_length": self.max_decoder_length,
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _fan_in_initializer():
    return keras.initializers.VarianceScaling(1.0, mode="fan_in", distribution="truncated_normal")
