"""Greedy decoding in plain TensorFlow graph ops, for SavedModels served without XLA.

`keras_mt3.models.greedy_decoding` writes its key/value caches and its output with
`keras.ops.slice_update`, which the TensorFlow backend lowers to `XlaDynamicUpdateSlice`: an
op with no regular kernel, so it only runs where the runtime may compile it with XLA (TF Serving
refuses unless started with `--xla_cpu_compilation_enabled=true`). Here the self-attention
caches (and the output) instead grow by one position per step (`tf.concat` on loop variables
of unknown length), so every op has an ordinary CPU/GPU kernel.

A growing cache also means each step attends over exactly the positions decoded so far, so
there is nothing to mask and no phase schedule is needed. The decoding step is
`MT3Backbone.decode_step` itself, with `cache_write="append"`; tests check that both loops
give the same tokens.
"""

import tensorflow as tf

from keras_mt3.constants import BOS_ID, EOS_ID, MAX_DECODE_LENGTH, PAD_ID
from keras_mt3.layers.attention import CACHE_APPEND


def greedy_decode_without_xla(backbone, encoded, max_length=MAX_DECODE_LENGTH, finished=None):
    """Greedy-decodes `encoded` (`[B, T, hidden]` from `backbone.encode`) without XLA ops.

    Same contract as `greedy_decode`: int32 `[B, max_length]`, a row keeps its EOS and is PAD
    after it. Rows flagged in `finished` (bool `[B]`, e.g. batch padding) only produce PAD, and
    decoding stops once every row is finished.
    """
    batch_size = tf.shape(encoded)[0]
    if finished is None:
        finished = tf.zeros([batch_size], tf.bool)
    cache = backbone.init_cache(encoded, 0)  # zero-length self-attention caches
    num_layers = len(backbone.decoder_layers)
    growing = tf.TensorShape([None, backbone.num_heads, None, backbone.head_dim])

    def keep_going(step, previous, finished, self_keys, self_values, tokens):
        return tf.logical_and(step < max_length, tf.logical_not(tf.reduce_all(finished)))

    def decode_one(step, previous, finished, self_keys, self_values, tokens):
        step_cache = dict(cache, self_key=self_keys, self_value=self_values)
        logits, step_cache = backbone.decode_step(
            previous, step_cache, step, cache_write=CACHE_APPEND
        )
        next_ids = tf.cast(tf.argmax(logits, axis=-1), tf.int32)
        next_ids = tf.where(finished, PAD_ID, next_ids)
        finished = tf.logical_or(finished, tf.equal(next_ids, EOS_ID))
        tokens = tf.concat([tokens, next_ids[:, None]], axis=1)
        self_keys, self_values = step_cache["self_key"], step_cache["self_value"]
        return step + 1, next_ids[:, None], finished, self_keys, self_values, tokens

    state = (
        tf.constant(0),
        tf.fill([batch_size, 1], BOS_ID),
        finished,
        tuple(cache["self_key"]),
        tuple(cache["self_value"]),
        tf.zeros([batch_size, 0], tf.int32),
    )
    invariants = (
        tf.TensorShape([]),
        tf.TensorShape([None, 1]),
        tf.TensorShape([None]),
        (growing,) * num_layers,
        (growing,) * num_layers,
        tf.TensorShape([None, None]),
    )
    steps, *_, tokens = tf.while_loop(
        keep_going, decode_one, state, shape_invariants=invariants, parallel_iterations=1
    )
    tokens = tf.pad(tokens, [[0, 0], [0, max_length - steps]], constant_values=PAD_ID)
    return tf.ensure_shape(tokens, [None, max_length])

