"""transcription_metrics against independent mir_eval computations and the original MT3's scores.

The estimates are the original MT3's transcriptions (`NAME.json` notes) and the references the
rendered ground truth (`NAME.mid`), read here with pretty_midi directly rather than note_seq.
"""

import tracemalloc
import warnings

import mir_eval
import numpy as np
import pretty_midi
import pytest
from helpers import reference_notes

from keras_mt3.errors import KerasMT3Error
from keras_mt3.metrics import multi_instrument_counts, transcription_metrics
from keras_mt3.midi_io import load_midi

pytestmark = pytest.mark.backend_independent

SCORE_NAMES = (
    "onset",
    "onset_offset",
    "onset_velocity",
    "onset_offset_velocity",
    "frame",
    "program_flat",
    "program_midi_class",
    "program_full",
    "nondrum_program_flat",
    "nondrum_program_midi_class",
    "nondrum_program_full",
    "drum_onset",
)


# ---- independent note lists: (pitch, start, end, velocity, program, is_drum) ----------------


def ground_truth_notes(reference_dir, name):
    midi = pretty_midi.PrettyMIDI(str(reference_dir / f"{name}.mid"))
    return [
        (n.pitch, n.start, n.end, n.velocity, inst.program, inst.is_drum)
        for inst in midi.instruments
        for n in inst.notes
    ]


def mir_eval_scores(reference, estimate, **kwargs):
    """(precision, recall, f1) straight from mir_eval; (0, 0, 0) when a side is empty."""
    if not reference or not estimate:
        return 0.0, 0.0, 0.0
    ref_intervals, ref_hz = as_arrays(reference)
    est_intervals, est_hz = as_arrays(estimate)
    scores = mir_eval.transcription.precision_recall_f1_overlap(
        ref_intervals, ref_hz, est_intervals, est_hz, **kwargs
    )
    return scores[:3]


def as_arrays(notes):
    intervals = np.array([(start, end) for _, start, end, *_ in notes])
    hz = np.array([pretty_midi.note_number_to_hz(pitch) for pitch, *_ in notes])
    return intervals, hz


def drumless(notes):
    return [note for note in notes if not note[5]]


def program_aware_scores(reference, estimate, program_map, drums=True, offsets=True):
    """MT3's per-track matching and weighted averages, written out with mir_eval."""

    def track(note):
        program, is_drum = note[4], note[5]
        return (program if is_drum else program_map(program), is_drum)

    tracks = {track(n) for n in reference + estimate if drums or not n[5]}
    precision_sum = recall_sum = 0.0
    num_est = num_ref = 0
    for key in tracks:
        ref = [n for n in reference if track(n) == key]
        est = [n for n in estimate if track(n) == key]
        onset_only = key[1] or not offsets
        precision, recall, _ = mir_eval_scores(ref, est, offset_ratio=None if onset_only else 0.2)
        precision_sum += precision * len(est)
        recall_sum += recall * len(ref)
        num_est += len(est)
        num_ref += len(ref)
    precision, recall = precision_sum / num_est, recall_sum / num_ref
    return precision, recall, mir_eval.util.f_measure(precision, recall)


