"""Helpers of the command tests that need no checkpoint: a stand-in model, short audio files."""

import numpy as np
import soundfile
from note_seq.protobuf import music_pb2

from keras_mt3.constants import SAMPLE_RATE


def write_tone(path, seconds):
    """A quiet sine of `seconds` at `path` (any soundfile format by extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    times = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    soundfile.write(path, (0.1 * np.sin(2 * np.pi * 440 * times)).astype("float32"), SAMPLE_RATE)
    return path


class FileByFile:
    """`transcribe_many` (the contract of `MT3Transcriber.transcribe_many`) over a stand-in's
    own `transcribe`, one file after the other."""

    def transcribe_many(self, sources, *, progress=None, return_errors=False):
        from keras_mt3.errors import KerasMT3Error

        for source in sources:
            try:
                yield source, self.transcribe(source, progress=progress)
            except KerasMT3Error as error:
                if not return_errors:
                    raise
                yield source, error


class StandInTranscriber(FileByFile):
    """Transcribes every file to one note lasting the whole file, so that each output shows
    which input it came from; writes MIDI with the real `transcribe_to_midi`."""

    def __init__(self, before_transcribing=None):
        from keras_mt3.models.mt3_transcriber import MT3Transcriber

        self.transcribe_to_midi = MT3Transcriber.transcribe_to_midi.__get__(self)
        self.before_transcribing = before_transcribing
        self.transcribed = []

    def transcribe(self, audio, progress=None):
        from keras_mt3.preprocessing.audio_io import audio_duration

        if self.before_transcribing is not None:
            self.before_transcribing(audio)
        self.transcribed.append(audio)
        sequence = music_pb2.NoteSequence()
        sequence.notes.add(pitch=60, velocity=100, start_time=0.0, end_time=audio_duration(audio))
        return sequence
