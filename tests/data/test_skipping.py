"""Corrupt or mismatched pairs are skipped with a logged reason and counted; a run goes on."""

import logging

import numpy as np
import pytest
import tensorflow as tf

from data_helpers import write_audio, write_pair
from helpers import note_sequence
from keras_mt3.data import loading
from keras_mt3.data.clip_store import ClipStore, NoUsablePairsError
from keras_mt3.data.folder_dataset import folder_pairs
from keras_mt3.data.pairs import TranscriptionPair
from keras_mt3.data.pipeline import TrainingDataConfig, training_dataset, window_dataset
from keras_mt3.data.skip_log import SkipLog
from keras_mt3.midi_io import save_midi

pytestmark = pytest.mark.backend_independent

CONFIG = TrainingDataConfig(window_frames=32, target_length=64, batch_size=4, seed=0)


def broken_folder(root):
    """One good pair and one pair for every way a pair can be unusable."""
    write_pair(root, "good", [(60, 0.1, 0.5), (64, 0.6, 0.9)], seconds=1.0)
    write_audio(root / "missing_midi.wav", 1.0)
    save_midi(note_sequence([(60, 0.1, 0.5)]), root / "missing_audio.mid")
    write_audio(root / "too_short.wav", 1.0)
    save_midi(note_sequence([(60, 0.1, 0.5), (62, 4.0, 5.0)]), root / "too_short.mid")
    write_audio(root / "empty.wav", 1.0)
    save_midi(note_sequence([]), root / "empty.mid")
    (root / "corrupt_audio.wav").write_bytes(b"RIFF\x00\x00not really a wave file")
    save_midi(note_sequence([(60, 0.1, 0.5)]), root / "corrupt_audio.mid")
    write_audio(root / "corrupt_midi.wav", 1.0)
    (root / "corrupt_midi.mid").write_bytes(b"MThd garbage")
    return folder_pairs(root, dataset="broken")


EXPECTED_REASONS = {
    "broken/missing_midi": loading.MISSING_MIDI,
    "broken/missing_audio": loading.MISSING_AUDIO,
    "broken/too_short": loading.AUDIO_TOO_SHORT,
    "broken/empty": loading.EMPTY_MIDI,
    "broken/corrupt_audio": loading.CORRUPT_AUDIO,
    "broken/corrupt_midi": loading.CORRUPT_MIDI,
}


def test_load_pair_names_the_reason_for_each_broken_pair(tmp_path):
    pairs = {pair.name: pair for pair in broken_folder(tmp_path)}
    assert len(loading.load_pair(pairs["broken/good"]).note_sequence.notes) == 2
    for name, reason in EXPECTED_REASONS.items():
        with pytest.raises(loading.DataPairError) as caught:
            loading.load_pair(pairs[name])
        assert caught.value.reason == reason, name


def test_training_skips_and_counts_broken_pairs_and_keeps_going(tmp_path, caplog):
    pairs = broken_folder(tmp_path)
    skip_log = SkipLog()
    with caplog.at_level(logging.WARNING, logger="keras_mt3.data"):
        batches = list(training_dataset(pairs, CONFIG, skip_log=skip_log).take(6))
    assert len(batches) == 6
    for x, y in batches:
        assert x["encoder_inputs"].shape == (4, 32, 512) and y.shape == (4, 64)
    skipped = skip_log.skipped()
    assert {name: reason for name, (reason, _) in skipped.items()} == EXPECTED_REASONS
    assert skip_log.counts() == {reason: 1 for reason in EXPECTED_REASONS.values()}
    assert "6 pairs skipped" in skip_log.summary()
    # Every skipped pair was logged once, with its reason.
    messages = [record.getMessage() for record in caplog.records]
    for name, reason in EXPECTED_REASONS.items():
        assert sum(name in message and reason in message for message in messages) == 1


def test_only_good_windows_reach_the_batches(tmp_path):
    pairs = broken_folder(tmp_path)
    good_index = [pair.name for pair in pairs].index("broken/good")
    windows = list(window_dataset(pairs, CONFIG).take(10).as_numpy_iterator())
    assert {int(window["pair_index"]) for window in windows} == {good_index}


def test_unexpected_errors_in_a_reader_are_skipped_too():
    def explode():
        raise RuntimeError("reader bug")

    good = TranscriptionPair(
        "good", np.zeros(16000, np.float32), note_sequence([(60, 0.1, 0.5)]), sample_rate=16000
    )
    bad = TranscriptionPair("bad", np.zeros(16000, np.float32), explode, sample_rate=16000)
    store = ClipStore([bad, good], "mt3")
    assert store.get(0) is None and store.get(1) is not None
    assert store.skip_log.skipped()["bad"][0] == loading.UNEXPECTED_ERROR
    assert "reader bug" in store.skip_log.skipped()["bad"][1]


def test_a_dataset_with_no_usable_pair_stops_with_a_clear_error(tmp_path):
    write_audio(tmp_path / "a.wav", 1.0)
    write_audio(tmp_path / "b.wav", 1.0)
    pairs = folder_pairs(tmp_path)
    with pytest.raises(NoUsablePairsError, match="all 2 pairs"):
        store = ClipStore(pairs, "mt3")
        store.get(0)
        store.get(1)
    # Inside tf.data the error surfaces from the iterator with the same message.
    with pytest.raises(tf.errors.OpError, match="all 2 pairs of this dataset were skipped"):
        list(training_dataset(pairs, CONFIG).take(1))


def test_skips_are_remembered_in_the_disk_cache(tmp_path):
    pairs = broken_folder(tmp_path / "data")
    first = ClipStore(pairs, "mt3", cache=tmp_path / "cache")
    for index in range(len(pairs)):
        first.get(index)
    second = ClipStore(pairs, "mt3", cache=tmp_path / "cache")
    for index in range(len(pairs)):
        second.get(index)
    assert second.skip_log.counts() == first.skip_log.counts()
    assert all(details.endswith("(cached)") for _, details in second.skip_log.skipped().values())
