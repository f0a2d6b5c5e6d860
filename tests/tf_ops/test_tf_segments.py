"""Graph framing equals `keras_mt3.preprocessing.segments` bit for bit."""

import numpy as np
import pytest
import tensorflow as tf

from keras_mt3.constants import DEFAULT_FRAMES_PER_SEGMENT, HOP_LENGTH
from keras_mt3.preprocessing.segments import audio_to_segments, decode_start_times
from keras_mt3.tf_ops.segments import count_segments, waveform_to_segments

pytestmark = pytest.mark.backend_independent

FRAMES = DEFAULT_FRAMES_PER_SEGMENT
SEGMENT_SAMPLES = FRAMES * HOP_LENGTH

frame_batch = tf.function(
    lambda waveform, lengths: waveform_to_segments(waveform, lengths, FRAMES),
    input_signature=[tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)],
    autograph=False,
)


def padded_batch(lengths, seed=0, fill=np.nan):
    """Clips of the given lengths in one [batch, longest] array, padded with `fill`."""
    rng = np.random.RandomState(seed)
    waveform = np.full((len(lengths), max(lengths + [0]) + 77), fill, np.float32)
    for row, length in enumerate(lengths):
        waveform[row, :length] = rng.uniform(-1, 1, length)
    return waveform


@pytest.mark.parametrize(
    "lengths",
    [
        [1, 127, 128, 129],
        [SEGMENT_SAMPLES - 128, SEGMENT_SAMPLES - 129, SEGMENT_SAMPLES, SEGMENT_SAMPLES + 1],
        [336000, 16000, 2 * SEGMENT_SAMPLES - 1],  # 21 s: 2,626 frames, 11 segments
    ],
)
def test_segments_equal_the_python_framing(lengths):
    waveform = padded_batch(lengths)
    result = frame_batch(waveform, np.asarray(lengths, np.int32))
    position = 0
    for clip, length in enumerate(lengths):
        expected = audio_to_segments(waveform[clip, :length], FRAMES)
        count = len(expected.num_frames)
        rows = slice(position, position + count)
        np.testing.assert_array_equal(result.example_ids[rows], clip)
        np.testing.assert_array_equal(result.samples[rows], expected.samples)
        np.testing.assert_array_equal(result.num_frames[rows], expected.num_frames)
        np.testing.assert_array_equal(
            result.start_times[rows], decode_start_times(expected.start_times)
        )
        position += count
    assert position == result.samples.shape[0]


def test_start_times_match_the_original_rounding_far_into_long_audio():
    # 30.72 s rounds down to 30.71 s in the original's float arithmetic; the graph agrees.
    segments = np.arange(0, 20000, dtype=np.int32)
    lengths = (segments + 1) * SEGMENT_SAMPLES - 128  # one clip per segment count
    counts = count_segments(tf.constant(lengths), FRAMES).numpy()
    np.testing.assert_array_equal(counts, segments + 1)
    waveform = tf.zeros([1, SEGMENT_SAMPLES * 400])
    result = frame_batch(waveform, tf.constant([SEGMENT_SAMPLES * 400 - 1]))
    expected = decode_start_times(np.arange(400) * FRAMES / 125.0)
    np.testing.assert_array_equal(result.start_times, expected)
    assert 30.71 in result.start_times.numpy()


def test_empty_clips_have_no_segments_and_padding_is_ignored():
    waveform = padded_batch([0, 300, 0], fill=np.inf)
    result = frame_batch(waveform, tf.constant([0, 300, 0]))
    np.testing.assert_array_equal(result.example_ids, [1])
    assert np.isfinite(result.samples.numpy()).all()
    np.testing.assert_array_equal(result.samples[0, :300], waveform[1, :300])
    assert not result.samples.numpy()[0, 300:].any()


def test_an_empty_batch_gives_no_segments():
    result = frame_batch(tf.zeros([0, 0]), tf.zeros([0], tf.int32))
    assert result.samples.shape == (0, SEGMENT_SAMPLES)
    assert result.start_times.shape == (0,)
