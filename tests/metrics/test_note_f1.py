"""NoteF1 (a Keras metric): runs under every backend."""

import keras
import numpy as np
import pytest

from keras_mt3.errors import KerasMT3Error
from keras_mt3.metrics import MatchCounts, NoteF1, transcription_metrics


@pytest.fixture(scope="module")
def pairs(make_sequence):
    first_reference = make_sequence([(60, 0, 1), (62, 1, 2), (36, 0, 0.1, 100, 0, True)])
    first_estimate = make_sequence([(60, 0, 1.5), (62, 1.01, 2), (70, 3, 4)])
    second_reference = make_sequence([(40, 0, 2, 100, 33)])
    second_estimate = make_sequence([(40, 0.02, 2, 127, 32), (41, 0, 2, 127, 33)])
    return [(first_estimate, first_reference), (second_estimate, second_reference)]


def test_pools_counts_over_sequences(pairs):
    metric = NoteF1()
    counts = [metric.update_state_from_sequences(est, ref) for est, ref in pairs]
    # Drums left out, instruments ignored, onsets only.
    assert counts == [MatchCounts(2, 3, 2), MatchCounts(1, 2, 1)]
    assert metric.counts() == MatchCounts(3, 5, 3)
    assert float(keras.ops.convert_to_numpy(metric.result())) == pytest.approx(
        MatchCounts(3, 5, 3).f1, rel=1e-6
    )


def test_single_pair_agrees_with_transcription_metrics(pairs):
    estimate, reference = pairs[0]
    metrics = transcription_metrics(estimate, reference)
    for kwargs, key in [
        ({}, "onset_f1"),
        ({"offsets": True}, "onset_offset_f1"),
        ({"offsets": True, "granularity": "full"}, "program_full_f1"),
        ({"offsets": True, "granularity": "flat"}, "program_flat_f1"),
    ]:
        metric = NoteF1(**kwargs)
        metric.update_state_from_sequences(estimate, reference)
        assert float(keras.ops.convert_to_numpy(metric.result())) == pytest.approx(
            metrics[key], rel=1e-6
        ), kwargs


def test_reset_and_empty_state_score_zero(pairs):
    metric = NoteF1()
    assert float(keras.ops.convert_to_numpy(metric.result())) == 0.0
    metric.update_state_from_sequences(*pairs[0])
    metric.reset_state()
    assert metric.counts() == MatchCounts()
    assert float(keras.ops.convert_to_numpy(metric.result())) == 0.0


def test_tensor_updates_are_refused():
    with pytest.raises(KerasMT3Error, match="update_state_from_sequences"):
        NoteF1().update_state(np.zeros(3), np.zeros(3))


def test_config_round_trip():
    metric = NoteF1(offsets=True, granularity="midi_class", name="class_f1")
    restored = NoteF1.from_config(metric.get_config())
    assert (restored.offsets, restored.granularity) == (True, "midi_class")
    assert restored.name == "class_f1"


def test_unknown_granularity_fails_at_construction():
    with pytest.raises(KerasMT3Error, match="unknown"):
        NoteF1(granularity="per_note")
