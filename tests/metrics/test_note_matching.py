import tracemalloc

import mir_eval
import numpy as np
import pretty_midi
import pytest

from keras_mt3.errors import KerasMT3Error
from keras_mt3.metrics import MT3_OFFSET_RATIO, MatchCounts, match_notes

pytestmark = pytest.mark.backend_independent


def test_onset_tolerance_is_50_ms_and_pitch_must_agree(make_sequence):
    reference = make_sequence([(60, 1.0, 2.0), (62, 3.0, 4.0), (64, 5.0, 6.0)])
    estimate = make_sequence([(60, 1.049, 1.5), (62, 3.06, 4.0), (65, 5.0, 6.0)])
    matching = match_notes(reference.notes, estimate.notes)
    assert matching.pairs == ((0, 0),)
    assert matching.counts == MatchCounts(matched=1, estimated=3, reference=3)


def test_offsets_within_20_percent_or_50_ms(make_sequence):
    # Reference lasts 1 s, so the offset tolerance is 0.2 s; a 0.1 s note has 50 ms.
    reference = make_sequence([(60, 0.0, 1.0), (62, 2.0, 2.1)])
    close = make_sequence([(60, 0.0, 1.19), (62, 2.0, 2.149)])
    far = make_sequence([(60, 0.0, 1.25), (62, 2.0, 2.2)])
    with_offsets = dict(offset_ratio=MT3_OFFSET_RATIO)
    assert match_notes(reference.notes, close.notes, **with_offsets).counts.matched == 2
    assert match_notes(reference.notes, far.notes, **with_offsets).counts.matched == 0
    assert match_notes(reference.notes, far.notes).counts.matched == 2  # onset only


def test_each_note_matches_at_most_once(make_sequence):
    reference = make_sequence([(60, 1.0, 2.0)])
    estimate = make_sequence([(60, 1.0, 2.0), (60, 1.01, 2.0)])
    assert match_notes(reference.notes, estimate.notes).counts == MatchCounts(1, 2, 1)


def test_pairs_index_the_given_lists_and_zero_length_notes_are_not_counted(make_sequence):
    reference = make_sequence([(50, 0.0, 1.0), (60, 1.0, 2.0)])
    estimate = make_sequence([(60, 0.5, 0.5), (60, 1.02, 1.8)])  # first note has no length
    matching = match_notes(reference.notes, estimate.notes)
    assert matching.pairs == ((1, 1),)
    assert matching.counts == MatchCounts(1, 1, 2)


def test_velocity_matching_rescales_estimated_velocities(make_sequence):
    reference = make_sequence([(60, 0, 1, 20), (62, 1, 2, 60), (64, 2, 3, 100)])
    # Reference velocities normalize to (0, 0.5, 1). An affine map of them matches all three;
    # with two swapped, the best line misses every note by 0.25 or more (tolerance 0.1).
    scaled = make_sequence([(60, 0, 1, 50), (62, 1, 2, 70), (64, 2, 3, 90)])
    swapped = make_sequence([(60, 0, 1, 50), (62, 1, 2, 90), (64, 2, 3, 70)])
    assert match_notes(reference.notes, scaled.notes, with_velocity=True).counts.matched == 3
    assert match_notes(reference.notes, swapped.notes, with_velocity=True).counts.matched == 0
    assert match_notes(reference.notes, swapped.notes).counts.matched == 3


@pytest.mark.parametrize("with_velocity", [False, True])
def test_empty_sides(make_sequence, with_velocity):
    notes = make_sequence([(60, 0.0, 1.0), (61, 1.0, 2.0)]).notes
    assert match_notes([], notes, with_velocity=with_velocity).counts == MatchCounts(0, 2, 0)
    assert match_notes(notes, [], with_velocity=with_velocity).counts == MatchCounts(0, 0, 2)
    assert match_notes([], [], with_velocity=with_velocity).counts == MatchCounts()


def test_note_ending_before_it_starts_is_a_clear_error(make_sequence):
    bad = make_sequence([(60, 2.0, 1.0)])
    with pytest.raises(KerasMT3Error, match="ends at 1.0 s, before it starts"):
        match_notes(bad.notes, bad.notes)


def test_a_note_starting_before_zero_is_a_clear_error(make_sequence):
    bad = make_sequence([(60, -0.5, 1.0)])
    with pytest.raises(KerasMT3Error, match="starts at -0.5 s, before 0"):
        match_notes(bad.notes, bad.notes, offset_ratio=MT3_OFFSET_RATIO)


