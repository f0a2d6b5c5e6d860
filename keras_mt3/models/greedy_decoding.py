"""Cached greedy decoding for MT3Backbone, compiled once per batch shape where possible.

MT3's original decoder is T5X beam search with one beam; on real inputs its output equals
plain greedy (argmax) decoding stopped at EOS, which is what this module implements: one
decoder position per step against a static-shape key/value cache, so the loop compiles
(`jax.jit`, `tf.function(jit_compile=True)`). Why greedy: docs/mt3_details.md#greedy-decoding.

Attention over the self-attention cache costs time in proportion to the cache length, yet
most MT3 segments need well under 200 of the 1024 allowed tokens. Decoding therefore runs in
phases over growing caches (`cache_lengths`, by default 128 then `max_length`): a batch moves
to the next, longer cache only if some row is still unfinished when the current one is full.
The phases change speed, never the result.
"""

import keras
from keras import ops

from keras_mt3.constants import BOS_ID, EOS_ID, MAX_DECODE_LENGTH, PAD_ID
from keras_mt3.layers.attention import CACHE_IN_PLACE

FIRST_CACHE_LENGTH = 128
# Eager torch pays nothing to add phases (no compilation) and copies its caches on every
# update, so it starts smaller and doubles.
EAGER_FIRST_CACHE_LENGTH = 32


def default_cache_lengths(max_length, eager=False):
    """The phase schedule: `(128, max_length)` compiled, or doubling from 32 when running
    eagerly.

    Compiled, every phase is one more copy of the decoder loop in the program: measured on a
    2-core CPU, doubling phases (128, 256, 512, 1024) doubled the compile time (TensorFlow: 48 s
    for a file's two batch shapes) for a small gain on the few segments longer than 128 tokens.
    """
    first = EAGER_FIRST_CACHE_LENGTH if eager else FIRST_CACHE_LENGTH
    lengths = []
    length = min(first, max_length)
    while length < max_length:
        lengths.append(length)
        length = length * 2 if eager else max_length
    return tuple(lengths) + (max_length,)


def greedy_decode(
    backbone, encoded, max_length=MAX_DECODE_LENGTH, eos_id=EOS_ID, cache_lengths=None
):
    """Greedy-decodes `encoded` (`[B, T, hidden]` from `backbone.encode`).

    Returns int32 `[B, max_length]`: the ids generated after BOS. A row keeps its EOS and is
    PAD (0) after it; a row that never emits EOS fills all `max_length` positions. Decoding
    stops as soon as every row has emitted EOS.

    `cache_lengths` is an increasing sequence of self-attention cache sizes ending at
    `max_length` (default: `default_cache_lengths`).

    Called directly under JAX, the loop is traced again on every call; to decode many batches
    use `make_greedy_decode_fn`, which compiles once.
    """
    eager = _runs_eagerly()
    if cache_lengths is None:
        cache_lengths = default_cache_lengths(max_length, eager=eager)
    cache_lengths = _checked_schedule(cache_lengths, max_length)
    batch_size = ops.shape(encoded)[0]
    tokens = ops.zeros((batch_size, max_length), "int32")
    previous = ops.full((batch_size, 1), BOS_ID, "int32")
    finished = ops.zeros((batch_size,), "bool")
    # A Python int step keeps eager slice updates on their fast path.
    step = 0 if eager else ops.convert_to_tensor(0, "int32")
    cache = backbone.init_cache(encoded, cache_lengths[0])

    def decode_one(step, tokens, previous, finished, cache):
        logits, cache = backbone.decode_step(previous, cache, step, cache_write=CACHE_IN_PLACE)
        next_ids = ops.cast(ops.argmax(logits, axis=-1), "int32")
        next_ids = ops.where(finished, PAD_ID, next_ids)
        tokens = ops.slice_update(tokens, (0, step), next_ids[:, None])
        finished = ops.logical_or(finished, next_ids == eos_id)
        return step + 1, tokens, next_ids[:, None], finished, cache

    for cache_length in cache_lengths:

        def keep_going(step, tokens, previous, finished, cache, limit=cache_length):
            return ops.logical_and(step < limit, ops.logical_not(ops.all(finished)))

        cache = backbone.grow_cache(cache, cache_length)
        state = (step, tokens, previous, finished, cache)
        step, tokens, previous, finished, cache = _while_loop(keep_going, decode_one, state, eager)
    return tokens


