"""Random NoteSequences rendered with the toy synthesizer: training data that needs no download."""

import numpy as np
from note_seq.protobuf import music_pb2

from keras_mt3.constants import DEFAULT_VELOCITY, SAMPLE_RATE
from keras_mt3.data.pairs import TranscriptionPair
from keras_mt3.data.synth import render_note_sequence

# GM drum notes the synthesizer voices distinctly: kick, snare, closed hi-hat, low tom, crash.
DEFAULT_DRUM_PITCHES = (36, 38, 42, 45, 49)


def random_note_sequence(
    rng,
    duration,
    programs=(0,),
    notes_per_second=4.0,
    pitch_range=(36, 84),
    note_seconds=(0.1, 0.8),
    drum_pitches=(),
    drum_hits_per_second=0.0,
    velocity=DEFAULT_VELOCITY,
    min_notes=1,
):
    """A NoteSequence of random notes within `[0, duration)` seconds.

    Onsets are uniform in time (Poisson counts), each pitched note gets a random program from
    `programs`, a pitch in `pitch_range` (inclusive) and a length in `note_seconds`, cut at
    `duration`; there are at least `min_notes` of them. Drum hits use `drum_pitches`. Onsets
    fall on the 10 ms grid of MT3's codec so targets decode back to exactly these notes.
    """
    sequence = music_pb2.NoteSequence(ticks_per_quarter=220)
    sequence.tempos.add(qpm=120.0)

    def onsets(rate, min_count=0):
        count = max(rng.poisson(rate * duration), min_count)
        # Step 0 (t < 5 ms) belongs to no segment in MT3's codec, so start at 10 ms.
        return np.round(np.sort(rng.uniform(0.01, duration - 0.02, count)), 2)

    for onset in onsets(notes_per_second, min_notes) if programs else ():
        length = rng.uniform(*note_seconds)
        end = float(min(np.round(onset + length, 2), duration))
        if end <= onset:
            continue
        sequence.notes.add(
            pitch=int(rng.integers(pitch_range[0], pitch_range[1] + 1)),
            velocity=velocity,
            program=int(rng.choice(programs)),
            start_time=float(onset),
            end_time=end,
        )
    for onset in onsets(drum_hits_per_second) if drum_pitches else ():
        sequence.notes.add(
            pitch=int(rng.choice(drum_pitches)),
            velocity=velocity,
            is_drum=True,
            start_time=float(onset),
            end_time=float(onset) + 0.05,
        )
    sequence.total_time = max((note.end_time for note in sequence.notes), default=0.0)
    return sequence


def synthetic_pairs(
    num_pairs, duration, seed=0, name_prefix="synthetic", split=None, **note_options
):
    """`num_pairs` rendered `TranscriptionPair`s of `duration` seconds each.

    `note_options` go to `random_note_sequence`. The audio lasts exactly `duration`.
    """
    rng = np.random.default_rng(seed)
    pairs = []
    for index in range(num_pairs):
        notes = random_note_sequence(rng, duration, **note_options)
        audio = render_note_sequence(notes, duration=duration, seed=seed * 100003 + index)
        pairs.append(
            TranscriptionPair(
                name=f"{name_prefix}_{index:05d}",
                audio=audio,
                notes=notes,
                dataset=name_prefix,
                split=split,
                sample_rate=SAMPLE_RATE,
            )
        )
    return pairs