PROGRAM_MAPS = {"flat": lambda p: 0, "midi_class": lambda p: 8 * (p // 8), "full": lambda p: p}


@pytest.fixture(scope="module")
def score_clip(reference_dir, make_sequence):
    """name -> (name, estimate notes, reference notes, transcription_metrics), computed once."""
    cache = {}

    def score(name):
        if name not in cache:
            estimate = reference_notes(reference_dir, name)
            reference = ground_truth_notes(reference_dir, name)
            metrics = transcription_metrics(
                make_sequence(estimate), load_midi(reference_dir / f"{name}.mid")
            )
            cache[name] = (name, estimate, reference, metrics)
        return cache[name]

    return score


@pytest.fixture(params=["piano_chorale", "multi_band"])
def clip(request, score_clip):
    return score_clip(request.param)


def scores_of(metrics, prefix):
    return tuple(metrics[f"{prefix}_{part}"] for part in ("precision", "recall", "f1"))


# ---- agreement with independent mir_eval computations -------------------------------------


def test_onset_scores_match_mir_eval(clip):
    _, estimate, reference, metrics = clip
    expected = mir_eval_scores(drumless(reference), drumless(estimate), offset_ratio=None)
    assert scores_of(metrics, "onset") == pytest.approx(expected, abs=1e-12)


def test_onset_offset_scores_match_mir_eval(clip):
    _, estimate, reference, metrics = clip
    expected = mir_eval_scores(drumless(reference), drumless(estimate))
    assert scores_of(metrics, "onset_offset") == pytest.approx(expected, abs=1e-12)


def test_velocity_scores_match_mir_eval(clip):
    _, estimate, reference, metrics = clip
    ref, est = drumless(reference), drumless(estimate)
    for prefix, offset_ratio in (("onset_velocity", None), ("onset_offset_velocity", 0.2)):
        expected = mir_eval.transcription_velocity.precision_recall_f1_overlap(
            *as_arrays(ref), np.array([n[3] for n in ref]),
            *as_arrays(est), np.array([n[3] for n in est]),
            offset_ratio=offset_ratio,
        )[:3]
        assert scores_of(metrics, prefix) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("granularity", ["flat", "midi_class", "full"])
def test_multi_instrument_scores_match_mir_eval(clip, granularity):
    _, estimate, reference, metrics = clip
    expected = program_aware_scores(reference, estimate, PROGRAM_MAPS[granularity])
    assert scores_of(metrics, f"program_{granularity}") == pytest.approx(expected, abs=1e-12)
    expected_nondrum = program_aware_scores(
        reference, estimate, PROGRAM_MAPS[granularity], drums=False
    )
    assert scores_of(metrics, f"nondrum_program_{granularity}") == pytest.approx(
        expected_nondrum, abs=1e-12
    )


def test_drum_onset_scores_match_mir_eval(clip):
    _, estimate, reference, metrics = clip
    drums = lambda notes: [n for n in notes if n[5]]  # noqa: E731
    expected = mir_eval_scores(drums(reference), drums(estimate), offset_ratio=None)
    assert scores_of(metrics, "drum_onset") == pytest.approx(expected, abs=1e-12)


def test_frame_scores_match_a_direct_piano_roll(clip, reference_dir):
    name, estimate, _, metrics = clip
    fps = 62.5
    midi = pretty_midi.PrettyMIDI(str(reference_dir / f"{name}.mid"))
    midi.instruments = [inst for inst in midi.instruments if not inst.is_drum]
    reference_roll = midi.get_piano_roll(fs=fps)
    estimate_roll = np.zeros((128, 1 + int(fps * max(n[2] for n in estimate) + 4)))
    for pitch, start, end, velocity, _, is_drum in estimate:
        if not is_drum:
            end = max(end, start + 0.05)
            estimate_roll[pitch, int(start * fps) : int(end * fps)] += velocity
    frames = max(reference_roll.shape[1], estimate_roll.shape[1])
    ref_on = np.pad(reference_roll, [(0, 0), (0, frames - reference_roll.shape[1])]) > 30
    est_on = np.pad(estimate_roll, [(0, 0), (0, frames - estimate_roll.shape[1])]) > 0
    true_positives = np.sum(ref_on & est_on)
    precision, recall = true_positives / est_on.sum(), true_positives / ref_on.sum()
    expected = (precision, recall, 2 * precision * recall / (precision + recall))
    assert scores_of(metrics, "frame") == pytest.approx(expected, abs=1e-12)


# ---- the original MT3's published scores on these clips ------------------------------------


def test_original_mt3_piano_chorale_scores(score_clip):
    metrics = score_clip("piano_chorale")[3]
    assert metrics["onset_f1"] == pytest.approx(0.958, abs=5e-4)
    assert metrics["onset_offset_f1"] == pytest.approx(0.865, abs=5e-4)


def test_original_mt3_multi_band_scores(score_clip, reference_dir, make_sequence):
    _, estimate, _, metrics = score_clip("multi_band")
    assert metrics["drum_onset_f1"] == pytest.approx(0.922, abs=5e-4)
    assert metrics["onset_f1"] == pytest.approx(0.661, abs=5e-4)  # instruments ignored
    # The "program-aware onset F1" quoted with the reference outputs is non-drum notes matched
    # per program on onsets only. (MT3's own multi-instrument metric, `program_full`, differs:
    # offsets count for non-drum notes and drums are included.)
    program_onset = multi_instrument_counts(
        make_sequence(estimate), load_midi(reference_dir / "multi_band.mid"), "full",
        offset_ratio=None,
    ).nondrum
    assert program_onset.f1 == pytest.approx(0.623, abs=5e-4)


# ---- API behaviour ---------------------------------------------------------------------------


def test_keys_are_stable_and_values_are_floats_in_range(clip):
    metrics = clip[3]
    expected = [f"{name}_{part}" for name in SCORE_NAMES for part in ("precision", "recall", "f1")]
    assert list(metrics) == expected
    assert all(type(value) is float and 0.0 <= value <= 1.0 for value in metrics.values())


def test_empty_estimate_or_reference_scores_zero_without_warnings(make_sequence):
    notes = make_sequence([(60, 0, 1, 100, 0), (36, 0, 0.1, 100, 0, True)])
    empty = make_sequence([])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for estimate, reference in ((empty, notes), (notes, empty), (empty, empty)):
            assert set(transcription_metrics(estimate, reference).values()) == {0.0}


def test_perfect_estimate_scores_one(make_sequence):
    notes = make_sequence(
        [(60, 0, 1, 80, 0), (64, 0.5, 1, 90, 33), (36, 0, 0.1, 100, 0, True)]
    )
    assert set(transcription_metrics(notes, notes).values()) == {1.0}


def test_apply_sustain_lengthens_reference_notes(make_sequence):
    reference = make_sequence([(60, 0.0, 0.5, 100)])
    reference.control_changes.add(time=0.0, control_number=64, control_value=127)
    reference.control_changes.add(time=2.0, control_number=64, control_value=0)
    estimate = make_sequence([(60, 0.0, 2.0, 100)])
    assert transcription_metrics(estimate, reference)["onset_offset_f1"] == 0.0
    assert transcription_metrics(estimate, reference, apply_sustain=True)["onset_offset_f1"] == 1.0
    assert reference.notes[0].end_time == 0.5  # the caller's reference is not modified


def test_non_sequences_are_rejected(make_sequence):
    with pytest.raises(KerasMT3Error, match="estimate must be a note_seq NoteSequence"):
        transcription_metrics("song.mid", make_sequence([]))


def test_twenty_thousand_notes_score_in_bounded_memory(make_sequence, make_played_notes):
    # Scoring compared every reference note with every estimated one: over 12 GB here.
    reference, estimate = make_played_notes(3, 20000, 1200.0)
    reference, estimate = make_sequence(reference), make_sequence(estimate)
    tracemalloc.start()
    try:
        metrics = transcription_metrics(estimate, reference)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 0.5 < metrics["onset_f1"] < 1.0 and 0.5 < metrics["program_full_f1"] < 1.0, metrics
    assert peak < 1024 * 2**20, f"peak {peak / 2**20:.0f} MB"
