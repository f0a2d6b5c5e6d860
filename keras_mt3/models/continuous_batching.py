"""Continuous batching: greedy decoding over a pool of decoder slots that refill as they free up.

Decoding a batch of segments together until the longest one ends leaves every finished row
idle (on a long file or many files, most rows idle most of the time), while a decoder step costs
about the same whatever its rows are doing: it reads all of the decoder's weights. Here a fixed
number of slots decode side by side, each at its own position; a slot whose segment emitted EOS
(or filled `max_length`) is handed the next waiting segment, whose frontend and encoder run
then. Per-row positions, cache writes and masks (`MT3Backbone.decode_step` with a `[slots]`
index) give each row the computation it would have alone, so each segment's tokens equal
`greedy_decode` of that segment (the tests check the tokens on every backend, and the original
MT3's ids on the reference clips).

Shapes stay static, so a few compiled programs serve any number of files:

- `admit` (frontend, encoder, cross-attention keys/values, into `admit_size` slots at once);
- `advance` for each of a few self-attention cache lengths: decode until a slot stops, or a
  slot outgrows the cache. The pool's caches are as long as its longest busy slot needs
  (128 positions, then 256, 512, `max_length`; shorter again once that slot is done), since
  attention over empty positions costs as much as over full ones, and a longer cache than
  needed is more state for TensorFlow to copy at each call.
"""

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_mt3.constants import BOS_ID, EOS_ID, HOP_LENGTH, MAX_DECODE_LENGTH, PAD_ID
from keras_mt3.layers.attention import CACHE_IN_PLACE, dense_layout
from keras_mt3.models import greedy_decoding

# Self-attention cache lengths a slot pool moves between (then `max_length`): one compiled
# step program each, compiled only when a slot first needs it.
POOL_CACHE_LENGTHS = (128, 256, 512)
# Segments encoded together when slots free up: the encoder is compute-bound, so a few rows at a
# time cost little more per segment than many, and one batch shape means one program.
DEFAULT_ADMIT_SIZE = 4

Segment = tuple[Hashable, np.ndarray, int]


class SlotDecoder:
    """Greedy decoder over `num_slots` slots, fed segments of audio samples.

    Args:
        backbone: an `MT3Backbone`.
        frontend: a layer mapping `(samples [n, segment_samples], num_frames [n])` to encoder
            inputs (`LogMelSpectrogram`).
        num_slots: segments decoded side by side.
        max_length: most tokens per segment.
        admit_size: segments encoded together when slots free up (at most `num_slots`).
        cache_lengths: the self-attention cache lengths the pool moves between, below
            `max_length` (default `POOL_CACHE_LENGTHS`).
        jit: compile under JAX and TensorFlow (torch always runs eagerly).
    """

    def __init__(
        self,
        backbone,
        frontend,
        num_slots: int,
        max_length: int = MAX_DECODE_LENGTH,
        admit_size: int = DEFAULT_ADMIT_SIZE,
        cache_lengths: Iterable[int] = POOL_CACHE_LENGTHS,
        jit: bool = True,
    ):
        if num_slots < 1:
            raise ValueError(f"num_slots must be >= 1, got {num_slots}")
        self.backbone = backbone
        self.frontend = frontend
        self.num_slots = int(num_slots)
        self.max_length = int(max_length)
        self.admit_size = max(1, min(int(admit_size), self.num_slots))
        shorter = sorted({int(n) for n in cache_lengths if 0 < int(n) < self.max_length})
        self.cache_lengths = tuple(shorter) + (self.max_length,)
        self._programs = _Programs(backbone, frontend, self.max_length, jit)

    def decode(self, segments: Iterable[Segment]) -> Iterator[tuple[Hashable, np.ndarray]]:
        """Decodes `(key, samples, num_frames)` segments; yields `(key, tokens)` as each ends.

        `tokens` is int32 `[max_length]`, as a row of `greedy_decode`: the ids after BOS, EOS
        kept, PAD after it. Segments are read from `segments` only as slots free up (at most
        `admit_size` ahead), so a generator over a long file is consumed in bounded memory.
        Results come in the order segments finish, not the order they came in.
        """
        source = iter(segments)
        waiting: deque[Segment] = deque()

        def top_up():
            # Fewer than `admit_size` waiting afterwards means the source is exhausted.
            while len(waiting) < self.admit_size:
                item = next(source, None)
                if item is None:
                    return
                waiting.append(item)

        state = positions = active = tokens = None
        free = list(range(self.num_slots))
        keys: dict[int, Hashable] = {}
        top_up()
        while waiting or keys:
            while waiting and len(free) >= min(self.admit_size, len(waiting)):
                if state is None:
                    state = self._programs.initial_state(self.num_slots, np.shape(waiting[0][1]))
                    positions, active, tokens = self._programs.host_view(state)
                batch = [waiting.popleft() for _ in range(min(self.admit_size, len(waiting)))]
                slots = [free.pop(0) for _ in batch]
                keys.update(zip(slots, (key for key, _, _ in batch)))
                state = self._programs.admit(state, *self._admission(batch, slots))
                positions[slots], active[slots] = 0, True
                top_up()
            # Back to the host once enough slots are free for the next admission, or, with
            # nothing left to admit, once every slot is done.
            if waiting:
                stop_after = max(1, min(self.admit_size, len(waiting)) - len(free))
            else:
                stop_after = len(keys)
            needed = int(positions[active].max()) + 1
            cache_length = next(n for n in self.cache_lengths if n >= needed)
            state = self._programs.advance(state, stop_after, cache_length)
            positions, active, tokens = self._programs.host_view(state)
            for slot in [slot for slot in keys if not active[slot]]:
                yield keys.pop(slot), tokens[slot, : self.max_length].copy()
                free.append(slot)
            free.sort()

    def _admission(self, batch, slots):
        # A short batch (the end of the input) repeats its last segment into its last slot:
        # identical rows written twice, so one program shape serves every admission.
        padding = self.admit_size - len(batch)
        batch = batch + [batch[-1]] * padding
        slots = slots + [slots[-1]] * padding
        samples = np.stack([np.asarray(samples, "float32") for _, samples, _ in batch])
        num_frames = np.asarray([frames for _, _, frames in batch], "int32")
        return samples, num_frames, np.asarray(slots, "int32")


