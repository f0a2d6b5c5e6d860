"""TensorFlow twin of `keras_mt3.codec.detokenize`: per-segment token ids -> padded note tensors.

This is `tokens_to_note_sequence` rebuilt from graph ops so that a SavedModel can return notes,
and a TF Serving client needs no Python package to read them. It follows the same rules
(docs/mt3_details.md#decoding-tokens) and gives the same notes in the same order, which
tests/tf_ops/test_tf_detokenize.py checks against the Python detokenizer:

- Segments are decoded in order of start time, one decoding state per example carried across
  them. Each segment cuts at its first EOS; PAD, UNK, extra and out-of-range ids are invalid.
- Shift values are offsets from the segment start that restart after every other event. A shift
  past the next segment's start (strictly; a next start of 0.0 means no limit, as in MT3) drops
  the rest of the segment.
- The state machine (`note_encoding.decode_note_event`): an event earlier than the current time
  is invalid; note-off of a silent note is invalid; an onset of a sounding note ends it first;
  drums last one step; with ties, every segment opens a tie section whose `tie` ends the notes
  it did not name, at the segment start. Notes last at least `MIN_NOTE_DURATION`; at the end the
  remaining notes end together, at least one step after the latest onset.

The time bookkeeping (shifts, drops) is vectorized; only the events themselves run through a
`tf.while_loop`, with the sounding notes held in a [128 programs x 128 pitches] table. Times are
computed in float64 with the same operations as the Python code, so they are bit-identical. No
op here needs XLA.
"""

from typing import NamedTuple

import tensorflow as tf

from keras_mt3.codec import vocabulary as vocabulary_lib
from keras_mt3.codec.note_encoding import MIN_NOTE_DURATION
from keras_mt3.constants import DEFAULT_VELOCITY, EOS_ID
from keras_mt3.tf_ops.exact_math import exact_divide

NUM_PITCHES = vocabulary_lib.MAX_MIDI_PITCH + 1
NUM_PROGRAMS = vocabulary_lib.MAX_MIDI_PROGRAM + 1
_NUM_KEYS = NUM_PITCHES * NUM_PROGRAMS  # sounding-note table, indexed program * 128 + pitch

# Columns of the float64 note records collected in the loop.
_EXAMPLE, _ONSET, _OFFSET, _PITCH, _VELOCITY, _PROGRAM, _IS_DRUM = range(7)
_NUM_COLUMNS = 7

# Branches of the per-event switch.
_TOO_EARLY, _PITCH_EVENT, _VELOCITY_EVENT, _TIE_EVENT, _PROGRAM_EVENT, _DRUM_EVENT = range(6)


class DetokenizedNotes(NamedTuple):
    """Notes per example, padded to the largest count (padding: 0 / False).

    onset_times, offset_times: float64 [num_examples, max_notes], seconds.
    pitches, velocities, programs: int32 [num_examples, max_notes] (drums: program 0).
    is_drum: bool [num_examples, max_notes].
    num_notes, num_invalid_events, num_dropped_events: int32 [num_examples].
    """

    onset_times: tf.Tensor
    offset_times: tf.Tensor
    pitches: tf.Tensor
    velocities: tf.Tensor
    programs: tf.Tensor
    is_drum: tf.Tensor
    num_notes: tf.Tensor
    num_invalid_events: tf.Tensor
    num_dropped_events: tf.Tensor


class _CodecLayout(NamedTuple):
    """Where each event type sits among the codec indices (all Python ints)."""

    num_classes: int
    max_shift: int
    steps_per_second: int
    pitch: int
    velocity: int
    num_velocity_bins: int
    tie: int
    program: int
    drum: int
    use_ties: bool

    @classmethod
    def of(cls, vocabulary):
        codec = vocabulary.codec
        return cls(
            num_classes=codec.num_classes,
            max_shift=codec.max_shift_steps,
            steps_per_second=codec.steps_per_second,
            pitch=codec.event_type_range("pitch")[0],
            velocity=codec.event_type_range("velocity")[0],
            num_velocity_bins=vocabulary.num_velocity_bins,
            tie=codec.event_type_range("tie")[0],
            program=codec.event_type_range("program")[0],
            drum=codec.event_type_range("drum")[0],
            use_ties=vocabulary.use_ties,
        )


