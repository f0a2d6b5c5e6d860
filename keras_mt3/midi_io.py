"""Reading MIDI files into NoteSequences and writing NoteSequences as MIDI files."""

import io
import os
import pathlib

import note_seq
from note_seq.protobuf import music_pb2

from keras_mt3.errors import KerasMT3Error, MidiLoadError
from keras_mt3.utils import atomic_write



def load_midi(source) -> music_pb2.NoteSequence:
    """Reads a MIDI file into a `NoteSequence` (times in seconds).

    Args:
        source: a path (str or `os.PathLike`) or the file's contents (`bytes`, `bytearray`,
            `memoryview`).

    Raises:
        MidiLoadError: the file is missing, is a directory, cannot be read, is empty, or is not
            a valid (complete) Standard MIDI File.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _parse_midi(bytes(source), "the MIDI data given")
    if not isinstance(source, (str, os.PathLike)):
        raise MidiLoadError(
            f"load_midi takes a file path or the file's bytes, got {type(source).__name__}"
        )
    path = pathlib.Path(source)
    if path.is_dir():
        raise MidiLoadError(f"{path} is a directory; give the path of a .mid file inside it")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MidiLoadError(f"MIDI file {path} does not exist; check the path") from None
    except OSError as error:
        raise MidiLoadError(f"cannot read MIDI file {path}: {error.strerror or error}") from None
    return _parse_midi(data, str(path))


def save_midi(note_sequence: music_pb2.NoteSequence, path: str | os.PathLike) -> pathlib.Path:
    """Writes `note_sequence` to `path` as a Standard MIDI File, atomically; returns the path.

    The file appears only once it is complete: if conversion or writing fails, an existing file
    at `path` is left as it was.

    Raises:
        KerasMT3Error: `note_sequence` is not a NoteSequence or cannot be expressed as MIDI
            (e.g. a pitch or velocity outside 0..127); `OutputError` when `path` cannot be
            written.
    """
    path = pathlib.Path(path)
    data = midi_bytes(note_sequence, what=str(path))
    with atomic_write(path) as handle:
        handle.write(data)
    return path


def midi_bytes(note_sequence: music_pb2.NoteSequence, *, what: str = "the notes") -> bytes:
    """The Standard MIDI File of `note_sequence` as bytes: what `save_midi` writes.

    Raises:
        KerasMT3Error: as `save_midi`; `what` names the output in the message.
    """
    if not isinstance(note_sequence, music_pb2.NoteSequence):
        raise KerasMT3Error(
            f"MIDI output needs a note_seq NoteSequence, got {type(note_sequence).__name__}"
        )
    buffer = io.BytesIO()
    try:
        note_sequence_to_pretty_midi(note_sequence).write(buffer)
    except (ValueError, TypeError, OverflowError) as error:
        # mido checks every data byte only while writing.
        raise KerasMT3Error(
            f"cannot write {what} as MIDI: {error}. MIDI needs pitches, velocities and programs "
            "in 0..127; fix those notes first"
        ) from error
    return buffer.getvalue()


def note_sequence_to_pretty_midi(note_sequence: music_pb2.NoteSequence):
    """`note_seq.note_sequence_to_pretty_midi` without its silent loss of notes.

    note_seq makes one pretty_midi instrument per `(instrument, program, is_drum)` group, but all
    groups with `instrument == 0` share a single one, and only the last group's notes survive.
    A NoteSequence built by hand often leaves `instrument` at 0 for every program, so those
    groups first get unused instrument numbers (in a copy; the input is not modified).
    """
    events = _events(note_sequence)
    shared = sorted({(e.instrument, e.program, e.is_drum) for e in events if e.instrument == 0})
    if len(shared) > 1:
        first_free = max(e.instrument for e in events) + 1
        renumbered = {group: first_free + i for i, group in enumerate(shared[1:])}
        note_sequence = _copy(note_sequence)
        for event in _events(note_sequence):
            group = (event.instrument, event.program, event.is_drum)
            event.instrument = renumbered.get(group, event.instrument)
    return note_seq.note_sequence_to_pretty_midi(note_sequence)


def _events(note_sequence):
    """Everything note_seq assigns to an instrument: notes, control changes, pitch bends."""
    return [*note_sequence.notes, *note_sequence.control_changes, *note_sequence.pitch_bends]


def _copy(note_sequence):
    copied = music_pb2.NoteSequence()
    copied.CopyFrom(note_sequence)
    return copied


def _parse_midi(data, what):
    if not data:
        raise MidiLoadError(f"{what} is empty (0 bytes); it is not a MIDI file")
    try:
        return note_seq.midi_to_note_sequence(data)
    except note_seq.MIDIConversionError as error:
        raise MidiLoadError(
            f"{what} is not a valid MIDI file (it may be truncated or another format): {error}"
        ) from None
