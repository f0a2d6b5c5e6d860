import os

import pretty_midi
import pytest
from helpers import assert_same_notes, note_sequence, note_tuples

from keras_mt3.errors import KerasMT3Error, MidiLoadError
from keras_mt3.midi_io import load_midi, note_sequence_to_pretty_midi, save_midi

pytestmark = pytest.mark.backend_independent

# (pitch, start, end, velocity, program, is_drum); every note on instrument 0, as a
# hand-built NoteSequence usually is.
NOTES = [
    (60, 0.0, 0.5, 100, 0, False),
    (64, 0.25, 1.0, 90, 0, False),
    (40, 0.5, 1.5, 80, 33, False),
    (72, 1.0, 1.25, 70, 73, False),
    (36, 0.0, 0.01, 127, 0, True),
    (42, 0.75, 0.76, 127, 0, True),
]


@pytest.fixture()
def midi_path(tmp_path):
    return save_midi(note_sequence(NOTES), tmp_path / "song.mid")


def test_save_then_load_keeps_every_note_of_every_instrument(midi_path):
    assert_same_notes(load_midi(midi_path), note_sequence(NOTES), atol=3e-3)


def test_load_from_bytes_equals_load_from_path(midi_path):
    data = midi_path.read_bytes()
    assert note_tuples(load_midi(data)) == note_tuples(load_midi(midi_path))
    assert note_tuples(load_midi(bytearray(data))) == note_tuples(load_midi(str(midi_path)))


def test_load_matches_pretty_midi_on_a_multi_instrument_file(reference_dir):
    path = reference_dir / "multi_band.mid"
    midi = pretty_midi.PrettyMIDI(str(path))
    expected = sorted(
        (n.pitch, n.start, n.end, inst.program, inst.is_drum)
        for inst in midi.instruments
        for n in inst.notes
    )
    loaded = load_midi(path)
    assert sorted(
        (n.pitch, n.start_time, n.end_time, n.program, n.is_drum) for n in loaded.notes
    ) == expected


def test_missing_file(tmp_path):
    with pytest.raises(MidiLoadError, match="does not exist"):
        load_midi(tmp_path / "nope.mid")


def test_directory(tmp_path):
    with pytest.raises(MidiLoadError, match="is a directory"):
        load_midi(tmp_path)


def test_empty_file_and_empty_bytes(tmp_path):
    empty = tmp_path / "empty.mid"
    empty.write_bytes(b"")
    with pytest.raises(MidiLoadError, match="empty"):
        load_midi(empty)
    with pytest.raises(MidiLoadError, match="empty"):
        load_midi(b"")


def test_garbage_bytes(tmp_path):
    garbage = tmp_path / "garbage.mid"
    garbage.write_bytes(b"this is not a MIDI file at all" * 10)
    with pytest.raises(MidiLoadError, match="not a valid MIDI file"):
        load_midi(garbage)


@pytest.mark.parametrize("keep_fraction", [0.1, 0.5, 0.95])
def test_truncated_file(midi_path, keep_fraction):
    data = midi_path.read_bytes()
    with pytest.raises(MidiLoadError, match="not a valid MIDI file"):
        load_midi(data[: int(len(data) * keep_fraction)])


def test_wrong_source_type():
    with pytest.raises(MidiLoadError, match="path or the file's bytes"):
        load_midi(12)


def test_failed_save_leaves_existing_file_untouched(midi_path):
    before = midi_path.read_bytes()
    bad = note_sequence([(200, 0.0, 1.0, 100, 0, False)])  # pitch out of MIDI's range
    with pytest.raises(KerasMT3Error, match="0..127"):
        save_midi(bad, midi_path)
    assert midi_path.read_bytes() == before
    assert os.listdir(midi_path.parent) == [midi_path.name]  # no temporary file left behind


def test_save_rejects_non_sequences(tmp_path):
    with pytest.raises(KerasMT3Error, match="NoteSequence"):
        save_midi([(60, 0.0, 1.0)], tmp_path / "x.mid")
    assert not (tmp_path / "x.mid").exists()


def test_pretty_midi_conversion_keeps_notes_and_does_not_modify_input():
    sequence = note_sequence(NOTES)
    before = sequence.SerializeToString()
    midi = note_sequence_to_pretty_midi(sequence)
    assert sequence.SerializeToString() == before
    converted = sorted(
        (n.pitch, inst.program, inst.is_drum) for inst in midi.instruments for n in inst.notes
    )
    assert converted == sorted((p, prog, drum) for p, _, _, _, prog, drum in NOTES)
