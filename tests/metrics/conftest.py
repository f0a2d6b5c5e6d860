import numpy as np
import pytest
from helpers import note_sequence


@pytest.fixture(scope="session")
def make_sequence():
    return note_sequence


def played_notes(seed, count, seconds):
    """`(reference, estimate)` note tuples like a transcription's: `count` reference notes over
    `seconds` on three programs and drums; the estimate misses a tenth of them, moves onsets by
    about 30 ms, stretches lengths by up to 30 %, jitters velocities and adds a tenth more."""
    rng = np.random.default_rng(seed)

    def note(pitch, onset, duration, velocity):
        is_drum = pitch < 36
        return (pitch, onset, onset + duration, velocity, 0 if is_drum else program(pitch), is_drum)

    def program(pitch):
        return (0, 33, 40)[pitch % 3]

    reference = [
        note(int(rng.integers(21, 109)), onset, rng.uniform(0.05, 2.0), int(rng.integers(1, 128)))
        for onset in np.sort(rng.uniform(0, seconds, count))
    ]
    estimate = [
        note(
            pitch,
            max(0.0, onset + rng.normal(0, 0.03)),
            (offset - onset) * rng.uniform(0.7, 1.3),
            int(np.clip(velocity + rng.normal(0, 10), 1, 127)),
        )
        for pitch, onset, offset, velocity, _, _ in reference
        if rng.random() >= 0.1
    ]
    estimate += [
        note(int(rng.integers(21, 109)), onset, 0.5, 100)
        for onset in rng.uniform(0, seconds, count // 10)
    ]
    return reference, estimate


@pytest.fixture(scope="session")
def make_played_notes():
    return played_notes