class _Programs:
    """The pool's state and the backend-specific programs that update it.

    State: per decoder layer the cross-attention keys/values `[slots, heads, frames, head_dim]`
    and self-attention caches `[slots, heads, cache_length, head_dim]`; per slot its next
    position, previous token, whether it is busy, and its tokens so far (one spare column that
    idle slots write into, so a stopped slot's tokens stay intact until the host reads them).
    """

    def __init__(self, backbone, frontend, max_length, jit):
        self.backbone = backbone
        self.frontend = frontend
        self.max_length = max_length
        self.backend = keras.backend.backend()
        compile_ = _compiler(backbone, jit)
        self._admit = compile_(self._admit_fn)
        self._advance = {}
        self._compile = compile_

    def initial_state(self, num_slots, segment_shape):
        return self._run(self._initial_state, num_slots, segment_shape)

    def _initial_state(self, num_slots, segment_shape):
        backbone = self.backbone
        num_frames = segment_shape[-1] // HOP_LENGTH
        cross_shape = (num_slots, backbone.num_heads, num_frames, backbone.head_dim)
        self_shape = (num_slots, backbone.num_heads, 0, backbone.head_dim)
        layers = range(backbone.num_decoder_layers)
        return {
            "cross_key": tuple(ops.zeros(cross_shape, "float32") for _ in layers),
            "cross_value": tuple(ops.zeros(cross_shape, "float32") for _ in layers),
            "self_key": tuple(ops.zeros(self_shape, "float32") for _ in layers),
            "self_value": tuple(ops.zeros(self_shape, "float32") for _ in layers),
            "position": ops.zeros((num_slots,), "int32"),
            "previous": ops.full((num_slots, 1), BOS_ID, "int32"),
            "active": ops.zeros((num_slots,), "bool"),
            "tokens": ops.zeros((num_slots, self.max_length + 1), "int32"),
        }

    def admit(self, state, samples, num_frames, slots):
        return self._admit(state, samples, num_frames, slots)

    def advance(self, state, stop_after, cache_length):
        state = self._resized(state, cache_length)
        if cache_length not in self._advance:
            self._advance[cache_length] = self._compile(self._advance_fn)
        return self._advance[cache_length](state, np.int32(stop_after))

    def _resized(self, state, cache_length):
        """`state` with self-attention caches of `cache_length` positions. Cutting is safe:
        the caller picks a length beyond every busy slot's position, and an idle slot's cache is
        never read again."""
        current = ops.shape(state["self_key"][0])[2]
        if cache_length == current:
            return state
        if cache_length > current:
            return self._run(self.backbone.grow_cache, state, cache_length)
        return self._run(
            lambda state: dict(
                state,
                self_key=tuple(dense_layout(k[:, :, :cache_length]) for k in state["self_key"]),
                self_value=tuple(dense_layout(v[:, :, :cache_length]) for v in state["self_value"]),
            ),
            state,
        )

    def _run(self, fn, *args):
        if self.backend == "torch":
            import torch

            # Buffers that inference-mode code writes in place must be made in inference mode.
            with torch.inference_mode():
                return fn(*args)
        return fn(*args)

    def host_view(self, state):
        # Copies: under torch a CPU tensor's NumPy view would share the pool's memory.
        return tuple(
            np.array(ops.convert_to_numpy(state[name])) for name in ("position", "active", "tokens")
        )

    # ---- program bodies (backend-neutral ops) ---------------------------------------------

    def _admit_fn(self, state, samples, num_frames, slots):
        encoded = self.backbone.encode(self.frontend(samples, num_frames), training=False)
        cross = self.backbone.init_cache(encoded, 0)
        count = ops.shape(slots)[0]
        rows = slots[:, None]
        put = _row_writer(self.backend)
        state = dict(state)
        for name in ("cross_key", "cross_value"):
            state[name] = tuple(put(old, rows, new) for old, new in zip(state[name], cross[name]))
        state["position"] = put(state["position"], rows, ops.zeros((count,), "int32"))
        state["previous"] = put(state["previous"], rows, ops.full((count, 1), BOS_ID, "int32"))
        state["active"] = put(state["active"], rows, ops.ones((count,), "bool"))
        empty = ops.full((count, self.max_length + 1), PAD_ID, "int32")
        state["tokens"] = put(state["tokens"], rows, empty)
        return state

    def _advance_fn(self, state, stop_after):
        cache_length = ops.shape(state["self_key"][0])[2]

        def keep_going(state, stopped):
            busy = state["active"]
            outgrown = ops.any(ops.logical_and(busy, state["position"] >= cache_length))
            return ops.logical_and(
                ops.logical_and(stopped < stop_after, ops.any(busy)), ops.logical_not(outgrown)
            )

        zero = ops.convert_to_tensor(0, "int32")
        if self.backend == "torch":
            stopped = zero
            while bool(keep_going(state, stopped)):
                state, stopped = self._step(state, stopped)
            return state
        state, _ = ops.while_loop(keep_going, self._step, (state, zero))
        return state

    def _step(self, state, stopped):
        """One decoder step of every slot; `stopped` counts the slots that have stopped."""
        max_length = self.max_length
        busy, position = state["active"], state["position"]
        cache_length = ops.shape(state["self_key"][0])[2]
        # Idle slots keep stepping (the shapes are static) at a valid position; what they write
        # is never read: a new segment overwrites its slot's positions before it attends to
        # them.
        write_at = ops.minimum(position, cache_length - 1)
        logits, cache = self.backbone.decode_step(
            state["previous"], state, write_at, CACHE_IN_PLACE
        )
        next_ids = ops.cast(ops.argmax(logits, axis=-1), "int32")
        next_ids = ops.where(busy, next_ids, PAD_ID)
        slot_ids = ops.arange(ops.shape(position)[0], dtype="int32")
        column = ops.where(busy, position, max_length)
        put = _row_writer(self.backend)
        tokens = put(state["tokens"], ops.stack([slot_ids, column], axis=1), next_ids)
        position = position + ops.cast(busy, "int32")
        still = ops.logical_and(busy, next_ids != EOS_ID)
        still = ops.logical_and(still, position < max_length)
        stopped = stopped + ops.sum(ops.cast(ops.logical_and(busy, ~still), "int32"))
        state = dict(
            cache, position=position, previous=next_ids[:, None], active=still, tokens=tokens
        )
        return state, stopped


