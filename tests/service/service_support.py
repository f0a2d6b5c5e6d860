"""Helpers of the service tests: a real uvicorn server on a free loopback port, tone clips, and
a fast stand-in transcriber whose notes follow from the audio, so mixed-up answers show."""

import contextlib
import io
import math
import socket
import threading
import time

import numpy as np
import soundfile
from note_seq.protobuf import music_pb2

from keras_mt3.constants import SAMPLE_RATE
from keras_mt3.preprocessing import audio_io

# The stand-in writes one note per this much audio, each a "segment" of progress.
NOTE_SECONDS = 0.25


def tone_wav(pitch, seconds, sample_rate=SAMPLE_RATE):
    """A sine at MIDI `pitch`, as WAV bytes."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    samples = 0.5 * np.sin(2 * np.pi * 440.0 * 2 ** ((pitch - 69) / 12) * t)
    buffer = io.BytesIO()
    soundfile.write(buffer, samples.astype("float32"), sample_rate, format="WAV")
    return buffer.getvalue()


def expected_tone_notes(pitch, seconds):
    """(onset, pitch) of the notes `ToneTranscriber` must find in `tone_wav(pitch, seconds)`."""
    return [(i * NOTE_SECONDS, pitch) for i in range(max(1, int(seconds / NOTE_SECONDS)))]


class ToneTranscriber:
    """Has `MT3Transcriber.transcribe`'s signature; finds the clip's strongest frequency and
    writes one note of that pitch per `NOTE_SECONDS`, taking `seconds_per_note` for each.

    It also counts calls, calls that ran to the end, and how many calls ever overlapped (the
    service must never run two transcriptions on one model at once).
    """

    def __init__(self, seconds_per_note=0.0):
        self.seconds_per_note = seconds_per_note
        self.calls = 0
        self.finished = 0
        self.max_concurrent = 0
        self._active = 0
        self._lock = threading.Lock()

    def transcribe(self, audio, *, progress=None, progress_callback=None):
        with self._lock:
            self.calls += 1
            self._active += 1
            self.max_concurrent = max(self.max_concurrent, self._active)
        try:
            result = self._transcribe(audio, progress_callback or (lambda done, total: None))
            with self._lock:
                self.finished += 1
            return result
        finally:
            with self._lock:
                self._active -= 1

    def _transcribe(self, audio, report):
        samples = audio_io.load_audio(audio)
        spectrum = np.abs(np.fft.rfft(samples))
        frequency = np.argmax(spectrum) * SAMPLE_RATE / len(samples)
        pitch = int(round(69 + 12 * math.log2(max(frequency, 1.0) / 440.0)))
        count = max(1, int(len(samples) / SAMPLE_RATE / NOTE_SECONDS))
        sequence = music_pb2.NoteSequence()
        report(0, count)
        for index in range(count):
            time.sleep(self.seconds_per_note)
            onset = index * NOTE_SECONDS
            sequence.notes.add(
                pitch=pitch, start_time=onset, end_time=onset + 0.2, velocity=100, program=index % 3
            )
            report(index + 1, count)
        sequence.total_time = count * NOTE_SECONDS
        return sequence


def free_loopback_socket():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.contextmanager
def running_server(app, startup_seconds=30):
    """Serves `app` with uvicorn on a free 127.0.0.1 port in a thread; yields the base URL."""
    import uvicorn

    sock = free_loopback_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_seconds
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