def detokenize(tokens, start_times, example_ids=None, num_examples=None, vocabulary="mt3"):
    """Decodes model ids, one row per segment, into `DetokenizedNotes`.

    Args:
        tokens: int32 [num_segments, length] model ids (0 PAD, 1 EOS, 2 UNK, codec index + 3).
            Everything from a row's first EOS on is ignored.
        start_times: float64 [num_segments], seconds of each segment's first time step (MT3
            rounds the segment's audio start down to 10 ms).
        example_ids: int32 [num_segments], which example each segment belongs to (default: all
            one example). Segments of an example need not be adjacent or in time order.
        num_examples: rows of the result (default: 1 + the largest example id, at least 1).
        vocabulary: a vocabulary name or `VocabularyConfig`.

    Never fails on bad tokens: they are counted in `num_invalid_events` and skipped.
    """
    layout = _CodecLayout.of(vocabulary_lib.get_vocabulary(vocabulary))
    tokens = tf.convert_to_tensor(tokens, tf.int32)
    start_times = tf.cast(start_times, tf.float64)
    if example_ids is None:
        example_ids = tf.zeros_like(tokens[:, 0])
    example_ids = tf.convert_to_tensor(example_ids, tf.int32)
    if num_examples is None:
        num_examples = tf.reduce_max(tf.concat([example_ids, [0]], axis=0)) + 1
    num_examples = tf.convert_to_tensor(num_examples, tf.int32)

    stream = _token_stream(tokens, start_times, example_ids, layout)
    events = _events(stream)
    records, event_invalid = _run_state_machine(events, layout)

    note_example = tf.cast(records[:, _EXAMPLE], tf.int32)

    def per_example(column, dtype):
        values = tf.cast(records[:, column], dtype)
        ragged = tf.RaggedTensor.from_value_rowids(values, note_example, nrows=num_examples)
        return ragged.to_tensor()

    def count(flags, owners):
        return tf.math.unsorted_segment_sum(tf.cast(flags, tf.int32), owners, num_examples)

    invalid = count(stream.invalid_index, stream.example) + count(event_invalid, events.example)
    return DetokenizedNotes(
        onset_times=per_example(_ONSET, tf.float64),
        offset_times=per_example(_OFFSET, tf.float64),
        pitches=per_example(_PITCH, tf.int32),
        velocities=per_example(_VELOCITY, tf.int32),
        programs=per_example(_PROGRAM, tf.int32),
        is_drum=per_example(_IS_DRUM, tf.bool),
        num_notes=count(tf.ones_like(note_example), note_example),
        num_invalid_events=invalid,
        num_dropped_events=count(stream.dropped, stream.example),
    )


# ---- vectorized time bookkeeping -----------------------------------------------------------


class _TokenStream(NamedTuple):
    """Every kept token (before EOS) of every segment, in decoding order, flattened."""

    codec: tf.Tensor  # int32 codec index (meaningless where not valid)
    time: tf.Tensor  # float64 time of the token (for events: of the last shift before it)
    segment: tf.Tensor  # int32 segment number in decoding order
    example: tf.Tensor  # int32
    is_event: tf.Tensor  # bool, a valid non-shift token that was not dropped
    invalid_index: tf.Tensor  # bool, not a regular token (and not dropped)
    dropped: tf.Tensor  # bool, after a shift past the next segment's start


