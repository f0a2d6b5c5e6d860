import collections

import numpy as np
import pytest

from data_helpers import write_pair
from helpers import note_sequence
from keras_mt3.codec.detokenize import tokens_to_note_sequence
from keras_mt3.codec.vocabulary import MT3_VOCABULARY
from keras_mt3.data.clip_store import ClipStore
from keras_mt3.data.pairs import TranscriptionPair
from keras_mt3.data.pipeline import (
    TrainingDataConfig,
    evaluation_dataset,
    training_dataset,
    window_dataset,
)
from keras_mt3.data.synth import render_note_sequence
from keras_mt3.data.synthetic import synthetic_pairs
from keras_mt3.data.window_examples import window_example
from keras_mt3.data.windows import window_start_time
from keras_mt3.errors import KerasMT3Error
from keras_mt3.midi_io import save_midi

pytestmark = pytest.mark.backend_independent

TIE = 1134  # model id of the tie token (mt3)


def pair_of(notes, seconds, name="clip", dataset="toy"):
    sequence = note_sequence(notes)
    audio = render_note_sequence(sequence, duration=seconds)
    return TranscriptionPair(name, audio, sequence, dataset=dataset, sample_rate=16000)


def test_batches_have_model_shapes_and_decoder_inputs_are_targets_shifted_right():
    pairs = synthetic_pairs(3, 3.0, seed=0, programs=(0, 33))
    config = TrainingDataConfig(target_length=96, batch_size=3, seed=1)
    x, y = next(iter(training_dataset(pairs, config)))
    assert x["encoder_inputs"].shape == (3, 256, 512) and x["encoder_inputs"].dtype == "float32"
    assert x["decoder_token_ids"].shape == (3, 96) and x["decoder_token_ids"].dtype == "int32"
    assert y.shape == (3, 96) and y.dtype == "int32"
    decoder, targets = x["decoder_token_ids"].numpy(), y.numpy()
    np.testing.assert_array_equal(decoder[:, 0], 0)
    np.testing.assert_array_equal(decoder[:, 1:], targets[:, :-1])
    for row in targets:  # a tie section (programs and pitches, then tie), ..., EOS, padding
        length = int((row > 0).sum())
        tie_at = row.tolist().index(TIE)
        assert all(1004 <= token < 1263 for token in row[:tie_at])
        assert row[length - 1] == 1 and not row[length:].any()


def test_window_targets_decode_to_the_notes_inside_the_window():
    notes = [(60, 0.30, 0.80), (64, 1.00, 1.40, 100, 33), (38, 1.2, 1.25, 100, 0, True)]
    pair = pair_of(notes, 2.0)  # 2.0 s -> 251 frames
    config = TrainingDataConfig(window_frames=64, target_length=128, seed=3)
    seen = 0
    for window in window_dataset([pair], config).take(40).as_numpy_iterator():
        start, end = int(window["start_frame"]), int(window["start_frame"] + window["num_frames"])
        decoded = tokens_to_note_sequence(
            [window["targets"]], [window_start_time(start)], "mt3"
        ).note_sequence
        onsets = sorted((n.pitch, round(n.start_time * 100), n.is_drum) for n in decoded.notes)
        # A window holds the events of the 10 ms steps from its first frame's step up to (not
        # including) the step of the frame after it; the clip's last window holds the rest.
        first_step = round(window_start_time(start) * 100)
        end_step = round(window_start_time(end) * 100) if end < 251 else 10**9
        expected = sorted(
            (pitch, round(onset * 100), rest[2] if len(rest) > 2 else False)
            for pitch, onset, _, *rest in notes
            if first_step <= round(onset * 100) < end_step
        )
        # Notes sounding at the window start are only named in its tie section: decoded
        # alone, they are not notes of this window.
        assert onsets == expected, (start, end)
        seen += bool(expected)
    assert seen > 5