def _row_writer(backend):
    """`put(tensor, indices [n, k], values)`: writes `values` at `indices` of the leading axes,
    in place where the backend allows (the pool's buffers are never shared)."""
    if backend == "torch":

        def put_in_place(tensor, indices, values):
            tensor[tuple(indices[:, i] for i in range(indices.shape[1]))] = values.to(tensor.dtype)
            return tensor

        return put_in_place
    return lambda tensor, indices, values: ops.scatter_update(
        tensor, indices, ops.cast(values, tensor.dtype)
    )


def _compiler(backbone, jit) -> Callable[..., Any]:
    backend = keras.backend.backend()
    if backend == "jax" and jit:
        return lambda fn: greedy_decoding.jax_compiled(backbone, fn, donate_first=True)
    if backend == "tensorflow" and jit:
        import tensorflow as tf

        from keras_mt3 import xla_cpu

        xla_cpu.prefer_eigen_dots()

        def compile_tf(fn):
            compiled = tf.function(fn, jit_compile=True)
            return lambda state, *args: compiled(state, *(tf.convert_to_tensor(x) for x in args))

        return compile_tf
    if backend == "torch":
        import torch

        def run_without_autograd(fn):
            def run(state, *args):
                with torch.inference_mode():
                    return fn(state, *(ops.convert_to_tensor(x) for x in args))

            return run

        return run_without_autograd
    return lambda fn: fn
