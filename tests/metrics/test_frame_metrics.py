import numpy as np
import pytest

from keras_mt3.metrics import MatchCounts, frame_counts, piano_roll

pytestmark = pytest.mark.backend_independent

# At 62.5 frames per second a frame is 16 ms; pretty_midi fills frames
# int(start * 62.5) .. int(end * 62.5) - 1.


def active_frames(roll, pitch):
    return np.flatnonzero(roll[pitch]).tolist()


def test_piano_roll_frames_and_velocities(make_sequence):
    roll = piano_roll(make_sequence([(60, 0.0, 0.2, 100), (62, 0.1, 0.3, 80)]))
    assert roll.shape == (128, 18)
    assert active_frames(roll, 60) == list(range(0, 12))
    assert active_frames(roll, 62) == list(range(6, 18))
    assert roll[60, 0] == 100 and roll[62, 10] == 80


def test_short_notes_last_50_ms_and_drums_exactly_50_ms(make_sequence):
    sequence = make_sequence([(70, 0.0, 0.01, 100), (36, 0.5, 2.0, 100, 0, True)])
    roll = piano_roll(sequence)
    assert active_frames(roll, 70) == [0, 1, 2]  # 0.05 s * 62.5 = 3.125
    assert active_frames(roll, 36) == [31, 32, 33]  # 0.5 .. 0.55 s
    assert sequence.notes[0].end_time == 0.01  # the input is not modified


def test_every_program_reaches_the_roll(make_sequence):
    # Hand-built sequences leave `instrument` at 0 for every program.
    notes = [(60, 0, 0.5, 100, 0), (64, 0, 0.5, 100, 33), (67, 0, 0.5, 90, 73)]
    roll = piano_roll(make_sequence(notes))
    assert [bool(roll[p].any()) for p in (60, 64, 67)] == [True, True, True]


def test_frame_counts(make_sequence):
    reference = make_sequence([(60, 0.0, 0.2)])
    estimate = make_sequence([(60, 0.1, 0.3)])
    assert frame_counts(estimate, reference) == MatchCounts(matched=6, estimated=12, reference=12)


def test_reference_cells_count_above_velocity_30_and_velocities_add_up(make_sequence):
    estimate = make_sequence([(60, 0.0, 0.2, 1), (62, 0.0, 0.2, 1), (64, 0.0, 0.2, 1)])
    reference = make_sequence(
        [
            (60, 0.0, 0.2, 30),  # at the threshold: inactive
            (62, 0.0, 0.2, 31),  # above: active
            (64, 0.0, 0.2, 20, 0),  # two quiet notes on one pitch sum to 40: active
            (64, 0.0, 0.2, 20, 40),
        ]
    )
    assert frame_counts(estimate, reference) == MatchCounts(matched=24, estimated=36, reference=24)


def test_empty_sequences(make_sequence):
    notes = make_sequence([(60, 0.0, 0.2)])
    empty = make_sequence([])
    assert frame_counts(empty, empty) == MatchCounts()
    assert frame_counts(notes, empty) == MatchCounts(0, 12, 0)
    assert frame_counts(empty, notes) == MatchCounts(0, 0, 12)
