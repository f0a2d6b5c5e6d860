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
