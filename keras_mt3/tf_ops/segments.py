"""TensorFlow twin of `keras_mt3.preprocessing.segments`: MT3's audio framing in graph ops.

It frames a batch of padded waveforms inside a SavedModel the way the NumPy module frames one
clip (docs/mt3_details.md#segments); tests/tf_ops/test_tf_segments.py checks that they agree bit
for bit. Each clip is padded
with `128 - len % 128` zeros (a whole extra frame when the length is already a multiple of
128), cut into 128-sample frames, and the frames into consecutive segments of
`frames_per_segment` (the last one shorter). A segment's decoding start time is its first
frame's time rounded down to 10 ms with the original's float64 expression `t - t % 0.01`.

Segments of all clips are returned back to back (clip 0's first), so the model can decode
them in shared batches. An empty clip (length 0) has no segments, hence no notes.
"""

from typing import NamedTuple

import tensorflow as tf

from keras_mt3.constants import DECODE_TIME_STEP, FRAMES_PER_SECOND, HOP_LENGTH
from keras_mt3.tf_ops.exact_math import exact_divide


class BatchSegments(NamedTuple):
    """samples: float32 [n, frames_per_segment * 128], zero past each segment's audio.
    num_frames: int32 [n], frames of (padded) audio in each segment.
    start_times: float64 [n], decoding start times (rounded down to 10 ms).
    example_ids: int32 [n], the clip each segment comes from.
    """

    samples: tf.Tensor
    num_frames: tf.Tensor
    start_times: tf.Tensor
    example_ids: tf.Tensor


def count_segments(lengths, frames_per_segment: int) -> tf.Tensor:
    """Segments per clip for int32 `lengths` (samples); 0 for an empty clip."""
    num_frames = lengths // HOP_LENGTH + 1
    return tf.where(lengths > 0, (num_frames + frames_per_segment - 1) // frames_per_segment, 0)


def waveform_to_segments(waveform, lengths, frames_per_segment: int) -> BatchSegments:
    """Cuts `waveform` float32 [batch, samples] (clip i is `waveform[i, :lengths[i]]`) into
    `BatchSegments`. Samples past a clip's length are ignored, whatever they hold."""
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    lengths = tf.convert_to_tensor(lengths, tf.int32)
    batch_size = tf.shape(waveform)[0]
    segment_samples = frames_per_segment * HOP_LENGTH

    segments_per_clip = count_segments(lengths, frames_per_segment)
    example_ids = tf.repeat(tf.range(batch_size), segments_per_clip)
    first_segment = tf.cumsum(segments_per_clip, exclusive=True)
    index_in_clip = tf.range(tf.size(example_ids)) - tf.gather(first_segment, example_ids)

    # Lay every clip out as [max segments, segment samples], zeros after its end.
    max_segments = tf.reduce_max(tf.concat([segments_per_clip, [0]], axis=0))
    width = max_segments * segment_samples
    clipped = waveform[:, :width]
    padded = tf.pad(clipped, [[0, 0], [0, width - tf.shape(clipped)[1]]])
    inside = tf.range(width)[None, :] < lengths[:, None]
    padded = tf.where(inside, padded, 0.0)
    blocks = tf.reshape(padded, [batch_size, max_segments, segment_samples])
    samples = tf.gather_nd(blocks, tf.stack([example_ids, index_in_clip], axis=1))

    first_frame = index_in_clip * frames_per_segment
    clip_frames = tf.gather(lengths // HOP_LENGTH + 1, example_ids)
    num_frames = tf.minimum(clip_frames - first_frame, frames_per_segment)
    frame_times = exact_divide(tf.cast(first_frame, tf.float64), FRAMES_PER_SECOND)
    start_times = frame_times - tf.math.floormod(frame_times, DECODE_TIME_STEP)
    return BatchSegments(samples, num_frames, start_times, example_ids)
