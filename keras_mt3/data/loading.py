"""Loading one `TranscriptionPair`: 16 kHz audio + a clean NoteSequence, or a reason to skip it.

Every way a pair can be unusable (missing or corrupt files, a MIDI without notes, audio that
ends long before the notes do) raises `DataPairError` with a short `reason`, which the pipeline
counts in a `SkipLog` instead of stopping the run.
"""

import collections
import pathlib
from typing import NamedTuple

import numpy as np
from note_seq.protobuf import music_pb2

from keras_mt3.errors import AudioLoadError, KerasMT3Error, MidiLoadError
from keras_mt3.midi_io import load_midi
from keras_mt3.preprocessing.audio_io import SAMPLE_RATE, load_audio

MISSING_AUDIO = "missing audio"
MISSING_MIDI = "missing MIDI"
CORRUPT_AUDIO = "corrupt audio"
CORRUPT_MIDI = "corrupt MIDI"
EMPTY_MIDI = "no notes"
AUDIO_TOO_SHORT = "audio shorter than the MIDI"
UNENCODABLE_NOTES = "notes the vocabulary cannot encode"
UNEXPECTED_ERROR = "unexpected error"

# Notes may ring on a little past the end of a recording; more than this means a mismatch.
DEFAULT_MAX_MIDI_OVERRUN_SECONDS = 1.0


class DataPairError(KerasMT3Error):
    """A training pair cannot be used; `reason` is one of this module's constants."""

    def __init__(self, reason, details):
        super().__init__(f"{reason}: {details}")
        self.reason = reason
        self.details = details


class LoadedPair(NamedTuple):
    audio: np.ndarray  # 1-D float32 at 16 kHz
    note_sequence: music_pb2.NoteSequence


def load_pair(
    pair, max_midi_overrun_seconds=DEFAULT_MAX_MIDI_OVERRUN_SECONDS, trim_overlaps=None
):
    """Loads and checks a pair; raises `DataPairError` when it cannot be trained on.

    Overlapping repeats of a note are trimmed (`trim_overlapping_notes`) when `trim_overlaps`
    says so; None leaves it to the pair (`pair.trim_overlaps`: MT3's choice for its dataset).
    """
    note_sequence = _load_notes(pair)
    if not note_sequence.notes:
        raise DataPairError(EMPTY_MIDI, f"{_describe_notes(pair)} contains no notes")
    audio = _load_audio(pair)
    audio_seconds = len(audio) / SAMPLE_RATE
    notes_end = max(note.end_time for note in note_sequence.notes)
    if notes_end > audio_seconds + max_midi_overrun_seconds:
        raise DataPairError(
            AUDIO_TOO_SHORT,
            f"the audio lasts {audio_seconds:.2f} s but its notes run to {notes_end:.2f} s",
        )
    if pair.trim_overlaps if trim_overlaps is None else trim_overlaps:
        note_sequence = trim_overlapping_notes(note_sequence)
    return LoadedPair(audio, note_sequence)


def trim_overlapping_notes(note_sequence):
    """A copy where a note that is struck again while still sounding ends at the new onset.

    Overlapping notes of one (program, pitch, is_drum) cannot be told apart in MT3's event
    stream, so they would decode differently from how they were encoded. MT3 trims only its
    Slakh training data (where stems of one class share a program); for other data, trimming
    makes targets that decode back to their notes, at the cost of differing from MT3's.
    """
    trimmed = music_pb2.NoteSequence()
    trimmed.CopyFrom(note_sequence)
    by_key = collections.defaultdict(list)
    for note in trimmed.notes:
        by_key[(note.program, note.pitch, note.is_drum)].append(note)
    for notes in by_key.values():
        # By onset only, keeping the sequence's order at equal onsets, as MT3 does: of notes
        # struck together, the last listed is the one kept.
        notes.sort(key=lambda note: note.start_time)
        for earlier, later in zip(notes, notes[1:]):
            if earlier.end_time > later.start_time:
                earlier.end_time = later.start_time
    # Trimming can leave zero-length notes (two onsets at the same time): drop them.
    kept = [note for note in trimmed.notes if note.end_time > note.start_time]
    if len(kept) != len(trimmed.notes):
        copies = [music_pb2.NoteSequence.Note() for _ in kept]
        for copy, note in zip(copies, kept):
            copy.CopyFrom(note)
        del trimmed.notes[:]
        trimmed.notes.extend(copies)
    return trimmed


def _load_notes(pair):
    notes = pair.notes
    if isinstance(notes, music_pb2.NoteSequence):
        return notes
    if callable(notes):
        try:
            return notes()
        except FileNotFoundError as error:
            raise DataPairError(MISSING_MIDI, str(error)) from None
        except (KerasMT3Error, OSError, ValueError, KeyError) as error:
            raise DataPairError(CORRUPT_MIDI, f"{_describe_notes(pair)}: {error}") from None
    path = pathlib.Path(notes)
    if not path.is_file():
        raise DataPairError(MISSING_MIDI, f"{path} does not exist")
    try:
        return load_midi(path)
    except MidiLoadError as error:
        raise DataPairError(CORRUPT_MIDI, str(error)) from None


def _load_audio(pair):
    if pair.has_audio_file and not pathlib.Path(pair.audio).is_file():
        raise DataPairError(MISSING_AUDIO, f"{pair.audio} does not exist")
    try:
        if pair.has_audio_file:
            return load_audio(pair.audio)
        return load_audio(np.asarray(pair.audio), source_sample_rate=pair.sample_rate)
    except AudioLoadError as error:
        raise DataPairError(CORRUPT_AUDIO, str(error)) from None


def _describe_notes(pair):
    return str(pair.notes) if pair.has_midi_file else f"the note list of {pair.name}"
