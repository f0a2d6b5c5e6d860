"""One training example: the samples and fixed-length target tokens of a frame window."""

from typing import NamedTuple

import numpy as np

from keras_mt3.codec.tokenize import segment_tokens
from keras_mt3.constants import PAD_ID
from keras_mt3.data.windows import window_samples


class WindowExample(NamedTuple):
    samples: np.ndarray  # [window_frames * 128] float32
    num_frames: np.int32  # frames of audio in the window (the rest is padding)
    targets: np.ndarray  # [target_length] int32 model ids, EOS then PAD (0)
    start_frame: np.int32  # where the window starts in its clip


def pad_targets(tokens, target_length):
    """Pads model ids with PAD (0) to `target_length`; longer sequences are cut (losing EOS),
    as seqio trims MT3's targets to the decoder length."""
    padded = np.full(target_length, PAD_ID, np.int32)
    tokens = np.asarray(tokens, np.int32)[:target_length]
    padded[: len(tokens)] = tokens
    return padded


def window_example(clip, start, end, window_frames, target_length):
    """The `WindowExample` of frames `[start, end)` of a `TrainingClip`.

    The targets are the window's tokens in the clip's vocabulary: a tie section naming the notes
    sounding when it starts (with ties), the events of its time steps, EOS.
    """
    return WindowExample(
        samples=window_samples(clip.audio, start, end, window_frames),
        num_frames=np.int32(end - start),
        targets=pad_targets(segment_tokens(clip.encoded, start, end), target_length),
        start_frame=np.int32(start),
    )