def make_greedy_decode_fn(
    backbone,
    max_length=MAX_DECODE_LENGTH,
    jit=True,
    eos_id=EOS_ID,
    cache_lengths=None,
    frontend=None,
):
    """Returns `fn(encoder_inputs [B, T, input_dim]) -> int32 tokens [B, max_length]`.

    With `frontend` (a layer mapping `(samples, num_frames)` to encoder inputs, such as
    `LogMelSpectrogram`), the function is `fn(samples, num_frames)` instead and the frontend
    runs inside the same compiled program: under JAX that is markedly faster than calling the
    frontend op by op.

    Frontend, encoder and decoder run as one compiled program where the backend allows:
    `jax.jit` (the weights are passed in as arguments, not baked into the program as constants)
    or `tf.function(jit_compile=True)`. Under torch it runs eagerly without autograd. Each batch
    shape compiles once, so keep the shapes to a few (pad the last batch).
    """

    def decode(*inputs):
        encoder_inputs = inputs[0] if frontend is None else frontend(*inputs)
        encoded = backbone.encode(encoder_inputs, training=False)
        return greedy_decode(backbone, encoded, max_length, eos_id, cache_lengths)

    backend = keras.backend.backend()
    if backend == "jax" and jit:
        return jax_compiled(backbone, decode)
    if backend == "tensorflow" and jit:
        import tensorflow as tf

        from keras_mt3 import xla_cpu

        xla_cpu.prefer_eigen_dots()

        compiled = tf.function(decode, jit_compile=True)
        return lambda *inputs: compiled(*(tf.convert_to_tensor(x) for x in inputs))
    if backend == "torch":
        import torch

        def run_without_autograd(*inputs):
            with torch.inference_mode():
                return decode(*(ops.convert_to_tensor(x) for x in inputs))

        return run_without_autograd
    return decode


def _runs_eagerly():
    # Only torch executes the loop step by step in Python; JAX and TensorFlow build a graph
    # loop (also when called outside jit, where lax/tf while loops still trace the body).
    return keras.backend.backend() == "torch"


def _while_loop(condition, body, state, eager):
    if not eager:
        return ops.while_loop(condition, body, state)
    # Same semantics as ops.while_loop under torch, but without turning the int step into a
    # tensor.
    while bool(condition(*state)):
        state = body(*state)
    return state


def _checked_schedule(cache_lengths, max_length):
    cache_lengths = tuple(int(length) for length in cache_lengths)
    increasing = all(a < b for a, b in zip(cache_lengths, cache_lengths[1:]))
    if not cache_lengths or not increasing or cache_lengths[-1] != max_length:
        raise ValueError(
            f"cache_lengths must increase and end at max_length={max_length}; "
            f"got {cache_lengths}"
        )
    return cache_lengths


def _jax_compiler_options():
    import jax

    from keras_mt3 import xla_cpu

    if jax.default_backend() != "cpu":
        return None
    return xla_cpu.JAX_COMPILER_OPTIONS


def jax_compiled(backbone, function, donate_first=False):
    """`function` under `jax.jit`, with `backbone`'s weights passed in as arguments (not baked
    into the program as constants). `donate_first` hands the first argument's buffers to the
    program, which may then update them in place (a decoding state carried from call to call).
    """
    import jax

    variables = list(backbone.variables)

    def stateless(values, *inputs):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return function(*inputs)

    compiled = jax.jit(
        stateless,
        compiler_options=_jax_compiler_options(),
        donate_argnums=(1,) if donate_first else (),
    )
    return lambda *inputs: compiled([v.value for v in variables], *inputs)
