"""MT3's fixed numbers, each defined here once; see docs/mt3_details.md for where they come from.

This module sits below everything else in the package and imports nothing from it, so the codec,
the preprocessing, the layers and the TensorFlow twins (`keras_mt3.tf_ops`) can all share it.
"""

from typing import Final

# Audio frontend (docs/mt3_details.md#frontend).
SAMPLE_RATE: Final = 16000  # Hz; every waveform the model sees is mono at this rate
HOP_LENGTH: Final = 128  # samples per spectrogram frame
FRAMES_PER_SECOND: Final = SAMPLE_RATE / HOP_LENGTH  # 125.0
DEFAULT_FRAMES_PER_SEGMENT: Final = 256  # the "mt3" vocabulary's segments
SEGMENT_SECONDS: Final = DEFAULT_FRAMES_PER_SEGMENT / FRAMES_PER_SECOND  # 2.048
FFT_LENGTH: Final = 2048  # periodic Hann window length of the uncentered STFT
NUM_MEL_BINS: Final = 512  # also the encoder's input width
MEL_LOWER_EDGE_HERTZ: Final = 20.0
MEL_UPPER_EDGE_HERTZ: Final = 7600.0
LOG_FLOOR: Final = 1e-5  # what mel values <= 0 become before the natural log

# Token times are quantized to 10 ms (the codec's 100 shift steps per second).
DECODE_TIME_STEP: Final = 0.01

# Longest decoded token sequence per segment (the original decoder's length).
MAX_DECODE_LENGTH: Final = 1024

# Special model ids (docs/mt3_details.md#vocabulary).
PAD_ID: Final = 0  # also the decoder's start (BOS) token
BOS_ID: Final = PAD_ID
EOS_ID: Final = 1
UNK_ID: Final = 2

# Velocity of decoded notes until the first velocity token, and of notes read from datasets
# that record none.
DEFAULT_VELOCITY: Final = 100

# File name suffixes read as MIDI (compared lower-cased).
MIDI_EXTENSIONS: Final = (".mid", ".midi")