def _token_stream(tokens, start_times, example_ids, layout):
    # Decoding order: by example, then by start time (both stable).
    by_time = tf.argsort(start_times, stable=True)
    order = tf.gather(by_time, tf.argsort(tf.gather(example_ids, by_time), stable=True))
    tokens = tf.gather(tokens, order)
    start_times = tf.gather(start_times, order)
    example_ids = tf.gather(example_ids, order)

    # A segment may not reach past the next segment of its example (MT3 treats 0.0 as no limit).
    num_segments = tf.shape(tokens)[0]
    next_start = _shift_left(start_times, 0.0)
    next_is_same_example = tf.logical_and(
        tf.range(num_segments) < num_segments - 1,
        tf.equal(_shift_left(example_ids, -1), example_ids),
    )
    has_limit = tf.logical_and(next_is_same_example, tf.not_equal(next_start, 0.0))
    max_times = tf.where(has_limit, next_start, tf.constant(float("inf"), tf.float64))

    length = tf.shape(tokens)[1]
    columns = tf.range(length)[None, :]
    first_eos = tf.reduce_min(
        tf.where(tf.equal(tokens, EOS_ID), columns, length), axis=1
    )
    kept = columns < tf.minimum(first_eos, length)[:, None]
    model_ids = tf.boolean_mask(tokens, kept)
    segment = tf.cast(tf.where(kept)[:, 0], tf.int32)

    first_id = vocabulary_lib.NUM_SPECIAL_TOKENS
    valid = tf.logical_and(model_ids >= first_id, model_ids < first_id + layout.num_classes)
    codec = tf.where(valid, model_ids, first_id) - first_id
    is_shift = tf.logical_and(valid, codec <= layout.max_shift)
    is_event = tf.logical_and(valid, tf.logical_not(is_shift))

    num_tokens = tf.size(codec)
    positions = tf.range(num_tokens)
    segment_first = tf.gather(
        tf.math.unsorted_segment_min(positions, segment, num_segments), segment
    )
    starts_segment = tf.equal(positions, segment_first)

    # Shift values count steps from the segment start or the last event, whichever is later.
    shift_steps = tf.where(is_shift, tf.cast(codec, tf.int64), 0)
    steps_through = tf.cumsum(shift_steps)
    starts_run = tf.logical_or(starts_segment, _shift_right(is_event, False))
    run = tf.cumsum(tf.cast(starts_run, tf.int32)) - 1
    run_first = tf.math.unsorted_segment_min(
        positions, run, tf.reduce_sum(tf.cast(starts_run, tf.int32))
    )
    steps = steps_through - tf.gather(steps_through - shift_steps, tf.gather(run_first, run))
    segment_start = tf.gather(start_times, segment)
    # The Python decoder computes `start_time + steps / steps_per_second` in float64.
    shift_time = segment_start + exact_divide(
        tf.cast(steps, tf.float64), float(layout.steps_per_second)
    )

    # A token's time is that of the last shift before it in its segment.
    shift_count = tf.cumsum(tf.cast(is_shift, tf.int32))
    shift_positions = tf.concat([tf.cast(tf.where(is_shift)[:, 0], tf.int32), [-1]], axis=0)
    last_shift = tf.gather(shift_positions, tf.maximum(shift_count - 1, 0))
    has_shift = tf.logical_and(shift_count > 0, last_shift >= segment_first)
    time = tf.where(has_shift, tf.gather(shift_time, tf.maximum(last_shift, 0)), segment_start)

    too_late = tf.logical_and(is_shift, shift_time > tf.gather(max_times, segment))
    too_late_count = tf.cumsum(tf.cast(too_late, tf.int32))
    too_late_before = tf.gather(too_late_count - tf.cast(too_late, tf.int32), segment_first)
    dropped = too_late_count > too_late_before
    kept_event = tf.logical_and(is_event, tf.logical_not(dropped))
    return _TokenStream(
        codec=codec,
        time=time,
        segment=segment,
        example=tf.gather(example_ids, segment),
        is_event=kept_event,
        invalid_index=tf.logical_and(tf.logical_not(valid), tf.logical_not(dropped)),
        dropped=dropped,
    )


class _Events(NamedTuple):
    codec: tf.Tensor
    time: tf.Tensor
    example: tf.Tensor
    starts_segment: tf.Tensor  # first event of its segment: the tie section starts over
    starts_example: tf.Tensor  # first event of its example: the decoding state starts over


def _events(stream):
    mask = stream.is_event
    segment = tf.boolean_mask(stream.segment, mask)
    example = tf.boolean_mask(stream.example, mask)
    return _Events(
        codec=tf.boolean_mask(stream.codec, mask),
        time=tf.boolean_mask(stream.time, mask),
        example=example,
        starts_segment=tf.not_equal(segment, _shift_right(segment, -1)),
        starts_example=tf.not_equal(example, _shift_right(example, -1)),
    )


def _shift_right(values, fill):
    """`values` moved one place later, `fill` first (same length, also when empty)."""
    padded = tf.concat([tf.fill([1], tf.cast(fill, values.dtype)), values], axis=0)
    return padded[: tf.size(values)]


def _shift_left(values, fill):
    return tf.concat([values, tf.fill([1], tf.cast(fill, values.dtype))], axis=0)[1:]


# ---- the event state machine ---------------------------------------------------------------


