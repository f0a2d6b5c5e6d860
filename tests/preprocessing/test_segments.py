import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_mt3.preprocessing.audio_io import load_audio
from keras_mt3.preprocessing.segments import (
    audio_to_segments,
    batched_segments,
    count_segments,
    decode_start_times,
)

pytestmark = pytest.mark.backend_independent


def ramp(num_samples):
    """Distinct, position-revealing samples."""
    return (np.arange(num_samples, dtype=np.float32) + 1.0) / (num_samples + 1.0)


def test_chorale_length_gives_ten_full_segments_and_one_of_66():
    audio = ramp(336_000)  # 21.0 s
    segments = audio_to_segments(audio, 256)
    # 336,000 = 2,625 * 128 exactly, so the padding quirk adds a whole frame: 2,626 frames.
    assert segments.num_frames.sum() == 2626
    assert segments.num_frames.tolist() == [256] * 10 + [66]
    assert segments.samples.shape == (11, 256 * 128)
    assert segments.samples.dtype == np.float32
    assert segments.num_frames.dtype == np.int32
    assert segments.start_times.dtype == np.float64
    np.testing.assert_array_equal(segments.samples.reshape(-1)[:336_000], audio)
    assert not segments.samples.reshape(-1)[336_000:].any()
    np.testing.assert_allclose(segments.start_times, np.arange(11) * 2.048, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "num_samples, frames",
    [(1, [1]), (127, [1]), (128, [2]), (129, [2]), (255, [2]), (256, [3]),
     (256 * 128 - 1, [256]), (256 * 128, [256, 1]), (256 * 128 + 1, [256, 1])],
)
def test_padding_quirk_frame_counts(num_samples, frames):
    segments = audio_to_segments(ramp(num_samples), 256)
    assert segments.num_frames.tolist() == frames
    assert count_segments(num_samples, 256) == len(frames)


def test_other_segment_length():
    segments = audio_to_segments(ramp(100_000), 512)
    assert segments.samples.shape == (2, 512 * 128)
    assert segments.num_frames.tolist() == [512, 100_000 // 128 + 1 - 512]
    np.testing.assert_allclose(segments.start_times, [0.0, 4.096], atol=1e-12)


def test_bad_arguments():
    with pytest.raises(ValueError, match="1-D"):
        audio_to_segments(np.zeros((2, 100), np.float32))
    with pytest.raises(ValueError, match="frames_per_segment"):
        audio_to_segments(ramp(100), 0)
    with pytest.raises(TypeError, match="frames_per_segment"):
        audio_to_segments(ramp(100), 256.0)
    with pytest.raises(ValueError, match="decode_batch_size"):
        list(batched_segments([ramp(100)], 256, 0))


@pytest.mark.parametrize("name", ["piano_chorale", "multi_band"])
def test_matches_reference_framing_and_start_times(reference_dir, name):
    segments = audio_to_segments(load_audio(reference_dir / f"{name}.wav"), 256)
    reference = np.load(reference_dir / f"{name}.inputs.npz")
    np.testing.assert_array_equal(segments.num_frames, reference["num_frames"])
    decoded = decode_start_times(segments.start_times)
    # The reference stores the decoder's (rounded) start times; ours are the exact float64s.
    np.testing.assert_array_equal(decoded, reference["start_time"])
    report = json.loads((reference_dir / f"{name}.json").read_text())
    assert decoded.tolist() == [segment["start_time"] for segment in report["segments"]]
    assert segments.num_frames.tolist() == [s["num_input_frames"] for s in report["segments"]]


def test_decode_start_times_round_down_to_10ms():
    starts = audio_to_segments(ramp(256 * 128 * 20), 256).start_times
    decoded = decode_start_times(starts)
    np.testing.assert_allclose(
        decoded[:7], [0.0, 2.04, 4.09, 6.14, 8.19, 10.24, 12.28], rtol=0, atol=1e-9
    )
    # Never later than the true start, never more than one 10 ms step earlier.
    assert np.all(decoded <= starts) and np.all(starts - decoded < 0.01 + 1e-9)
    # The original's float expression puts 30.72 s (segment 15) one step low; kept on purpose.
    assert decoded[15] == pytest.approx(30.71, abs=1e-9)


def chop(audio, sizes):
    blocks, start = [], 0
    for size in sizes:
        blocks.append(audio[start : start + size])
        start += size
    blocks.append(audio[start:])
    return blocks


def assert_batches_equal_one_shot(audio, blocks, frames_per_segment, batch_size):
    expected = audio_to_segments(audio, frames_per_segment)
    batches = list(batched_segments(iter(blocks), frames_per_segment, batch_size))
    assert all(0 < len(batch.num_frames) <= batch_size for batch in batches)
    for field, expected_field in zip(zip(*batches), expected):
        np.testing.assert_array_equal(np.concatenate(field), expected_field)


def test_batched_segments_equal_one_shot_on_an_awkward_length():
    # 1,234,567 samples is a multiple of neither 128 nor the segment nor the blocks.
    audio = np.random.default_rng(0).standard_normal(1_234_567).astype(np.float32)
    blocks = chop(audio, [1, 99_999, 333_333, 7, 250_000, 262_144])
    assert_batches_equal_one_shot(audio, blocks, 256, 3)


@settings(max_examples=40, deadline=None)
@given(
    num_samples=st.integers(0, 200_000),
    cuts=st.lists(st.integers(0, 70_000), max_size=6),
    frames_per_segment=st.sampled_from([4, 32, 256]),
    batch_size=st.integers(1, 5),
)
def test_batched_segments_equal_one_shot_for_any_split(
    num_samples, cuts, frames_per_segment, batch_size
):
    audio = ramp(num_samples)
    assert_batches_equal_one_shot(audio, chop(audio, cuts), frames_per_segment, batch_size)
