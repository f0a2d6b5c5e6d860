"""The notes format shared by the library, the CLI and the service: JSON, CSV and MIDI."""

import csv
import io
import json

import pytest
from note_seq.protobuf import music_pb2

from keras_mt3 import note_export
from keras_mt3.errors import KerasMT3Error
from keras_mt3.midi_io import load_midi

pytestmark = pytest.mark.backend_independent


@pytest.fixture
def sequence():
    notes = music_pb2.NoteSequence()
    # Out of time order on purpose, with times that are not short decimals.
    notes.notes.add(pitch=64, start_time=1.0 / 3, end_time=0.9, velocity=90, program=33)
    notes.notes.add(pitch=36, start_time=0.1, end_time=0.11, velocity=127, is_drum=True)
    notes.notes.add(pitch=60, start_time=0.1, end_time=0.6, velocity=100, program=0)
    notes.notes.add(pitch=67, start_time=0.5, end_time=1.25, velocity=80, program=0)
    notes.total_time = 1.25
    return notes


def test_json_document(sequence):
    document = json.loads(note_export.notes_to_json(sequence))
    assert document["schema_version"] == 1
    assert document["num_notes"] == 4 and document["duration"] == 1.25
    assert document["instruments"] == [
        {"instrument": "Acoustic Grand Piano", "program": 0, "is_drum": False, "num_notes": 2},
        {"instrument": "Electric Bass (finger)", "program": 33, "is_drum": False, "num_notes": 1},
        {"instrument": "Drums", "program": 0, "is_drum": True, "num_notes": 1},
    ]
    # By onset; at equal onsets pitched instruments before drums.
    assert [(n["onset"], n["pitch"]) for n in document["notes"]] == [
        (0.1, 60),
        (0.1, 36),
        (1.0 / 3, 64),
        (0.5, 67),
    ]
    assert document["notes"][2] == {
        "onset": 1.0 / 3,
        "offset": 0.9,
        "pitch": 64,
        "velocity": 90,
        "program": 33,
        "instrument": "Electric Bass (finger)",
        "is_drum": False,
    }


def test_json_round_trip_keeps_every_note_exactly(sequence):
    back = note_export.notes_from_json(note_export.notes_to_json(sequence))
    key = lambda n: (n.start_time, n.pitch)  # noqa: E731
    assert sorted(back.notes, key=key) == sorted(sequence.notes, key=key)
    assert back.total_time == sequence.total_time
    assert note_export.notes_from_json(note_export.notes_to_dict(sequence)) == back


def test_csv_rows_match_the_json_notes(sequence):
    rows = list(csv.DictReader(io.StringIO(note_export.notes_to_csv(sequence))))
    notes = note_export.notes_to_dict(sequence)["notes"]
    assert list(rows[0]) == list(note_export.NOTE_FIELDS)
    assert [float(r["onset"]) for r in rows] == [n["onset"] for n in notes]
    assert [r["instrument"] for r in rows] == [n["instrument"] for n in notes]
    assert [r["is_drum"] for r in rows] == ["false", "true", "false", "false"]


def test_empty_sequence():
    document = note_export.notes_to_dict(music_pb2.NoteSequence())
    assert document["notes"] == [] and document["instruments"] == [] and document["num_notes"] == 0
    assert note_export.notes_to_csv(music_pb2.NoteSequence()).splitlines() == [
        ",".join(note_export.NOTE_FIELDS)
    ]


@pytest.mark.parametrize("bad", ['{"notes": [{"onset": 1}]}', "not json", '{"no": "notes"}', 42])
def test_notes_from_json_rejects_other_documents(bad):
    with pytest.raises(KerasMT3Error, match="not a keras-mt3 notes document"):
        note_export.notes_from_json(bad)


@pytest.mark.parametrize(
    "name, expected", [("mid", "mid"), ("MIDI", "mid"), (".json", "json"), ("csv", "csv")]
)
def test_format_names(name, expected):
    assert note_export.normalize_format(name) == expected


def test_unknown_format_names_the_choices():
    with pytest.raises(KerasMT3Error, match="mid, json, csv"):
        note_export.normalize_format("xml")


@pytest.mark.parametrize(
    "name", ["song.json", "song.csv", "song.mid", "song.MIDI", "song", "song.txt"]
)
def test_save_notes_picks_the_format_from_the_extension(sequence, tmp_path, name):
    path = note_export.save_notes(sequence, tmp_path / name)
    data = path.read_bytes()
    expected_format = note_export.format_for_path(path)
    assert data == note_export.encode_notes(sequence, expected_format)
    if expected_format == "mid":
        assert len(load_midi(path).notes) == 4
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left behind


def test_failed_save_leaves_an_existing_file_alone(tmp_path):
    target = tmp_path / "notes.mid"
    target.write_bytes(b"old")
    bad = music_pb2.NoteSequence()
    bad.notes.add(pitch=300, start_time=0, end_time=1, velocity=100)
    with pytest.raises(KerasMT3Error, match="0..127"):
        note_export.save_notes(bad, target)
    assert target.read_bytes() == b"old"
