"""MT3 vocabularies: codec layout, special ids, velocity bins and program granularities.

This module is the boundary between codec indices (what the symbolic code works with) and
model ids (what the network reads and writes): model id = codec index + NUM_SPECIAL_TOKENS.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from keras_mt3.codec.event_codec import Codec, EventRange
from keras_mt3.constants import DEFAULT_FRAMES_PER_SEGMENT, EOS_ID
from keras_mt3.errors import KerasMT3Error

NUM_SPECIAL_TOKENS = 3  # PAD_ID, EOS_ID, UNK_ID of keras_mt3.constants
NUM_EXTRA_IDS = 100  # unused ids after the regular tokens, as in T5 vocabularies
EMBEDDING_MULTIPLE = 128

# What `model_ids_to_codec_indices` puts where a model id is not a regular token.
DECODED_EOS_ID = -1
DECODED_INVALID_ID = -2

MIN_MIDI_PITCH, MAX_MIDI_PITCH = 0, 127
MIN_MIDI_PROGRAM, MAX_MIDI_PROGRAM = 0, 127
MAX_MIDI_VELOCITY = 127


def velocity_to_bin(velocity: int, num_velocity_bins: int) -> int:
    """Velocity bin of a MIDI velocity; 0 is reserved for note-off."""
    if velocity == 0:
        return 0
    return math.ceil(num_velocity_bins * velocity / MAX_MIDI_VELOCITY)


def bin_to_velocity(velocity_bin: int, num_velocity_bins: int) -> int:
    if velocity_bin == 0:
        return 0
    return int(MAX_MIDI_VELOCITY * velocity_bin / num_velocity_bins)


def num_velocity_bins_from_codec(codec: Codec) -> int:
    first, last = codec.event_type_range("velocity")
    return last - first  # the range is 0..num_velocity_bins


# ---- program granularities ------------------------------------------------------------------


def drop_programs(tokens, codec):
    """Removes every program token (codec indices in, codec indices out)."""
    tokens = np.asarray(tokens)
    first, last = codec.event_type_range("program")
    return tokens[(tokens < first) | (tokens > last)]


def programs_to_midi_classes(tokens, codec):
    """Maps each program token to the first program of its General MIDI class (8 programs)."""
    tokens = np.asarray(tokens)
    first, last = codec.event_type_range("program")
    is_program = (tokens >= first) & (tokens <= last)
    return np.where(is_program, first + 8 * ((tokens - first) // 8), tokens).astype(tokens.dtype)


def _keep_tokens(tokens, codec):
    del codec
    return np.asarray(tokens)


@dataclasses.dataclass(frozen=True)
class ProgramGranularity:
    """How instruments are distinguished: a token map for targets, a program map for metrics."""

    tokens_map_fn: object  # (codec indices, codec) -> codec indices
    program_map_fn: object  # program -> program


PROGRAM_GRANULARITIES = {
    "flat": ProgramGranularity(drop_programs, lambda program: 0),
    "midi_class": ProgramGranularity(programs_to_midi_classes, lambda program: 8 * (program // 8)),
    "full": ProgramGranularity(_keep_tokens, lambda program: program),
}


# ---- vocabulary configs ---------------------------------------------------------------------


def build_codec(config: VocabularyConfig) -> Codec:
    """The MT3 codec: shift, pitch, velocity, tie, program, drum, in this order."""
    return Codec(
        max_shift_steps=config.steps_per_second * config.max_shift_seconds,
        steps_per_second=config.steps_per_second,
        event_ranges=[
            EventRange("pitch", MIN_MIDI_PITCH, MAX_MIDI_PITCH),
            EventRange("velocity", 0, config.num_velocity_bins),  # bin 0 = note-off
            EventRange("tie", 0, 0),
            EventRange("program", MIN_MIDI_PROGRAM, MAX_MIDI_PROGRAM),
            EventRange("drum", MIN_MIDI_PITCH, MAX_MIDI_PITCH),
        ],
    )


@dataclasses.dataclass(frozen=True)
class VocabularyConfig:
    """Everything that fixes the token vocabulary and the target grammar.

    Attributes:
        steps_per_second: time resolution of shift tokens.
        max_shift_seconds: longest single shift token.
        num_velocity_bins: velocity resolution (1 = on/off only).
        program_granularity: a key of `PROGRAM_GRANULARITIES`.
        use_ties: start each segment with a tie section naming the notes still sounding.
        input_frames: spectrogram frames per segment of the matching model.
        name: the name `get_vocabulary` knows this config by.
    """

    steps_per_second: int = 100
    max_shift_seconds: int = 10
    num_velocity_bins: int = 1
    program_granularity: str = "full"
    use_ties: bool = True
    input_frames: int = DEFAULT_FRAMES_PER_SEGMENT
    name: str = "custom"

    def __post_init__(self):
        if self.program_granularity not in PROGRAM_GRANULARITIES:
            raise KerasMT3Error(
                f"program_granularity {self.program_granularity!r} is unknown; use one of "
                f"{sorted(PROGRAM_GRANULARITIES)}"
            )
        if not 1 <= self.num_velocity_bins <= MAX_MIDI_VELOCITY:
            raise KerasMT3Error(
                f"num_velocity_bins must be in [1, 127], got {self.num_velocity_bins}"
            )
        for field in ("steps_per_second", "max_shift_seconds", "input_frames"):
            if getattr(self, field) < 1:
                raise KerasMT3Error(f"{field} must be positive, got {getattr(self, field)}")

    @functools.cached_property
    def codec(self):
        return build_codec(self)

    @property
    def num_classes(self):
        return self.codec.num_classes

    @property
    def vocab_size(self):
        return NUM_SPECIAL_TOKENS + self.num_classes + NUM_EXTRA_IDS

    @property
    def num_embeddings(self):
        """Rows of the model's token embedding: vocab_size rounded up to a multiple of 128."""
        return EMBEDDING_MULTIPLE * math.ceil(self.vocab_size / EMBEDDING_MULTIPLE)

    @property
    def granularity(self):
        return PROGRAM_GRANULARITIES[self.program_granularity]

    def codec_indices_to_model_ids(self, codec_indices) -> np.ndarray:
        """Model ids (int32) of valid codec indices; raises `KerasMT3Error` on any other."""
        codec_indices = np.asarray(codec_indices, dtype=np.int64)
        if np.any((codec_indices < 0) | (codec_indices >= self.num_classes)):
            raise KerasMT3Error(f"codec indices must lie in [0, {self.num_classes})")
        return (codec_indices + NUM_SPECIAL_TOKENS).astype(np.int32)

    def model_ids_to_codec_indices(self, model_ids) -> np.ndarray:
        """Codec indices of model ids: EOS -> DECODED_EOS_ID, PAD/UNK/extra/out of range ->
        DECODED_INVALID_ID. Never raises for ids that fit in int64."""
        model_ids = np.asarray(model_ids, dtype=np.int64)
        codec_indices = model_ids - NUM_SPECIAL_TOKENS
        regular = (codec_indices >= 0) & (codec_indices < self.num_classes)
        decoded = np.where(regular, codec_indices, DECODED_INVALID_ID)
        return np.where(model_ids == EOS_ID, DECODED_EOS_ID, decoded)


