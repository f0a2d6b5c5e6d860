import numpy as np
import pytest

from keras_mt3.constants import SAMPLE_RATE as RATE
from keras_mt3.data.synth import render_note_sequence
from keras_mt3.data.synthetic import random_note_sequence, synthetic_pairs

pytestmark = pytest.mark.backend_independent


def rms(audio, start, end):
    return float(np.sqrt(np.mean(audio[int(start * RATE) : int(end * RATE)] ** 2)))


def test_pitched_note_sounds_at_its_pitch_only_while_it_lasts(make_sequence):
    audio = render_note_sequence(make_sequence([(69, 0.5, 1.0)]), duration=2.0)
    assert audio.dtype == np.float32 and len(audio) == 2 * RATE
    assert rms(audio, 0.0, 0.49) == 0.0
    assert rms(audio, 0.55, 0.95) > 0.01
    assert rms(audio, 1.1, 2.0) < 1e-6  # released within 50 ms
    spectrum = np.abs(np.fft.rfft(audio[int(0.55 * RATE) : int(0.95 * RATE)]))
    peak_hz = np.argmax(spectrum) * RATE / (0.4 * RATE)
    assert abs(peak_hz - 440.0) < 5.0


def test_programs_sound_different_and_drums_make_noise(make_sequence):
    piano = render_note_sequence(make_sequence([(60, 0.1, 0.6, 100, 0)]), duration=1.0)
    organ = render_note_sequence(make_sequence([(60, 0.1, 0.6, 100, 16)]), duration=1.0)
    assert not np.allclose(piano, organ, atol=1e-3)
    for drum in (36, 38, 42, 49, 45, 60):
        hit = render_note_sequence(make_sequence([(drum, 0.1, 0.15, 100, 0, True)]), duration=1.0)
        assert rms(hit, 0.1, 0.15) > 0.005, drum
        assert rms(hit, 0.0, 0.09) == 0.0


def test_rendering_is_deterministic_and_limited_to_the_peak(make_sequence):
    loud = make_sequence([(pitch, 0.0, 1.0) for pitch in range(48, 80)] + [(38, 0.2, 0.3, 100, 0, True)])
    first = render_note_sequence(loud, peak=0.5, seed=3)
    np.testing.assert_array_equal(first, render_note_sequence(loud, peak=0.5, seed=3))
    assert np.max(np.abs(first)) == pytest.approx(0.5, rel=1e-5)


def test_random_note_sequences_stay_on_the_codec_grid_and_in_range():
    rng = np.random.default_rng(0)
    sequence = random_note_sequence(
        rng, 4.0, programs=(0, 33), pitch_range=(40, 50), drum_pitches=(36,), drum_hits_per_second=3
    )
    pitched = [note for note in sequence.notes if not note.is_drum]
    drums = [note for note in sequence.notes if note.is_drum]
    assert pitched and drums
    for note in pitched:
        assert 40 <= note.pitch <= 50 and note.program in (0, 33)
        assert 0.01 <= note.start_time < note.end_time <= 4.0
        assert abs(note.start_time * 100 - round(note.start_time * 100)) < 1e-6
    assert {note.pitch for note in drums} == {36}


def test_synthetic_pairs_hold_rendered_audio_of_the_requested_length():
    pairs = synthetic_pairs(3, 1.5, seed=2, programs=(0,))
    assert [pair.name for pair in pairs] == [f"synthetic_{i:05d}" for i in range(3)]
    for pair in pairs:
        assert pair.audio.shape == (24000,) and pair.sample_rate == RATE
        assert len(pair.notes.notes) >= 1
    again = synthetic_pairs(3, 1.5, seed=2, programs=(0,))
    np.testing.assert_array_equal(pairs[1].audio, again[1].audio)
