import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_mt3.codec.event_codec import Codec, Event, EventRange
from keras_mt3.codec.run_length_encoding import (
    decode_events,
    encode_and_index_events,
    run_length_encode_shifts,
)

pytestmark = pytest.mark.backend_independent

# A small codec: shifts 0..100 (indices 0..100), then pitch 0..9 (indices 101..110).
CODEC = Codec(max_shift_steps=100, steps_per_second=100, event_ranges=[EventRange("pitch", 0, 9)])
PITCH = 101


def test_shifts_become_absolute_offsets_and_trailing_shifts_go():
    events = [1, 1, 1, PITCH, 1, 1, 1, PITCH + 1, 1, 1, 1]
    # Cumulative: 3 steps before the first pitch, 6 before the second.
    assert run_length_encode_shifts(events, CODEC).tolist() == [3, PITCH, 6, PITCH + 1]


def test_simultaneous_events_share_one_shift():
    events = [1, 1, 1, PITCH, PITCH + 1, 1]
    assert run_length_encode_shifts(events, CODEC).tolist() == [3, PITCH, PITCH + 1]


def test_leading_events_need_no_shift():
    assert run_length_encode_shifts([PITCH, 1, PITCH], CODEC).tolist() == [PITCH, 1, PITCH]


def test_long_shifts_split_into_max_size_chunks():
    events = [1] * 202 + [PITCH] + [1] * 3
    assert run_length_encode_shifts(events, CODEC).tolist() == [100, 100, 2, PITCH]


def test_mt3_shift_over_1000_steps_splits():
    codec = Codec(1000, 100, [EventRange("pitch", 0, 127)])
    pitch = codec.encode_event(Event("pitch", 60))
    tokens = run_length_encode_shifts([1] * 2345 + [pitch] + [1] * 10 + [pitch], codec)
    assert tokens.tolist() == [1000, 1000, 345, pitch, 1000, 1000, 355, pitch]
    times = []
    decode_events(None, tokens.tolist(), 1.0, None, codec,
                  lambda state, time, event, codec: times.append(time) or True)
    assert times == pytest.approx([1.0 + 23.45, 1.0 + 23.55])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 250), st.integers(0, 9)), max_size=30))
def test_run_length_round_trip(gaps_and_pitches):
    """Unrolled shifts -> RLE -> decode gives every event back at its step."""
    unrolled, expected, step = [], [], 0
    for gap, pitch in gaps_and_pitches:
        unrolled += [1] * gap + [PITCH + pitch]
        step += gap
        expected.append((step, pitch))
    decoded = []

    def record(state, time, event, codec):
        decoded.append((round(time * 100), event.value))
        return True

    tokens = run_length_encode_shifts(unrolled, CODEC)
    assert all(0 < t <= 100 for t in tokens.tolist() if CODEC.is_shift_event_index(t))
    assert decode_events(None, tokens.tolist(), 0.0, None, CODEC, record) == (0, 0)
    assert decoded == expected


def test_decode_drops_the_rest_after_a_shift_past_max_time():
    seen = []

    def record(state, time, event, codec):
        seen.append((time, event.value))
        return True

    # Strict '>': an event exactly at max_time (shift 50 -> 1.5) is kept; shift 51 drops the
    # shift itself and the three tokens after it.
    tokens = [50, PITCH, 51, PITCH + 1, 60, PITCH + 2]
    assert decode_events(None, tokens, 1.0, 1.5, CODEC, record) == (0, 4)
    assert seen == [(1.5, 0)]


def test_decode_counts_undecodable_and_rejected_events():
    tokens = [-1, 111, 5, PITCH, PITCH + 1, 10**10]
    result = decode_events(None, tokens, 0.0, None, CODEC,
                           lambda state, time, event, codec: event.value != 1)
    assert result == (4, 0)  # -1, 111, 10**10 undecodable; pitch 1 rejected


def test_events_at_a_frames_own_step_start_its_segment():
    frame_times = np.arange(6) / 125  # 0, 8, 16, 24, 32, 40 ms
    indexed = encode_and_index_events(
        event_times=[0.0, 0.01, 0.02],  # steps 0, 1, 2
        event_values=[0, 1, 2],
        encode_event_fn=lambda value: [Event("pitch", value)],
        codec=CODEC,
        frame_times=frame_times,
    )
    s = 1  # unrolled shift(1)
    assert indexed.events.tolist() == [PITCH, s, PITCH + 1, s, PITCH + 2, s, s, s]
    # Frame t starts at the events of step floor(100 t): frames 0 and 1 at step 0 (so events at
    # t = 0 belong to the first segment), frame 2 (16 ms) at step 1, frame 5 (40 ms) at step 4.
    assert indexed.event_start_indices.tolist() == [0, 0, 2, 4, 6, 7]
    assert indexed.event_end_indices.tolist() == [0, 2, 4, 6, 7, 8]
    assert indexed.state_events.size == 0


def encode_with_state(stale_final_state):
    active = []

    def encode(value):
        if value in active:
            active.remove(value)
        else:
            active.append(value)
        return [Event("pitch", value)]

    indexed = encode_and_index_events(
        event_times=[0.0, 0.02, 0.03],  # pitch 1 on, pitch 2 on, pitch 1 off
        event_values=[1, 2, 1],
        encode_event_fn=encode,
        codec=CODEC,
        frame_times=np.arange(8) / 125,
        state_events_fn=lambda: [Event("pitch", v) for v in sorted(active)] + [Event("shift", 0)],
        stale_final_state=stale_final_state,
    )

    def state_at(frame):
        start = indexed.state_event_indices[frame]
        end = start + list(indexed.state_events[start:]).index(0)
        return [i - PITCH for i in indexed.state_events[start:end]]

    return [state_at(f) for f in range(8)]


def test_state_sections_are_the_state_before_each_frames_first_step():
    # Frame time -> first step -> notes sounding before that step's events.
    assert encode_with_state(stale_final_state=True) == [
        [],  # 0 ms -> step 0
        [],  # 8 ms -> step 0
        [1],  # 16 ms -> step 1
        [1],  # 24 ms -> step 2: pitch 2 starts at this step, inside the segment
        [1, 2],  # 32 ms -> step 3: pitch 1 ends at this step, so it still sounds before it
        # 40 ms on -> step 4, after the last event: MT3 keeps the state before step 3's events
        [1, 2],
        [1, 2],
        [1, 2],
    ]


def test_true_final_state_after_the_last_event_on_request():
    states = encode_with_state(stale_final_state=False)
    assert states[:5] == encode_with_state(stale_final_state=True)[:5]
    assert states[5:] == [[2], [2], [2]]  # pitch 1 has ended
