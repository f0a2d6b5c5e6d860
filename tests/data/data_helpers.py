"""Helpers for the data tests: tiny rendered clips written as real audio and MIDI files."""

import numpy as np
import soundfile
from helpers import note_sequence

from keras_mt3.constants import SAMPLE_RATE
from keras_mt3.data.synth import render_note_sequence
from keras_mt3.midi_io import save_midi


def write_pair(folder, name, notes, seconds=None, sample_rate=SAMPLE_RATE):
    """Writes `name.wav` (the notes rendered) and `name.mid` into `folder`; returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    sequence = note_sequence(notes)
    audio = render_note_sequence(sequence, sample_rate=sample_rate, duration=seconds)
    audio_path, midi_path = folder / f"{name}.wav", folder / f"{name}.mid"
    soundfile.write(audio_path, audio, sample_rate)
    save_midi(sequence, midi_path)
    return audio_path, midi_path


def write_audio(path, seconds, sample_rate=SAMPLE_RATE, frequency=440.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    soundfile.write(path, 0.1 * np.sin(2 * np.pi * frequency * t).astype(np.float32), sample_rate)
    return path
