import pytest
from note_seq.protobuf import music_pb2


def notes_to_sequence(notes):
    """NoteSequence from `(pitch, start, end[, velocity[, program[, is_drum]]])` tuples;
    missing fields default to velocity 100, program 0, not drums."""
    defaults = (100, 0, False)
    sequence = music_pb2.NoteSequence()
    for note in notes:
        pitch, start, end, velocity, program, is_drum = (*note, *defaults[len(note) - 3 :])
        sequence.notes.add(
            pitch=pitch,
            start_time=start,
            end_time=end,
            velocity=velocity,
            program=program,
            is_drum=is_drum,
        )
    return sequence


@pytest.fixture(scope="session")
def make_sequence():
    return notes_to_sequence
