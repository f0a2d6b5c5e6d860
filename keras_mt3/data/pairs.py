"""`TranscriptionPair`: one training example before loading, as the dataset readers list them."""

import dataclasses
import pathlib
from typing import Any, Callable, Optional, Union

import numpy as np
from note_seq.protobuf import music_pb2

from keras_mt3.errors import KerasMT3Error

# What `TranscriptionPair.notes` may be: a MIDI file, a NoteSequence, or a function that builds
# one (dataset formats with their own annotation files, e.g. GuitarSet's JAMS).
NoteSource = Union[str, pathlib.Path, music_pb2.NoteSequence, Callable[[], music_pb2.NoteSequence]]


@dataclasses.dataclass(frozen=True)
class TranscriptionPair:
    """Audio plus the notes played in it.

    Attributes:
        name: a unique, human-readable id (used in logs and cache keys).
        audio: an audio file path, or 1-D float samples at `sample_rate`.
        notes: a MIDI file path, a `NoteSequence`, or a zero-argument callable returning one.
        dataset: which dataset the pair comes from (mixtures sample by this name).
        split: `"train"`, `"validation"`, `"test"`, ... when the dataset defines splits.
        sample_rate: the rate of array `audio` (ignored for files, which carry their own).
        cache_token: anything that changes when a callable's output would change; it is part
            of the disk-cache key (files are keyed by path, size and modification time).
        trim_overlaps: end a note where the same note (program, pitch, drum) is struck again
            while it still sounds, before encoding. MT3 does this only for its Slakh training
            data, so only `slakh_pairs` sets it (see `loading.trim_overlapping_notes`).
    """

    name: str
    audio: Any
    notes: NoteSource
    dataset: str = "custom"
    split: Optional[str] = None
    sample_rate: Optional[int] = None
    cache_token: str = ""
    trim_overlaps: bool = False

    def __post_init__(self):
        if isinstance(self.audio, np.ndarray) and not self.sample_rate:
            raise KerasMT3Error(
                f"pair {self.name!r} holds audio samples without a sample_rate; pass the rate "
                "the samples were recorded at"
            )

    @property
    def has_audio_file(self):
        return isinstance(self.audio, (str, pathlib.Path))

    @property
    def has_midi_file(self):
        return isinstance(self.notes, (str, pathlib.Path))

