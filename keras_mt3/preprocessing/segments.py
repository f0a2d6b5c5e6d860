"""Cut 16 kHz audio into model-sized segments exactly as MT3's inference chain does.

The original pads the audio with ``128 - len % 128`` zeros (a whole extra frame when the length is
already a multiple of 128), views it as 128-sample frames and splits those into consecutive runs of
`frames_per_segment` frames; the last run is shorter. Each segment's spectrogram is computed from
its own samples only (see `keras_mt3.layers.LogMelSpectrogram`). The whole chain is described
in docs/mt3_details.md#segments.
"""

import math
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import numpy as np

from keras_mt3.constants import (
    DECODE_TIME_STEP,
    DEFAULT_FRAMES_PER_SEGMENT,
    FRAMES_PER_SECOND,
    HOP_LENGTH,
)


class AudioSegments(NamedTuple):
    """Segments of one clip.

    samples: [n, frames_per_segment * 128] float32, zero-padded past each segment's frames.
    num_frames: [n] int32, frames of real (padded-to-128) audio in each segment.
    start_times: [n] float64, time of each segment's first frame in seconds (multiples of
        frames_per_segment / 125, e.g. 2.048 s); see `decode_start_times` for the decoder's.
    """

    samples: np.ndarray
    num_frames: np.ndarray
    start_times: np.ndarray


def count_frames(num_samples: int) -> int:
    """Frames MT3 makes of `num_samples` samples (always at least one padded frame more)."""
    return num_samples // HOP_LENGTH + 1


def count_segments(num_samples: int, frames_per_segment: int = DEFAULT_FRAMES_PER_SEGMENT) -> int:
    """How many segments `audio_to_segments` returns for `num_samples` samples."""
    return math.ceil(count_frames(num_samples) / frames_per_segment)


def audio_to_segments(
    audio: np.ndarray, frames_per_segment: int = DEFAULT_FRAMES_PER_SEGMENT
) -> AudioSegments:
    """Split a 1-D 16 kHz float32 clip into `AudioSegments`."""
    _check_frames_per_segment(frames_per_segment)
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 1:
        raise ValueError(f"audio must be a 1-D array of samples, got shape {audio.shape}")
    return _segments_from(audio, first_index=0, frames_per_segment=frames_per_segment, final=True)


def batched_segments(
    blocks: Iterable[np.ndarray],
    frames_per_segment: int,
    decode_batch_size: int,
) -> Iterator[AudioSegments]:
    """Yield `AudioSegments` batches of at most `decode_batch_size` segments from audio blocks.

    `blocks` is any iterable of 1-D 16 kHz float32 arrays (such as `stream_audio(...)`); only
    about one batch plus one block is held at a time. Concatenated, the batches equal
    `audio_to_segments(np.concatenate(blocks), frames_per_segment)`.
    """
    _check_frames_per_segment(frames_per_segment)
    if decode_batch_size < 1:
        raise ValueError(f"decode_batch_size must be >= 1, got {decode_batch_size}")
    batch_samples = decode_batch_size * frames_per_segment * HOP_LENGTH
    pending = []
    pending_length = 0
    next_index = 0
    for block in blocks:
        block = np.asarray(block, np.float32)
        if block.ndim != 1:
            raise ValueError(f"audio blocks must be 1-D, got shape {block.shape}")
        pending.append(block)
        pending_length += len(block)
        # Emit only when more audio follows the batch: the end-of-clip padding depends on
        # what is left over, so the final batch waits for the end of the stream.
        while pending_length > batch_samples:
            buffer = np.concatenate(pending)
            batch = _segments_from(buffer[:batch_samples], next_index, frames_per_segment, False)
            yield batch
            next_index += decode_batch_size
            pending, pending_length = [buffer[batch_samples:]], len(buffer) - batch_samples
    remainder = np.concatenate(pending) if pending else np.zeros(0, np.float32)
    final = _segments_from(remainder, next_index, frames_per_segment, final=True)
    for start in range(0, len(final.num_frames), decode_batch_size):
        yield AudioSegments(*(field[start : start + decode_batch_size] for field in final))


def decode_start_times(start_times) -> np.ndarray:
    """Segment start times as the MT3 decoder uses them: rounded down to 10 ms.

    This is the original's float64 expression ``t - t % 0.01`` verbatim, so results are
    bit-identical to it (2.04, 4.09, 6.140000000000001, ...). Its float rounding puts a few exact
    multiples of 10 ms one step low (30.72 s becomes 30.71 s); keeping that reproduces the
    original's note times.
    """
    start_times = np.asarray(start_times, np.float64)
    return start_times - np.mod(start_times, DECODE_TIME_STEP)


def _segments_from(audio, first_index, frames_per_segment, final):
    """Segments of `audio`, numbered from `first_index`; `final` adds MT3's end padding."""
    num_frames_total = count_frames(len(audio)) if final else len(audio) // HOP_LENGTH
    segment_samples = frames_per_segment * HOP_LENGTH
    num_segments = math.ceil(num_frames_total / frames_per_segment)
    samples = np.zeros((num_segments, segment_samples), np.float32)
    samples.reshape(-1)[: len(audio)] = audio
    first_frames = np.arange(num_segments) * frames_per_segment
    num_frames = np.minimum(num_frames_total - first_frames, frames_per_segment).astype(np.int32)
    # Same arithmetic as the original's `np.arange(n_frames) / 125` at each segment's first frame.
    start_times = (first_frames + first_index * frames_per_segment) / FRAMES_PER_SECOND
    return AudioSegments(samples, num_frames, start_times.astype(np.float64))


def _check_frames_per_segment(frames_per_segment):
    is_integer = isinstance(frames_per_segment, (int, np.integer))
    if isinstance(frames_per_segment, bool) or not is_integer:
        raise TypeError(f"frames_per_segment must be an int, got {frames_per_segment!r}")
    if frames_per_segment < 1:
        raise ValueError(f"frames_per_segment must be >= 1, got {frames_per_segment}")
