"""A small additive synthesizer: NoteSequence -> 16 kHz audio, for tests, examples and toy data.

Pitched notes are sums of harmonics with an attack / decay / release envelope; each General
MIDI family (program // 8) gets its own harmonic profile and envelope, so instruments are
audibly (and learnably) different. Drums are noise bursts and pitch-swept tones shaped by the
GM drum map (kick, snare, toms, hi-hats, cymbals). It makes no attempt at realism: it only has to
put energy where the notes are, deterministically.
"""

import dataclasses

import numpy as np

from keras_mt3.preprocessing.audio_io import SAMPLE_RATE

RELEASE_SECONDS = 0.05


@dataclasses.dataclass(frozen=True)
class Timbre:
    num_harmonics: int
    rolloff: float  # harmonic k has amplitude k ** -rolloff
    decay_seconds: float  # time constant of the exponential decay; inf = sustained
    attack_seconds: float = 0.005
    odd_harmonics_only: bool = False


_DEFAULT_TIMBRE = Timbre(6, 1.2, 1.0)
# Keyed by General MIDI family (program // 8).
_FAMILY_TIMBRES = {
    0: Timbre(8, 1.5, 0.8),  # piano
    1: Timbre(4, 2.0, 0.3),  # chromatic percussion
    2: Timbre(6, 1.0, np.inf, 0.01),  # organ
    3: Timbre(8, 1.2, 0.6),  # guitar
    4: Timbre(4, 1.8, 1.0),  # bass
    5: Timbre(10, 1.0, np.inf, 0.05),  # strings
    6: Timbre(10, 1.0, np.inf, 0.05),  # ensemble
    7: Timbre(10, 0.8, np.inf, 0.03),  # brass
    8: Timbre(9, 1.0, np.inf, 0.02, odd_harmonics_only=True),  # reed
    9: Timbre(2, 2.5, np.inf, 0.03),  # pipe
    10: Timbre(12, 1.0, np.inf),  # synth lead
    11: Timbre(6, 1.5, np.inf, 0.1),  # synth pad
}


def timbre_of(program):
    return _FAMILY_TIMBRES.get(int(program) // 8, _DEFAULT_TIMBRE)


def render_note_sequence(note_sequence, sample_rate=SAMPLE_RATE, duration=None, peak=0.8, seed=0):
    """Renders every note of `note_sequence` to mono float32 audio.

    Args:
        duration: output length in seconds (default: until the last note has died away).
        peak: the mix is scaled down to this peak if it is louder (never scaled up).
        seed: seeds the drum noise (the same input and seed give the same samples).
    """
    notes = list(note_sequence.notes)
    if duration is None:
        duration = max((note.end_time for note in notes), default=0.0) + RELEASE_SECONDS + 0.2
    audio = np.zeros(int(round(duration * sample_rate)), np.float64)
    rng = np.random.default_rng(seed)
    for note in notes:
        start = int(round(note.start_time * sample_rate))
        if start >= len(audio):
            continue
        gain = 0.3 * max(note.velocity, 1) / 127.0
        if note.is_drum:
            sound = _drum_hit(note.pitch, sample_rate, rng)
        else:
            sound = _tone(note, sample_rate)
        sound = sound[: len(audio) - start]
        audio[start : start + len(sound)] += gain * sound
    loudest = np.max(np.abs(audio), initial=0.0)
    if loudest > peak:
        audio *= peak / loudest
    return audio.astype(np.float32)


def _tone(note, sample_rate):
    timbre = timbre_of(note.program)
    held = max(note.end_time - note.start_time, 1.0 / sample_rate)
    t = np.arange(int((held + RELEASE_SECONDS) * sample_rate)) / sample_rate
    frequency = 440.0 * 2.0 ** ((note.pitch - 69) / 12.0)
    harmonics = np.arange(1, timbre.num_harmonics + 1)
    if timbre.odd_harmonics_only:
        harmonics = 2 * harmonics - 1
    harmonics = harmonics[harmonics * frequency < 0.45 * sample_rate]
    amplitudes = harmonics.astype(np.float64) ** -timbre.rolloff
    wave = np.sin(2.0 * np.pi * frequency * np.outer(t, harmonics)) @ amplitudes
    wave /= max(amplitudes.sum(), 1e-9)
    envelope = np.minimum(t / timbre.attack_seconds, 1.0) * np.exp(-t / timbre.decay_seconds)
    release = np.clip(1.0 - (t - held) / RELEASE_SECONDS, 0.0, 1.0)
    return wave * envelope * release


# GM drum pitches grouped by the sound they get.
_KICKS = {35, 36}
_SNARES = {37, 38, 39, 40}
_TOMS = {41, 43, 45, 47, 48, 50}
_CLOSED_HATS = {42, 44}
_CYMBALS = {46, 49, 51, 52, 53, 55, 57, 59}


def _drum_hit(pitch, sample_rate, rng):
    def seconds(length):
        return np.arange(int(length * sample_rate)) / sample_rate

    if pitch in _KICKS:
        t = seconds(0.15)
        sweep = 2.0 * np.pi * (50.0 * t + 60.0 * (1.0 - np.exp(-t / 0.03)) * 0.03)
        return np.sin(sweep) * np.exp(-t / 0.05)
    if pitch in _TOMS:
        t = seconds(0.25)
        frequency = 80.0 + 8.0 * (pitch - 41)
        return np.sin(2.0 * np.pi * frequency * t) * np.exp(-t / 0.08)
    if pitch in _SNARES:
        t = seconds(0.18)
        body = 0.5 * np.sin(2.0 * np.pi * 190.0 * t)
        return (body + rng.standard_normal(len(t))) * np.exp(-t / 0.04)
    if pitch in _CLOSED_HATS or pitch in _CYMBALS:
        t = seconds(0.06 if pitch in _CLOSED_HATS else 0.5)
        hiss = np.diff(rng.standard_normal(len(t) + 1))  # differencing tilts noise upwards
        return 0.6 * hiss * np.exp(-t / (0.015 if pitch in _CLOSED_HATS else 0.15))
    t = seconds(0.1)
    return rng.standard_normal(len(t)) * np.exp(-t / 0.03)
