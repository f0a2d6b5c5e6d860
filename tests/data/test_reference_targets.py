"""The pipeline on the reference clips: inputs equal the original MT3's, targets decode back
to the ground-truth notes, and random windows carry the right tie sections."""

import numpy as np
import pytest

from keras_mt3.codec.detokenize import tokens_to_note_sequence
from keras_mt3.data.loading import load_pair
from keras_mt3.data.pairs import TranscriptionPair
from keras_mt3.data.pipeline import TrainingDataConfig, evaluation_dataset, window_dataset
from keras_mt3.data.windows import window_start_time

CLIPS = ("piano_chorale", "multi_band")
TIE = 1134


def reference_pair(reference_dir, clip):
    return TranscriptionPair(clip, reference_dir / f"{clip}.wav", reference_dir / f"{clip}.mid")


def quantized(sequence):
    """Notes as MT3's codec keeps them: 10 ms steps, drums without offsets."""
    return sorted(
        (
            note.is_drum,
            0 if note.is_drum else note.program,
            note.pitch,
            round(note.start_time * 100),
            None if note.is_drum else round(note.end_time * 100),
        )
        for note in sequence.notes
    )


def tie_section_notes(tokens):
    """(program, pitch) of every note a window's tie section names."""
    named, program = set(), None
    for token in tokens[: tokens.index(TIE)]:
        if 1135 <= token < 1263:
            program = token - 1135
        else:
            named.add((program, token - 1004))
    return named


def last_event_step(sequence):
    return max(
        round(time * 100)
        for note in sequence.notes
        for time in ((note.start_time,) if note.is_drum else (note.start_time, note.end_time))
    )


def sounding_before(sequence, step):
    """The codec's state before the events of `step`: non-drum notes sounding then."""
    return {
        (note.program, note.pitch)
        for note in sequence.notes
        if not note.is_drum and round(note.start_time * 100) < step <= round(note.end_time * 100)
    }


def window_step(window):
    return round(window_start_time(int(window["start_frame"])) * 100)


@pytest.mark.backend_independent
@pytest.mark.parametrize("clip", CLIPS)
def test_consecutive_window_targets_decode_to_the_ground_truth(reference_dir, clip):
    pair = reference_pair(reference_dir, clip)
    config = TrainingDataConfig(target_length=1024, batch_size=4)
    windows = list(window_dataset([pair], config, windows="consecutive").as_numpy_iterator())
    result = tokens_to_note_sequence(
        [window["targets"] for window in windows],
        [window_start_time(int(window["start_frame"])) for window in windows],
        "mt3",
    )
    truth = load_pair(pair).note_sequence
    assert len(truth.notes) > 100
    assert quantized(result.note_sequence) == quantized(truth)
    # As in MT3, windows starting after the last event's step still name the notes that ended
    # at it; the decoder rejects each such name as one invalid event and nothing else.
    last_step = last_event_step(truth)
    stale_names = 0
    for window in windows:
        if window_step(window) > last_step:
            named = tie_section_notes(window["targets"].tolist())
            assert named == sounding_before(truth, last_step)
            stale_names += len(named)
    assert result.num_invalid_events == stale_names and result.num_dropped_events == 0


@pytest.mark.backend_independent
@pytest.mark.parametrize("clip", CLIPS)
def test_pipeline_inputs_equal_the_original_mt3_encoder_inputs(reference_dir, clip):
    original = np.load(reference_dir / f"{clip}.inputs.npz")["encoder_input_tokens"]
    pair = reference_pair(reference_dir, clip)
    config = TrainingDataConfig(target_length=1024, batch_size=4)
    inputs = np.concatenate(
        [x["encoder_inputs"] for x, _ in evaluation_dataset([pair], config).as_numpy_iterator()]
    )
    assert inputs.shape == original.shape
    difference = np.abs(inputs - original)
    # The reference README's tolerance for an independent float32 frontend.
    assert difference.max() < 5e-3 and difference.mean() < 1e-4


@pytest.mark.backend_independent
@pytest.mark.parametrize("clip", CLIPS)
def test_random_windows_start_with_the_notes_sounding_at_their_start(reference_dir, clip):
    pair = reference_pair(reference_dir, clip)
    truth = load_pair(pair).note_sequence
    config = TrainingDataConfig(target_length=1024, seed=4)
    checked = 0
    last_step = last_event_step(truth)
    for window in window_dataset([pair], config).take(30).as_numpy_iterator():
        # The codec's state before the events of the window's first step (MT3 has no state
        # after the last event's step and repeats the one before it).
        sounding = sounding_before(truth, min(window_step(window), last_step))
        assert tie_section_notes(window["targets"].tolist()) == sounding, window["start_frame"]
        checked += bool(sounding)
    assert checked >= 10
