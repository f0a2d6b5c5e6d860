import mir_eval
import numpy as np
import pytest

from keras_mt3.errors import KerasMT3Error
from keras_mt3.metrics import (
    MatchCounts,
    instrument_tracks,
    match_instrument_tracks,
    multi_instrument_counts,
)

pytestmark = pytest.mark.backend_independent


@pytest.mark.parametrize(
    "estimated_program, matches",
    [
        (1, {"flat": 1, "midi_class": 1, "full": 0}),  # same GM class as program 0
        (9, {"flat": 1, "midi_class": 0, "full": 0}),  # next class
        (0, {"flat": 1, "midi_class": 1, "full": 1}),
    ],
)
def test_program_granularities(make_sequence, estimated_program, matches):
    reference = make_sequence([(60, 1.0, 2.0, 100, 0)])
    estimate = make_sequence([(60, 1.0, 2.0, 100, estimated_program)])
    for granularity, matched in matches.items():
        counts = multi_instrument_counts(estimate, reference, granularity)
        assert counts.total == MatchCounts(matched, 1, 1), granularity


def test_drums_match_on_onset_and_other_notes_on_onset_and_offset(make_sequence):
    reference = make_sequence([(36, 1.0, 1.5, 100, 0, True), (60, 2.0, 3.0, 100, 0)])
    estimate = make_sequence([(36, 1.02, 1.03, 127, 0, True), (60, 2.0, 2.5, 127, 0)])
    counts = multi_instrument_counts(estimate, reference)
    assert counts.drum == MatchCounts(1, 1, 1)
    assert counts.nondrum == MatchCounts(0, 1, 1)
    assert counts.total == MatchCounts(1, 2, 2)
    onset_only = multi_instrument_counts(estimate, reference, offset_ratio=None)
    assert onset_only.nondrum == MatchCounts(1, 1, 1)


def test_drum_programs_are_not_mapped(make_sequence):
    # As in MT3: drums keep their program, even at the flat granularity.
    reference = make_sequence([(36, 1.0, 1.5, 100, 25, True)])
    estimate = make_sequence([(36, 1.0, 1.01, 127, 0, True)])
    assert instrument_tracks(reference.notes, "flat") == {(25, True): [0]}
    assert multi_instrument_counts(estimate, reference, "flat").drum == MatchCounts(0, 1, 1)


def test_total_is_mt3s_weighted_average_over_tracks(make_sequence):
    reference = make_sequence(
        [(60, 0, 1, 100, 0), (62, 1, 2, 100, 0), (64, 2, 3, 100, 0), (40, 0, 2, 100, 33),
         (36, 0, 0.1, 100, 0, True), (38, 0.5, 0.6, 100, 0, True)]
    )
    estimate = make_sequence(
        [(60, 0, 1, 127, 0), (62, 1.2, 2, 127, 0), (40, 0, 2, 127, 32), (52, 0, 2, 127, 33),
         (36, 0.01, 0.02, 127, 0, True)]
    )
    precision_sum = recall_sum = 0.0
    for program, is_drum in [(0, False), (32, False), (33, False), (0, True)]:
        ref = [n for n in reference.notes if (n.program, n.is_drum) == (program, is_drum)]
        est = [n for n in estimate.notes if (n.program, n.is_drum) == (program, is_drum)]
        if ref and est:
            precision, recall, _, _ = mir_eval.transcription.precision_recall_f1_overlap(
                *intervals_and_hz(ref),
                *intervals_and_hz(est),
                offset_ratio=None if is_drum else 0.2,
            )
            precision_sum += precision * len(est)
            recall_sum += recall * len(ref)
    total = multi_instrument_counts(estimate, reference, "full").total
    assert total.precision == pytest.approx(precision_sum / len(estimate.notes))
    assert total.recall == pytest.approx(recall_sum / len(reference.notes))
    assert total == MatchCounts(2, 5, 6)


def test_track_pairs_index_the_whole_sequences(make_sequence):
    reference = make_sequence([(40, 0, 1, 100, 33), (60, 0, 1, 100, 0)])
    estimate = make_sequence([(60, 0, 1, 127, 0), (70, 0, 1, 127, 73), (40, 0, 1, 127, 33)])
    tracks = match_instrument_tracks(estimate, reference)
    assert [(t.program, t.is_drum, t.pairs) for t in tracks] == [
        (0, False, ((1, 0),)),
        (33, False, ((0, 2),)),
        (73, False, ()),
    ]


def test_unknown_granularity(make_sequence):
    with pytest.raises(KerasMT3Error, match="granularity 'per_note' is unknown"):
        multi_instrument_counts(make_sequence([]), make_sequence([]), "per_note")


def intervals_and_hz(notes):
    intervals = np.array([(n.start_time, n.end_time) for n in notes])
    return intervals, 440.0 * 2.0 ** ((np.array([n.pitch for n in notes]) - 69) / 12)
