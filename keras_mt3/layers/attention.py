"""T5-style multi-head attention: no biases, no 1/sqrt(d) scaling, optional KV cache.

Why no scaling: docs/mt3_details.md#network-traps.
"""

import math

import keras
from keras import ops

from keras_mt3.layers.position_embedding import is_per_row

# Masked logits get this bias (as in T5X), so a fully masked row degrades to uniform attention
# instead of NaN.
MASK_BIAS = -1e10
# How a one-position decoding step writes its key/value into the self-attention cache
# (`T5Attention.attend_with_cache`).
CACHE_UPDATE = "update"
CACHE_APPEND = "append"
CACHE_IN_PLACE = "in_place"
CACHE_WRITES = (CACHE_UPDATE, CACHE_APPEND, CACHE_IN_PLACE)


@keras.saving.register_keras_serializable(package="keras_mt3")
class T5Attention(keras.layers.Layer):
    """Multi-head dot-product attention exactly as MT3/T5.1.1 computes it.

    The logits are `q . k` *without* `1/sqrt(head_dim)`: T5 folds that factor into the query
    kernel's initializer, and the released weights rely on it. Kernels keep heads as a separate
    axis: query/key/value `[hidden_dim, num_heads, head_dim]`, output
    `[num_heads, head_dim, hidden_dim]`.

    Call as `attention(query_inputs, key_value_inputs=None, attention_mask=None)`; the mask is
    boolean-like, `[batch, query_length, key_length]` (or broadcastable to it), True = attend.
    For incremental decoding use `project_query`, `project_key_value`, `attend` and
    `attend_with_cache`. Projected tensors are head-major, `[batch, heads, length, head_dim]`,
    so both attention products are plain batched matmuls (several times faster on CPU than
    contracting across a middle axis, which matters for one-token decoding steps).
    """

    def __init__(self, num_heads, head_dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.head_dim = int(head_dim)
        self.dropout = float(dropout)
        # One dropout mask per (batch, head, key), shared by all queries, like T5X.
        self.weights_dropout = keras.layers.Dropout(
            self.dropout, noise_shape=(None, None, 1, None), name="weights_dropout"
        )

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        inner_dim = self.num_heads * self.head_dim
        projection_shape = (hidden_dim, self.num_heads, self.head_dim)
        # Fan-in initialization of the flat [hidden, inner] kernels; the query also carries the
        # 1/sqrt(head_dim) that the attention logits leave out.
        key_init = keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(hidden_dim))
        query_init = keras.initializers.RandomNormal(
            stddev=1.0 / math.sqrt(hidden_dim * self.head_dim)
        )
        output_init = keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(inner_dim))
        self.query_kernel = self.add_weight(projection_shape, query_init, name="query_kernel")
        self.key_kernel = self.add_weight(projection_shape, key_init, name="key_kernel")
        self.value_kernel = self.add_weight(projection_shape, key_init, name="value_kernel")
        self.output_kernel = self.add_weight(
            (self.num_heads, self.head_dim, hidden_dim), output_init, name="output_kernel"
        )

    def project_query(self, inputs):
        """`[batch, length, hidden]` -> `[batch, heads, length, head_dim]`."""
        return _project(inputs, self.query_kernel)

    def project_key_value(self, inputs):
        """`[batch, length, hidden]` -> key and value, each `[batch, heads, length, head_dim]`."""
        return _project(inputs, self.key_kernel), _project(inputs, self.value_kernel)

    def attend(self, query, key, value, attention_mask=None, training=False):
        """Attention of projected `query` over projected `key`/`value`; returns `[b, q, hidden]`."""
        logits = ops.einsum("bnqh,bnkh->bnqk", query, key)
        if attention_mask is not None:
            mask = ops.expand_dims(ops.cast(attention_mask, "bool"), axis=1)
            logits = logits + ops.where(mask, 0.0, MASK_BIAS)
        weights = ops.softmax(ops.cast(logits, "float32"), axis=-1)
        if training:  # skipping the no-op layer call saves eager overhead per decoding step
            weights = self.weights_dropout(weights, training=training)
        mixed = ops.einsum("bnqk,bnkh->bnqh", weights, value)
        # [b, n, q, h] -> [b, q, n*h] @ [n*h, d]: a plain matmul on the kernel as stored.
        mixed = ops.transpose(mixed, (0, 2, 1, 3))
        batch_size, length = ops.shape(mixed)[0], ops.shape(mixed)[1]
        mixed = ops.reshape(mixed, (batch_size, length, self.num_heads * self.head_dim))
        kernel = ops.reshape(self.output_kernel, (self.num_heads * self.head_dim, -1))
        return ops.matmul(mixed, kernel)

    def call(self, query_inputs, key_value_inputs=None, attention_mask=None, training=False):
        if key_value_inputs is None:
            key_value_inputs = query_inputs
        key, value = self.project_key_value(key_value_inputs)
        query = self.project_query(query_inputs)
        return self.attend(query, key, value, attention_mask, training=training)

    def attend_with_cache(self, inputs, key_cache, value_cache, index, cache_write=CACHE_UPDATE):
        """Self-attention of one new position `inputs` `[b, 1, hidden]` at position `index`.

        Returns `(outputs, key_cache, value_cache)`, the caches holding the new key/value.
        `cache_write` says how the caches (`[b, heads, length, head_dim]`) take it:

        - `"update"`: static caches of `max_length` positions, written in place at `index`,
          with attention masked to positions `0..index`. The shapes never change, so the
          decode loop compiles; but `slice_update` lowers under TensorFlow to
          `XlaDynamicUpdateSlice`, which only runs where XLA may compile it.
        - `"append"`: caches holding exactly the positions decoded so far, concatenated with
          the new one; nothing to mask. Every op has an ordinary TensorFlow kernel, for graphs
          served without XLA (`keras_mt3.saved_model.tf_greedy_decoding`).
        - `"in_place"`: as `"update"`, but the caller hands the caches over: eager torch writes
          into them instead of copying them (Keras's torch `slice_update` clones the whole
          cache, every layer, every step); compiled backends update in place anyway.

        With a static cache, `index` may also be a `[b]` vector: each row writes and attends up
        to its own position (decoder slots at different steps,
        `keras_mt3.models.continuous_batching`).
        """
        key, value = self.project_key_value(inputs)
        query = self.project_query(inputs)
        if cache_write == CACHE_APPEND:
            key_cache = ops.concatenate([key_cache, key], axis=2)
            value_cache = ops.concatenate([value_cache, value], axis=2)
            return self.attend(query, key_cache, value_cache), key_cache, value_cache
        if cache_write not in CACHE_WRITES:
            raise ValueError(f"cache_write must be one of {CACHE_WRITES}; got {cache_write!r}")
        in_place = cache_write == CACHE_IN_PLACE
        if is_per_row(index):
            key_cache = _write_rows(key_cache, key, index, in_place)
            value_cache = _write_rows(value_cache, value, index, in_place)
        else:
            write = _write_in_place if in_place else _write_copy
            key_cache = write(key_cache, key, index)
            value_cache = write(value_cache, value, index)
        positions = ops.arange(ops.shape(key_cache)[2])
        if is_per_row(index):
            visible = (positions[None, :] <= index[:, None])[:, None, :]
        else:
            visible = (positions <= index)[None, None, :]
        outputs = self.attend(query, key_cache, value_cache, visible)
        return outputs, key_cache, value_cache

    def get_config(self):
        config = super().get_config()
        config.update(
            {"num_heads": self.num_heads, "head_dim": self.head_dim, "dropout": self.dropout}
        )
        return config


