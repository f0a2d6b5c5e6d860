"""Helpers for the data tests: tiny rendered clips written as real audio and MIDI files."""

import numpy as np
import soundfile
from note_seq.protobuf import music_pb2

from keras_mt3.data.synth import render_note_sequence
from keras_mt3.midi_io import save_midi


def note_sequence(notes):
    """NoteSequence from `(pitch, start, end[, program[, is_drum]])` tuples (velocity 100)."""
    sequence = music_pb2.NoteSequence(ticks_per_quarter=220)
    sequence.tempos.add(qpm=120.0)
    for pitch, start, end, *rest in notes:
        program = rest[0] if rest else 0
        is_drum = rest[1] if len(rest) > 1 else False
        sequence.notes.add(
            pitch=pitch,
            start_time=start,
            end_time=end,
            velocity=100,
            program=program,
            is_drum=is_drum,
        )
    sequence.total_time = max((note.end_time for note in sequence.notes), default=0.0)
    return sequence


def write_pair(folder, name, notes, seconds=None, sample_rate=16000):
    """Writes `name.wav` (the notes rendered) and `name.mid` into `folder`; returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    sequence = note_sequence(notes)
    audio = render_note_sequence(sequence, sample_rate=sample_rate, duration=seconds)
    audio_path, midi_path = folder / f"{name}.wav", folder / f"{name}.mid"
    soundfile.write(audio_path, audio, sample_rate)
    save_midi(sequence, midi_path)
    return audio_path, midi_path


def write_audio(path, seconds, sample_rate=16000, frequency=440.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    soundfile.write(path, 0.1 * np.sin(2 * np.pi * frequency * t).astype(np.float32), sample_rate)
    return path
