"""The time axis of token streams.

Encoding first lays events on a grid of 1/steps_per_second steps, writing one `shift(1)` per
step ("unrolled" time), and records where each audio frame's events begin. A segment's slice of
that stream is then run-length encoded: before each event, the number of steps since the start
of the segment (an *absolute* offset within the segment, not a delta) is written as shift tokens
of at most `max_shift_steps` each. Decoding mirrors this.
"""

import dataclasses

import numpy as np

from keras_mt3.codec.event_codec import SHIFT, Event


@dataclasses.dataclass(frozen=True)
class IndexedEvents:
    """Events with unrolled time, indexed by audio frame.

    Attributes:
        events: int32 codec indices; one `shift(1)` per time step, the events of step s after
            the s-th shift.
        event_start_indices: per frame, where in `events` the frame's segment starts.
        event_end_indices: per frame, where it ends (the next frame's start; `len(events)` for
            the last frame, so the last segment also holds every later event).
        state_events: int32 codec indices of the encoding-state sections, back to back, each
            ending with the state terminator (empty when no state is tracked).
        state_event_indices: per frame, where in `state_events` its state section starts.
    """

    events: np.ndarray
    event_start_indices: np.ndarray
    event_end_indices: np.ndarray
    state_events: np.ndarray
    state_event_indices: np.ndarray


def time_to_step(time, steps_per_second):
    # Python's round (half to even) on the float product, as MT3 quantizes event times.
    return round(time * steps_per_second)


def encode_and_index_events(event_times, event_values, encode_event_fn, codec, frame_times,
                            state_events_fn=None, stale_final_state=True):
    """Lays timed values out as codec indices on the step grid and indexes them by frame.

    Args:
        event_times: seconds, one per value. Values are ordered by these unrounded times
            (equal times keep their given order), then each time is rounded to a step.
        event_values: anything `encode_event_fn` accepts.
        encode_event_fn: value -> list of `Event`s (may update an encoding state it closes over).
        codec: the `Codec`.
        frame_times: ascending start time in seconds of every audio frame.
        state_events_fn: optional () -> list of `Event`s describing the current encoding state.

        stale_final_state: what the frames after the last event's step get as their state
            section. True (MT3): the state before that step's events, so a segment starting after
            the last note-off still names the notes that sounded before it; the released
            checkpoint was trained on these sections. False: the state after the last event
            (normally nothing sounding), which describes those segments truthfully.

    Frame time t starts at the events of step s(t), the smallest s with t < (s + 1) / sps, so
    a segment holds the events at its own first step and none at the next segment's first step.
    Its state section is the state just before the events of step s(t) (but see
    `stale_final_state`).
    """
    frame_times = np.asarray(frame_times, dtype=np.float64)
    steps_per_second = codec.steps_per_second
    order = np.argsort(np.asarray(event_times, dtype=np.float64), kind="stable")
    shift_index = codec.encode_event(Event(SHIFT, 1))

    events = []
    state_events = []
    step_event_starts = [0]  # per step: index in `events` of its first event
    step_state_starts = [0]  # per step: index in `state_events` of the state before it
    current_step = 0

    def advance_to(step, state_start):
        nonlocal current_step
        while current_step < step:
            events.append(shift_index)
            current_step += 1
            step_event_starts.append(len(events))
            step_state_starts.append(state_start)

    def record_state():
        start = len(state_events)
        if state_events_fn is not None:
            state_events.extend(codec.encode_event(event) for event in state_events_fn())
        return start

    last_recorded_step = None
    last_state_start = None
    for position in order:
        # A step without events shares the state of the next step that has some, which is
        # recorded where `state_events` ends now.
        advance_to(time_to_step(event_times[position], steps_per_second), len(state_events))
        if current_step != last_recorded_step:
            last_state_start = record_state()
            last_recorded_step = current_step
        new_events = encode_event_fn(event_values[position])
        events.extend(codec.encode_event(event) for event in new_events)
    # MT3 never records the state after the last event: later steps keep the last step's.
    if stale_final_state and last_state_start is not None:
        final_state_start = last_state_start
    else:
        final_state_start = record_state()

    # Continue the grid until it passes the last frame (a frame exactly on a step boundary needs
    # the following step too).
    last_frame_time = frame_times[-1]
    while current_step / steps_per_second <= last_frame_time:
        advance_to(current_step + 1, final_state_start)

    step_boundaries = np.arange(1, current_step + 1, dtype=np.float64) / steps_per_second
    frame_steps = np.searchsorted(step_boundaries, frame_times, side="right")
    event_start_indices = np.asarray(step_event_starts, dtype=np.int64)[frame_steps]
    event_end_indices = np.append(event_start_indices[1:], len(events))
    state_event_indices = np.asarray(step_state_starts, dtype=np.int64)[frame_steps]
    return IndexedEvents(
        events=np.asarray(events, dtype=np.int32),
        event_start_indices=event_start_indices.astype(np.int32),
        event_end_indices=event_end_indices.astype(np.int32),
        state_events=np.asarray(state_events, dtype=np.int32),
        state_event_indices=state_event_indices.astype(np.int32),
    )


def run_length_encode_shifts(events, codec):
    """Replaces unrolled shifts by absolute in-segment offsets; drops trailing shifts.

    `events` are codec indices whose shift tokens each advance time by their value (1 when
    unrolled). Before every other event, if time moved since the previous one, the total number
    of steps since the start of the stream is written, split into shifts of at most
    `codec.max_shift_steps`.
    """
    output = []
    total_steps = 0
    pending = False
    for index in np.asarray(events).tolist():
        if codec.is_shift_event_index(index):
            total_steps += index  # shift(k) has codec index k
            pending = pending or index > 0
            continue
        if pending:
            remaining = total_steps
            while remaining > 0:
                chunk = min(remaining, codec.max_shift_steps)
                output.append(chunk)
                remaining -= chunk
            pending = False
        output.append(index)
    return np.asarray(output, dtype=np.int32)


def decode_events(state, tokens, start_time, max_time, codec, decode_event_fn):
    """Feeds one segment's codec indices to `decode_event_fn`, tracking time.

    Args:
        state: decoding state, updated in place.
        tokens: codec indices (Python ints); anything outside `[0, num_classes)` is invalid.
        start_time: time in seconds of the segment's step 0.
        max_time: a shift beyond this time (strictly) drops the rest of the segment. A falsy
            value (None or 0.0) means no limit, as in MT3.
        decode_event_fn: (state, time, event, codec) -> bool, False for an invalid event.

    Returns:
        `(num_invalid_events, num_dropped_events)`.
    """
    num_invalid = 0
    steps = 0
    time = start_time
    for position, index in enumerate(tokens):
        if not codec.is_valid_index(index):
            num_invalid += 1
            continue
        if codec.is_shift_event_index(index):
            steps += index
            time = start_time + steps / codec.steps_per_second
            if max_time and time > max_time:
                return num_invalid, len(tokens) - position
            continue
        # Shift values are offsets from the segment start, so the count restarts after an event.
        steps = 0
        if not decode_event_fn(state, time, codec.decode_event_index(index), codec):
            num_invalid += 1
    return num_invalid, 0