class _State(NamedTuple):
    current_time: tf.Tensor  # float64
    velocity: tf.Tensor  # int32, 0 turns pitch events into note-offs
    program: tf.Tensor  # int32
    in_tie_section: tf.Tensor  # bool
    sounding: tf.Tensor  # bool [keys]
    onset: tf.Tensor  # float64 [keys]
    onset_velocity: tf.Tensor  # int32 [keys]
    serial: tf.Tensor  # int32 [keys], when the note started (closing order of tie and flush)
    tied: tf.Tensor  # bool [keys], named in the current tie section
    next_serial: tf.Tensor  # int32
    example: tf.Tensor  # int32, the example being decoded
    notes: tf.TensorArray  # float64 records [_NUM_COLUMNS]
    num_notes: tf.Tensor  # int32


def _initial_state():
    return _State(
        current_time=tf.constant(0.0, tf.float64),
        velocity=tf.constant(DEFAULT_VELOCITY, tf.int32),
        program=tf.constant(0, tf.int32),
        in_tie_section=tf.constant(False),
        sounding=tf.zeros([_NUM_KEYS], tf.bool),
        onset=tf.zeros([_NUM_KEYS], tf.float64),
        onset_velocity=tf.zeros([_NUM_KEYS], tf.int32),
        serial=tf.zeros([_NUM_KEYS], tf.int32),
        tied=tf.zeros([_NUM_KEYS], tf.bool),
        next_serial=tf.constant(0, tf.int32),
        example=tf.constant(0, tf.int32),
        notes=tf.TensorArray(
            tf.float64, size=0, dynamic_size=True, element_shape=[_NUM_COLUMNS]
        ),
        num_notes=tf.constant(0, tf.int32),
    )


def _record(example, onset, offset, pitch, velocity, program, is_drum):
    """One float64 note row; the note lasts at least MIN_NOTE_DURATION (as `_add_note`)."""
    offset = tf.maximum(offset, onset + MIN_NOTE_DURATION)
    columns = [example, onset, offset, pitch, velocity, program, is_drum]
    return tf.stack([tf.cast(column, tf.float64) for column in columns], axis=-1)


def _append(state, record):
    return state._replace(
        notes=state.notes.write(state.num_notes, record), num_notes=state.num_notes + 1
    )


def _close_notes(state, closing, end_time):
    """Ends the sounding notes flagged in `closing` at `end_time`, oldest onset first."""
    keys = tf.cast(tf.where(closing)[:, 0], tf.int32)
    keys = tf.gather(keys, tf.argsort(tf.gather(state.serial, keys), stable=True))
    count = tf.size(keys)
    records = _record(
        tf.fill([count], state.example),
        tf.gather(state.onset, keys),
        tf.fill([count], end_time),
        keys % NUM_PITCHES,
        tf.gather(state.onset_velocity, keys),
        keys // NUM_PITCHES,
        tf.zeros([count], tf.int32),
    )
    return state._replace(
        sounding=tf.logical_and(state.sounding, tf.logical_not(closing)),
        notes=state.notes.scatter(state.num_notes + tf.range(count), records),
        num_notes=state.num_notes + count,
    )


def _flush(state):
    """`flush_note_decoding_state`: every sounding note ends, no earlier than a step after
    the latest onset."""
    latest = tf.reduce_max(
        tf.where(state.sounding, state.onset + MIN_NOTE_DURATION, state.current_time)
    )
    end_time = tf.maximum(state.current_time, latest)
    return _close_notes(state, state.sounding, end_time)


def _set_key(table, key, value):
    return tf.tensor_scatter_nd_update(table, [[key]], [value])