# ---- agreement with mir_eval, pair for pair -------------------------------------------------


def grid_notes(rng, count, grid):
    """Notes on a time grid over six pitches: many exact 50 ms distances, ties between equal
    matchings and zero-length notes, where a matching that differed from mir_eval's would show."""
    notes = []
    for _ in range(count):
        onset = int(rng.integers(0, 300)) * grid
        duration = int(rng.integers(0, 40)) * grid
        pitch, velocity = int(rng.integers(58, 64)), int(rng.integers(1, 128))
        notes.append((pitch, onset, onset + duration, velocity))
    return notes


def mir_eval_pairs(reference, estimate, offset_ratio, with_velocity):
    """mir_eval's matching of NoteSequence notes, as indices into the given note lists."""

    def arrays(notes):
        kept = [index for index, note in enumerate(notes) if note.end_time > note.start_time]
        intervals = np.array([(notes[i].start_time, notes[i].end_time) for i in kept])
        hz = pretty_midi.note_number_to_hz(np.array([notes[i].pitch for i in kept], float))
        return kept, intervals, hz, np.array([notes[i].velocity for i in kept], float)

    ref_kept, ref_intervals, ref_hz, ref_velocities = arrays(reference)
    est_kept, est_intervals, est_hz, est_velocities = arrays(estimate)
    if not ref_kept or not est_kept:
        return ()
    if with_velocity:
        pairs = mir_eval.transcription_velocity.match_notes(
            ref_intervals, ref_hz, ref_velocities, est_intervals, est_hz, est_velocities,
            offset_ratio=offset_ratio,
        )
    else:
        pairs = mir_eval.transcription.match_notes(
            ref_intervals, ref_hz, est_intervals, est_hz, offset_ratio=offset_ratio
        )
    return tuple((ref_kept[r], est_kept[e]) for r, e in pairs)


@pytest.mark.parametrize("grid", [0.01, 0.005, 0.0125, 0.001])
def test_pairs_are_mir_evals_pair_for_pair(make_sequence, grid):
    rng = np.random.default_rng(int(grid * 10000))
    compared = 0
    for _ in range(25):
        reference = make_sequence(grid_notes(rng, int(rng.integers(1, 120)), grid)).notes
        estimate = make_sequence(grid_notes(rng, int(rng.integers(1, 120)), grid)).notes
        for offset_ratio in (None, MT3_OFFSET_RATIO):
            for with_velocity in (False, True):
                expected = mir_eval_pairs(reference, estimate, offset_ratio, with_velocity)
                matching = match_notes(
                    reference, estimate, offset_ratio=offset_ratio, with_velocity=with_velocity
                )
                assert matching.pairs == expected, (grid, offset_ratio, with_velocity)
                compared += len(expected)
    assert compared > 300, "the random sequences should share many notes"


def test_a_realistic_transcription_matches_as_in_mir_eval(make_sequence, make_played_notes):
    reference, estimate = make_played_notes(1, 2000, 120.0)
    reference, estimate = make_sequence(reference).notes, make_sequence(estimate).notes
    for offset_ratio in (None, MT3_OFFSET_RATIO):
        for with_velocity in (False, True):
            expected = mir_eval_pairs(reference, estimate, offset_ratio, with_velocity)
            assert len(expected) > 800
            matching = match_notes(
                reference, estimate, offset_ratio=offset_ratio, with_velocity=with_velocity
            )
            assert matching.pairs == expected


def test_twenty_thousand_notes_match_in_bounded_memory(make_sequence, make_played_notes):
    # mir_eval's dense matrices would take over 12 GB here.
    reference, estimate = make_played_notes(2, 20000, 1200.0)
    reference, estimate = make_sequence(reference).notes, make_sequence(estimate).notes
    tracemalloc.start()
    try:
        matching = match_notes(reference, estimate, offset_ratio=MT3_OFFSET_RATIO)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert matching.counts.reference == 20000
    assert matching.counts.matched > 10000
    assert peak < 100 * 2**20, f"peak {peak / 2**20:.0f} MB"


def test_massively_duplicated_notes_are_refused_clearly(make_sequence):
    duplicates = make_sequence([(60, 1.0, 2.0)] * 2100).notes  # 2100 x 2100 candidate pairs
    with pytest.raises(KerasMT3Error, match="mostly duplicated notes"):
        match_notes(duplicates, duplicates)