def dense_layout(x):
    """`x` with its own dense memory layout.

    Head-major projections are transposed views under torch, and every attention product over
    such a view first copies it: for the cross-attention keys/values, computed once per
    segment and read at every decoding step, that was a copy of all of them per step. XLA
    chooses layouts itself, so other backends return `x` as it is.
    """
    if keras.backend.backend() == "torch":
        return x.contiguous()
    return x


def _write_copy(cache, update, index):
    return ops.slice_update(cache, (0, 0, index, 0), update)


def _write_in_place(cache, update, index):
    if keras.backend.backend() == "torch" and isinstance(index, int):
        cache[:, :, index : index + 1] = update
        return cache
    return _write_copy(cache, update, index)


def _write_rows(cache, update, index, in_place):
    """Writes row `b` of `update` `[b, heads, 1, head_dim]` at cache position `index[b]`."""
    batch_size, num_heads, _, head_dim = ops.shape(cache)
    if keras.backend.backend() == "torch" and in_place:
        import torch

        rows = torch.arange(batch_size, device=cache.device)[:, None]
        heads = torch.arange(num_heads, device=cache.device)[None, :]
        cache[rows, heads, index[:, None]] = update[:, :, 0]
        return cache
    rows = ops.repeat(ops.arange(batch_size, dtype="int32"), num_heads)
    heads = ops.tile(ops.arange(num_heads, dtype="int32"), [batch_size])
    positions = ops.repeat(ops.cast(index, "int32"), num_heads)
    indices = ops.stack([rows, heads, positions], axis=1)
    return ops.scatter_update(cache, indices, ops.reshape(update, (-1, head_dim)))


def _project(inputs, kernel):
    # A plain matmul on the kernel as stored, then the heads axis moves on the (small)
    # activations: asking an einsum for `bnth` directly makes XLA transpose the whole kernel
    # on every decoding step.
    hidden_dim, num_heads, head_dim = kernel.shape
    batch_size, length = ops.shape(inputs)[0], ops.shape(inputs)[1]
    projected = ops.matmul(inputs, ops.reshape(kernel, (hidden_dim, num_heads * head_dim)))
    projected = ops.reshape(projected, (batch_size, length, num_heads, head_dim))
    return ops.transpose(projected, (0, 2, 1, 3))