def _decode_pitch(state, pitch, time):
    key = state.program * NUM_PITCHES + pitch
    sounding = state.sounding[key]

    def mark_tied():
        valid = tf.logical_and(sounding, tf.logical_not(state.tied[key]))
        tied = _set_key(state.tied, key, tf.logical_or(valid, state.tied[key]))
        return state._replace(tied=tied), tf.logical_not(valid)

    def note_off_or_on():
        closed = tf.cond(
            sounding,
            lambda: _append(
                state._replace(sounding=_set_key(state.sounding, key, False)),
                _record(
                    state.example,
                    state.onset[key],
                    time,
                    pitch,
                    state.onset_velocity[key],
                    state.program,
                    0,
                ),
            ),
            lambda: state,
        )
        is_onset = state.velocity > 0

        def start():
            return closed._replace(
                sounding=_set_key(closed.sounding, key, True),
                onset=_set_key(closed.onset, key, time),
                onset_velocity=_set_key(closed.onset_velocity, key, state.velocity),
                serial=_set_key(closed.serial, key, closed.next_serial),
                next_serial=closed.next_serial + 1,
            )

        new_state = tf.cond(is_onset, start, lambda: closed)
        return new_state, tf.logical_and(tf.logical_not(is_onset), tf.logical_not(sounding))

    return tf.cond(state.in_tie_section, mark_tied, note_off_or_on)


def _run_state_machine(events, layout):
    """Returns `(note records [n, _NUM_COLUMNS] float64, invalid flag per event)`."""
    num_events = tf.size(events.codec)

    def kind_and_value(codec):
        kinds = [
            (layout.pitch, NUM_PITCHES, _PITCH_EVENT),
            (layout.velocity, layout.num_velocity_bins + 1, _VELOCITY_EVENT),
            (layout.tie, 1, _TIE_EVENT),
            (layout.program, NUM_PROGRAMS, _PROGRAM_EVENT),
            (layout.drum, NUM_PITCHES, _DRUM_EVENT),
        ]
        kind, value = tf.constant(-1), tf.constant(0)
        for first, size, branch in kinds:
            inside = tf.logical_and(codec >= first, codec < first + size)
            kind = tf.where(inside, branch, kind)
            value = tf.where(inside, codec - first, value)
        return kind, value

    def body(index, state, invalid_flags):
        time = events.time[index]

        def start_example():
            flushed = _flush(state)
            return _initial_state()._replace(
                example=events.example[index], notes=flushed.notes, num_notes=flushed.num_notes
            )

        state = tf.cond(events.starts_example[index], start_example, lambda: state)
        if layout.use_ties:
            state = tf.cond(
                events.starts_segment[index],
                lambda: state._replace(
                    tied=tf.zeros([_NUM_KEYS], tf.bool), in_tie_section=tf.constant(True)
                ),
                lambda: state,
            )
        kind, value = kind_and_value(events.codec[index])
        too_early = time < state.current_time
        branch = tf.where(too_early, _TOO_EARLY, kind)
        # Even an event that turns out invalid moves time forward (as in MT3).
        moved = state._replace(current_time=tf.maximum(state.current_time, time))
        invalid, valid = tf.constant(True), tf.constant(False)

        def pitch_event():
            return _decode_pitch(moved, value, time)

        def velocity_event():
            velocity = (vocabulary_lib.MAX_MIDI_VELOCITY * value) // layout.num_velocity_bins
            return moved._replace(velocity=velocity), valid

        def tie_event():
            return tf.cond(
                moved.in_tie_section,
                lambda: (
                    _close_notes(
                        moved,
                        tf.logical_and(moved.sounding, tf.logical_not(moved.tied)),
                        moved.current_time,
                    )._replace(in_tie_section=tf.constant(False)),
                    valid,
                ),
                lambda: (moved, invalid),
            )

        def program_event():
            return moved._replace(program=value), valid

        def drum_event():
            is_onset = moved.velocity > 0
            return tf.cond(
                is_onset,
                lambda: (
                    _append(
                        moved,
                        _record(moved.example, time, time, value, moved.velocity, 0, 1),
                    ),
                    valid,
                ),
                lambda: (moved, invalid),
            )

        branches = {
            _TOO_EARLY: lambda: (state, invalid),
            _PITCH_EVENT: pitch_event,
            _VELOCITY_EVENT: velocity_event,
            _TIE_EVENT: tie_event,
            _PROGRAM_EVENT: program_event,
            _DRUM_EVENT: drum_event,
        }
        state, is_invalid = tf.switch_case(branch, branches)
        return index + 1, state, invalid_flags.write(index, is_invalid)

    _, state, invalid_flags = tf.while_loop(
        lambda index, *_: index < num_events,
        body,
        (
            tf.constant(0),
            _initial_state(),
            tf.TensorArray(tf.bool, size=num_events, element_shape=[]),
        ),
        parallel_iterations=1,
    )
    state = _flush(state)
    return state.notes.stack(), invalid_flags.stack()