def test_mid_note_window_starts_with_a_tie_section_naming_the_sounding_notes():
    # Piano 60 and bass 40 sound across frame 100 (0.8 s); 67 has ended, 72 starts later.
    notes = [(60, 0.2, 1.5), (40, 0.5, 1.2, 100, 33), (67, 0.1, 0.4), (72, 1.0, 1.3)]
    pair = pair_of(notes, 2.0)
    store = ClipStore([pair], "mt3")
    example = window_example(store.get(0), 100, 164, 64, 64)
    targets = example.targets.tolist()
    tie_section = targets[: targets.index(TIE)]
    # program 0, pitch 60, program 33, pitch 40 (model ids: program 1135 + p, pitch 1004 + p)
    assert tie_section == [1135, 1004 + 60, 1135 + 33, 1004 + 40]
    # Decoded after the window before it, the tied notes continue instead of being ended at
    # the window boundary (0.8 s).
    previous = window_example(store.get(0), 0, 100, 100, 64)
    decoded = tokens_to_note_sequence(
        [previous.targets, example.targets], [0.0, window_start_time(100)], "mt3"
    ).note_sequence
    spans = {n.pitch: (round(n.start_time, 2), round(n.end_time, 2)) for n in decoded.notes}
    assert spans[40] == (0.5, 1.2) and spans[67] == (0.1, 0.4) and spans[72] == (1.0, 1.3)
    assert spans[60][0] == 0.2 and spans[60][1] >= 1.3  # still sounding when the window ends


def test_program_granularities_map_the_program_tokens():
    pair = pair_of([(60, 0.1, 0.5, 100, 30), (62, 0.2, 0.6, 100, 41)], 1.0)

    def program_tokens(granularity):
        config = TrainingDataConfig(
            window_frames=128, target_length=64, program_granularity=granularity
        )
        targets = next(evaluation_dataset([pair], config).as_numpy_iterator())[1][0]
        return [int(t) - 1135 for t in targets if 1135 <= t < 1135 + 128]

    # Onsets, then offsets: each note's program is named again before its offset.
    assert program_tokens("full") == [30, 41, 30, 41]
    assert program_tokens("midi_class") == [24, 40, 24, 40]
    assert program_tokens("flat") == []
    with pytest.raises(KerasMT3Error, match="program_granularity"):
        TrainingDataConfig(program_granularity="coarse")


def test_consecutive_windows_cover_each_clip_in_order_and_keep_the_last_partial_batch():
    pairs = [pair_of([(60, 0.1, 0.5)], 1.0, name=f"c{i}") for i in range(2)]
    config = TrainingDataConfig(window_frames=64, target_length=32, batch_size=3)
    windows = list(window_dataset(pairs, config, windows="consecutive").as_numpy_iterator())
    # 1.0 s = 16000 samples -> 126 frames -> windows of 64 and 62 frames, per clip.
    found = [(int(w["pair_index"]), int(w["start_frame"]), int(w["num_frames"])) for w in windows]
    assert found == [(0, 0, 64), (0, 64, 62), (1, 0, 64), (1, 64, 62)]
    batch_sizes = [int(y.shape[0]) for _, y in evaluation_dataset(pairs, config)]
    assert batch_sizes == [3, 1]
    # Rows past a short window's frames are 0.0, as MT3 pads after the log.
    x, _ = next(iter(evaluation_dataset(pairs, config)))
    assert not np.any(x["encoder_inputs"].numpy()[1, 62:])


def test_long_targets_are_cut_to_the_target_length():
    notes = [(48 + i % 30, 0.02 * i + 0.01, 0.02 * i + 0.05) for i in range(40)]
    config = TrainingDataConfig(window_frames=128, target_length=16)
    targets = next(evaluation_dataset([pair_of(notes, 1.0)], config).as_numpy_iterator())[1][0]
    assert targets.shape == (16,) and np.all(targets > 1)  # full, no EOS, no padding


def test_a_seed_makes_the_stream_reproducible():
    pairs = synthetic_pairs(4, 2.0, seed=5)
    config = TrainingDataConfig(window_frames=64, target_length=48, batch_size=2, seed=11)

    def stream(seed):
        config_with_seed = TrainingDataConfig(**{**config.__dict__, "seed": seed})
        windows = window_dataset(pairs, config_with_seed).take(12).as_numpy_iterator()
        return [window["start_frame"] for window in windows]

    assert stream(11) == stream(11)
    assert stream(11) != stream(12)


