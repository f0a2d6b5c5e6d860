"""Frame windows of a clip: where training crops start and what samples they hold.

A clip of n samples has `count_frames(n)` frames of 128 samples (MT3 pads the audio first, see
`keras_mt3.preprocessing.segments`), frame i starting at i / 125 s. A window is a frame range
`[start, end)`; its spectrogram is computed from its own samples only, exactly like an
inference segment, and frames past `end` are padding.
"""

import numpy as np

from keras_mt3.preprocessing.segments import FRAMES_PER_SECOND, HOP_LENGTH, count_frames


def frame_times(num_frames):
    """Start time in seconds of each of `num_frames` frames (the codec's frame grid)."""
    return np.arange(num_frames) / FRAMES_PER_SECOND


def clip_frame_count(audio):
    return count_frames(len(audio))


def random_window(num_frames, window_frames, rng, edge_windows=True):
    """A random `(start, end)` frame window, at any frame offset.

    With `edge_windows` (MT3's `select_random_chunk(uniform_random_start=True)`), the start is
    drawn from `[-(window_frames - 1), num_frames)` and the window is then clipped to the clip,
    so the clip's first and last frames are as likely to be seen as any other and shorter
    windows at the edges train the model on partial segments like the last one at inference.
    Without it, only full windows inside the clip are drawn (or the whole clip if shorter).
    """
    if num_frames < 1 or window_frames < 1:
        raise ValueError("num_frames and window_frames must be positive")
    if edge_windows:
        start = int(rng.integers(-(window_frames - 1), num_frames))
    else:
        start = int(rng.integers(0, max(1, num_frames - window_frames + 1)))
    return max(start, 0), min(start + window_frames, num_frames)


def consecutive_windows(num_frames, window_frames):
    """Back-to-back windows covering the clip, as inference segments it."""
    return [
        (start, min(start + window_frames, num_frames))
        for start in range(0, num_frames, window_frames)
    ]


def window_samples(audio, start, end, window_frames):
    """`[window_frames * 128]` float32: the samples of frames `[start, end)`, zeros after."""
    if not 0 <= start < end or end - start > window_frames:
        raise ValueError(f"bad window [{start}, {end}) for {window_frames} frames")
    samples = np.zeros(window_frames * HOP_LENGTH, np.float32)
    chunk = audio[start * HOP_LENGTH : end * HOP_LENGTH]
    samples[: len(chunk)] = chunk
    return samples


def window_start_time(start_frame, steps_per_second=100):
    """Time of the first step of a window's targets: its start rounded down to the step grid.

    Exact integer arithmetic, as the codec indexes frames (frame 110 = 0.88 s -> 0.88); the
    float expression MT3 uses at inference would give 0.87 for some exact multiples of 10 ms.
    """
    return (int(start_frame) * steps_per_second // int(FRAMES_PER_SECOND)) / steps_per_second
