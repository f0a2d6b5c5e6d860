"""Notes as data: one JSON and CSV format shared by the library, `keras-mt3 transcribe` and the
web service, plus MIDI, so that every way out of keras-mt3 describes a note the same way.

A note is `onset` and `offset` (seconds), `pitch` (MIDI; for drums the General MIDI drum
note), `velocity`, `program` (General MIDI, 0 for drums), `instrument` (the General MIDI name,
or "Drums") and `is_drum`. Times keep the NoteSequence's full precision (JSON floats are
written exactly), so `notes_from_json(notes_to_json(ns))` gives back the same notes.

note_seq is imported only when needed, so the command line can read `FORMATS` cheaply.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pathlib
from typing import TYPE_CHECKING

from keras_mt3.errors import KerasMT3Error
from keras_mt3.utils import atomic_write

if TYPE_CHECKING:
    from note_seq.protobuf import music_pb2

SCHEMA_VERSION = 1
NOTE_FIELDS = ("onset", "offset", "pitch", "velocity", "program", "instrument", "is_drum")
DRUMS_NAME = "Drums"

# Output format -> (media type, file extension).
FORMATS = {
    "mid": ("audio/midi", ".mid"),
    "json": ("application/json", ".json"),
    "csv": ("text/csv", ".csv"),
}
_FORMAT_ALIASES = {"midi": "mid"}


def instrument_name(program: int, is_drum: bool) -> str:
    """The General MIDI name of `program` ("Acoustic Grand Piano"), or "Drums"."""
    import pretty_midi

    return DRUMS_NAME if is_drum else pretty_midi.program_to_instrument_name(int(program))


def note_rows(note_sequence: music_pb2.NoteSequence) -> list[dict]:
    """The notes as dicts with `NOTE_FIELDS`, by onset, then instrument, then pitch."""
    notes = sorted(
        note_sequence.notes,
        key=lambda n: (n.start_time, n.is_drum, n.program, n.pitch, n.end_time),
    )
    return [
        {
            "onset": note.start_time,
            "offset": note.end_time,
            "pitch": note.pitch,
            "velocity": note.velocity,
            "program": note.program,
            "instrument": instrument_name(note.program, note.is_drum),
            "is_drum": bool(note.is_drum),
        }
        for note in notes
    ]


def notes_to_dict(note_sequence: music_pb2.NoteSequence) -> dict:
    """The JSON document of `note_sequence` as Python data (see `notes_to_json`)."""
    rows = note_rows(note_sequence)
    counts = {}
    for row in rows:
        key = (row["is_drum"], row["program"])
        counts[key] = counts.get(key, 0) + 1
    instruments = [
        {
            "instrument": instrument_name(program, is_drum),
            "program": program,
            "is_drum": is_drum,
            "num_notes": count,
        }
        for (is_drum, program), count in sorted(counts.items())
    ]
    return {
        "schema_version": SCHEMA_VERSION,
        "num_notes": len(rows),
        "duration": note_sequence.total_time,
        "instruments": instruments,
        "notes": rows,
    }


def notes_to_json(note_sequence: music_pb2.NoteSequence, indent: int | None = None) -> str:
    """`note_sequence` as a JSON string: `{"schema_version", "num_notes", "duration" (seconds),
    "instruments": [{"instrument", "program", "is_drum", "num_notes"}], "notes": [...]}` with
    one object per note (`NOTE_FIELDS`); instruments are ordered by program, drums last."""
    return json.dumps(notes_to_dict(note_sequence), indent=indent)


def notes_to_csv(note_sequence: music_pb2.NoteSequence) -> str:
    """`note_sequence` as CSV text: a header of `NOTE_FIELDS`, then one note per row."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=NOTE_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in note_rows(note_sequence):
        writer.writerow({**row, "is_drum": "true" if row["is_drum"] else "false"})
    return buffer.getvalue()


def notes_from_json(document: str | dict) -> music_pb2.NoteSequence:
    """A NoteSequence from `notes_to_json` output (a JSON string or the parsed dict).

    Raises:
        KerasMT3Error: the document is not in this format.
    """
    from note_seq.protobuf import music_pb2

    try:
        data = json.loads(document) if isinstance(document, (str, bytes)) else document
        sequence = music_pb2.NoteSequence()
        for row in data["notes"]:
            sequence.notes.add(
                start_time=float(row["onset"]),
                end_time=float(row["offset"]),
                pitch=int(row["pitch"]),
                velocity=int(row["velocity"]),
                program=int(row["program"]),
                is_drum=bool(row["is_drum"]),
            )
    except (ValueError, KeyError, TypeError) as error:
        raise KerasMT3Error(
            f"not a keras-mt3 notes document ({type(error).__name__}: {error}); expected the "
            "output of notes_to_json"
        ) from None
    sequence.total_time = max((note.end_time for note in sequence.notes), default=0.0)
    return sequence


def normalize_format(name: str) -> str:
    """ "mid", "json" or "csv" for a format name or alias ("midi", ".json", "CSV").

    Raises:
        KerasMT3Error: the format is not one of `FORMATS`.
    """
    key = str(name).lower().lstrip(".")
    key = _FORMAT_ALIASES.get(key, key)
    if key not in FORMATS:
        raise KerasMT3Error(f"unknown notes format {name!r}; choose one of {', '.join(FORMATS)}")
    return key


def format_for_path(path: str | os.PathLike, default: str = "mid") -> str:
    """The format a file name asks for by its extension (`song.csv` -> "csv"), else `default`."""
    suffix = pathlib.Path(path).suffix
    try:
        return normalize_format(suffix) if suffix else default
    except KerasMT3Error:
        return default


def encode_notes(note_sequence: music_pb2.NoteSequence, format_name: str) -> bytes:
    """`note_sequence` in the given format, as bytes (MIDI, or UTF-8 JSON/CSV)."""
    from keras_mt3.midi_io import midi_bytes

    format_name = normalize_format(format_name)
    if format_name == "mid":
        return midi_bytes(note_sequence)
    if format_name == "json":
        return notes_to_json(note_sequence).encode()
    return notes_to_csv(note_sequence).encode()


def save_notes(
    note_sequence: music_pb2.NoteSequence,
    path: str | os.PathLike,
    format_name: str | None = None,
) -> pathlib.Path:
    """Writes `note_sequence` to `path` atomically, as MIDI, JSON or CSV; returns the path.

    `format_name` defaults to the one `path`'s extension names (MIDI for anything else).
    """
    from keras_mt3.midi_io import save_midi

    path = pathlib.Path(path)
    format_name = normalize_format(format_name or format_for_path(path))
    if format_name == "mid":
        return save_midi(note_sequence, path)
    data = encode_notes(note_sequence, format_name)
    with atomic_write(path) as handle:
        handle.write(data)
    return path