def test_a_seeded_stream_is_the_same_on_every_iteration_and_can_start_later():
    # Keras reads a batch to build the model, then trains from a fresh iterator; a resumed
    # run starts at the batch it stopped at. Both need the stream to depend on the seed alone.
    sources = {"a": synthetic_pairs(3, 1.0, seed=5), "b": synthetic_pairs(2, 1.0, seed=6)}
    config = TrainingDataConfig(window_frames=32, target_length=24, batch_size=2, seed=4)

    def targets(dataset, count):
        return [y for _, y in dataset.take(count).as_numpy_iterator()]

    dataset = training_dataset(sources, config)
    first = targets(dataset, 1)
    again = targets(dataset, 8)  # more than one pass over the 5 clips
    np.testing.assert_array_equal(again[0], first[0])
    later = targets(training_dataset(sources, config, start_batch=5), 3)
    np.testing.assert_array_equal(np.stack(later), np.stack(again[5:8]))
    assert not np.array_equal(again[5], again[6])


def test_mixture_samples_datasets_at_temperature_rates():
    big = [pair_of([(60, 0.1, 0.3)], 0.5, name=f"big{i}", dataset="big") for i in range(100)]
    small = [pair_of([(72, 0.1, 0.3)], 0.5, name=f"small{i}", dataset="small") for i in range(1)]
    # Windows longer than the clips, so each one holds its clip's note.
    config = TrainingDataConfig(
        window_frames=64, target_length=16, batch_size=50, edge_windows=False, seed=0
    )
    dataset = training_dataset({"big": big, "small": small}, config)
    counts = collections.Counter()
    for _, targets in dataset.take(40):
        for row in targets.numpy():
            counts["small" if 1004 + 72 in row else "big"] += 1
    # rates ∝ n ** 0.3: 100 ** 0.3 = 3.98 -> the small dataset gets 1 / 4.98 = 20.1 %.
    share = counts["small"] / sum(counts.values())
    assert abs(share - 1 / (1 + 100**0.3)) < 0.04, counts


def test_the_disk_cache_serves_the_same_clips(tmp_path):
    pairs = synthetic_pairs(2, 1.0, seed=7)
    config = TrainingDataConfig(window_frames=64, target_length=48, cache=str(tmp_path))
    fresh = list(evaluation_dataset(pairs, config).as_numpy_iterator())
    assert len(list(tmp_path.glob("*.audio.npy"))) == 2
    cached = list(evaluation_dataset(pairs, config).as_numpy_iterator())
    for (x1, y1), (x2, y2) in zip(fresh, cached):
        np.testing.assert_array_equal(y1, y2)
        np.testing.assert_array_equal(x1["encoder_inputs"], x2["encoder_inputs"])
    # The cached audio is memory-mapped, not read whole.
    clip = ClipStore(pairs, "mt3", cache=tmp_path).get(0)
    assert isinstance(clip.audio, np.memmap)


def test_empty_pair_lists_are_rejected():
    with pytest.raises(KerasMT3Error, match="no training pairs"):
        window_dataset([], TrainingDataConfig())
    with pytest.raises(KerasMT3Error, match="empty"):
        training_dataset({"a": []}, TrainingDataConfig())
    assert MT3_VOCABULARY.input_frames == TrainingDataConfig().frames


def test_disk_cache_entries_follow_changes_to_the_files(tmp_path):
    audio, midi = write_pair(tmp_path / "data", "a", [(60, 0.1, 0.5)], seconds=1.0)
    pair = TranscriptionPair("a", audio, midi)
    first = ClipStore([pair], "mt3", cache=tmp_path / "cache").get(0)
    save_midi(note_sequence([(72, 0.2, 0.6), (74, 0.3, 0.7)]), midi)
    second = ClipStore([pair], "mt3", cache=tmp_path / "cache").get(0)
    assert not np.array_equal(first.encoded.events, second.encoded.events)
    assert len(list((tmp_path / "cache").glob("*.events.npz"))) == 2