MT3_VOCABULARY = VocabularyConfig(
    num_velocity_bins=1,
    program_granularity="full",
    use_ties=True,
    input_frames=DEFAULT_FRAMES_PER_SEGMENT,
    name="mt3",
)
ISMIR2021_VOCABULARY = VocabularyConfig(
    num_velocity_bins=127,
    program_granularity="flat",
    use_ties=False,
    input_frames=512,
    name="ismir2021",
)
VOCABULARIES = {config.name: config for config in (MT3_VOCABULARY, ISMIR2021_VOCABULARY)}
# What functions taking a `vocabulary` accept: a name, a config, or `serialize_vocabulary` output.
VocabularyLike = str | VocabularyConfig | dict


def get_vocabulary(vocabulary: VocabularyLike) -> VocabularyConfig:
    """A `VocabularyConfig` from a name (`"mt3"`, `"ismir2021"`), a config (returned as is) or
    the dict `serialize_vocabulary` writes for a custom config."""
    if isinstance(vocabulary, VocabularyConfig):
        return vocabulary
    if isinstance(vocabulary, str) and vocabulary in VOCABULARIES:
        return VOCABULARIES[vocabulary]
    if isinstance(vocabulary, dict):
        try:
            return VocabularyConfig(**vocabulary)
        except TypeError as error:
            raise KerasMT3Error(f"not a vocabulary config {vocabulary!r}: {error}") from None
    raise KerasMT3Error(
        f"unknown vocabulary {vocabulary!r}; use one of {sorted(VOCABULARIES)} or pass a "
        "keras_mt3.codec.vocabulary.VocabularyConfig"
    )


def serialize_vocabulary(vocabulary: VocabularyLike) -> str | dict:
    """JSON-able form that `get_vocabulary` turns back into the same config: the name of a
    built-in vocabulary, every field of any other (a name alone could not rebuild it)."""
    vocabulary = get_vocabulary(vocabulary)
    if VOCABULARIES.get(vocabulary.name) == vocabulary:
        return vocabulary.name
    return dataclasses.asdict(vocabulary)
