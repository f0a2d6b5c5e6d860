"""Property: NoteSequence -> segment tokens -> NoteSequence gives the same notes, quantized.

Events are ordered by their unrounded times (offsets first at equal times) and only then
rounded to 10 ms steps. What the token grammar cannot carry, and so what the generated data
avoids or expects:

- Two notes with the same key overlapping in (unrounded) time: the only case left out of the
  generated data. Encoder and decoder keep one sounding note per key, so the second onset would
  end the first note early and the first offset would end the second. The key is (pitch,
  program after the granularity map): pitch alone for 'flat' (ismir2021), whose program tokens
  are dropped. Notes that merely touch are fine, since offsets come first at equal times.
- Times are quantized to steps (Python's round of t * 100) and decoded notes last at least one
  step. A note shorter than a step is still representable (its onset precedes its offset even
  inside one step) and is kept in the data: it decodes as one step long.
- Drums are onsets only: they decode as one-step notes with program 0.
- Velocities go through the vocabulary's bins (mt3: one bin, so 127).
- Programs go through the granularity map (ismir2021: all 0).

Notes at t = 0 are generated on purpose: a segment holds the events at its own first step (at
offset 0, before any shift), so events at step 0 are in the first segment and nothing is lost.

MT3's stale tie sections (segments starting after the last event's step name the notes that
ended at that step) cost no note: the decoder counts each such name as one invalid event.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from note_seq.protobuf import music_pb2

from keras_mt3.codec.detokenize import tokens_to_note_sequence
from keras_mt3.codec.tokenize import (
    encode_note_sequence,
    note_sequence_to_segment_tokens,
    segment_tokens,
)
from keras_mt3.codec.vocabulary import (
    ISMIR2021_VOCABULARY,
    MT3_VOCABULARY,
    VocabularyConfig,
    bin_to_velocity,
    velocity_to_bin,
)
from keras_mt3.constants import FRAMES_PER_SECOND

pytestmark = pytest.mark.backend_independent

CONFIGS = [
    MT3_VOCABULARY,
    ISMIR2021_VOCABULARY,
    VocabularyConfig(num_velocity_bins=4, program_granularity="midi_class", use_ties=True,
                     input_frames=64),
]

NOTE = st.tuples(
    st.integers(58, 63),  # pitch: a narrow range, so same-pitch notes meet often
    st.sampled_from([0, 1, 33, 73]),  # program: 0 and 1 share a MIDI class
    st.integers(0, 4).map(lambda draw: draw == 0),  # is_drum, about one note in five
    st.one_of(st.just(0), st.integers(0, 400), st.integers(0, 12000)),  # start (ms)
    st.one_of(st.integers(1, 30), st.integers(1, 3000)),  # duration (ms)
    st.integers(1, 127),  # velocity
)


def representable_notes(specs, vocabulary):
    """The specs minus notes overlapping an earlier kept note of the same key."""
    program_map = vocabulary.granularity.program_map_fn
    kept, intervals = [], {}
    for pitch, program, is_drum, start_ms, duration_ms, velocity in specs:
        start, end = start_ms / 1000, (start_ms + duration_ms) / 1000
        if not is_drum:
            key = (pitch, program_map(program))
            if any(start < other_end and other_start < end
                   for other_start, other_end in intervals.get(key, [])):
                continue
            intervals.setdefault(key, []).append((start, end))
        kept.append((pitch, program, is_drum, start, end, velocity))
    return kept


def expected_notes(notes, vocabulary):
    bins = vocabulary.num_velocity_bins
    expected = []
    for pitch, program, is_drum, start, end, velocity in notes:
        onset, offset = round(start * 100), round(end * 100)
        velocity = bin_to_velocity(velocity_to_bin(velocity, bins), bins)
        if is_drum:
            expected.append((pitch, 0, True, onset, onset + 1, velocity))
        else:
            program = vocabulary.granularity.program_map_fn(program)
            expected.append((pitch, program, False, onset, max(offset, onset + 1), velocity))
    return sorted(expected)


def decoded_notes(note_sequence):
    decoded = []
    for note in note_sequence.notes:
        for time in (note.start_time, note.end_time):
            assert abs(time * 100 - round(time * 100)) < 1e-6  # on the 10 ms grid
        decoded.append((note.pitch, note.program, note.is_drum, round(note.start_time * 100),
                        round(note.end_time * 100), note.velocity))
    return sorted(decoded)


def stale_tie_names(notes, starts):
    """How many tie-section names MT3's stale state adds to the segments starting at `starts`:
    each segment starting after the last event's step names the non-drum notes that ended at
    that step (their onsets came earlier)."""
    steps = [round(start * 100) for *_, start, _, _ in notes]
    steps += [round(end * 100) for _, _, is_drum, _, end, _ in notes if not is_drum]
    if not steps:
        return 0
    last = max(steps)
    ended = {
        (pitch, program)
        for pitch, program, is_drum, start, end, _ in notes
        if not is_drum and round(start * 100) < last == round(end * 100)
    }
    return len(ended) * sum(first_step(frame) > last for frame in starts)


def first_step(frame):
    # floor(100 * frame / 125) exactly: the step a segment starting at this frame begins at.
    return 4 * frame // 5


@pytest.mark.parametrize("vocabulary", CONFIGS, ids=lambda config: config.name)
@settings(max_examples=120, deadline=None)
@given(
    specs=st.lists(NOTE, max_size=25),
    num_frames=st.integers(1, 700),
    cut_frames=st.lists(st.integers(1, 699), max_size=6),
    regular_segments=st.booleans(),
    frames_per_segment=st.sampled_from([1, 7, 64, 256]),
    stale_final_ties=st.booleans(),
)
def test_encode_then_decode_gives_the_notes_back(
    vocabulary, specs, num_frames, cut_frames, regular_segments, frames_per_segment,
    stale_final_ties,
):
    notes = representable_notes(specs, vocabulary)
    ns = music_pb2.NoteSequence()
    for pitch, program, is_drum, start, end, velocity in notes:
        ns.notes.add(pitch=pitch, program=program, is_drum=is_drum, start_time=start,
                     end_time=end, velocity=velocity)

    if regular_segments:
        # As at inference: consecutive windows of a fixed size.
        tokens = note_sequence_to_segment_tokens(
            ns, num_frames, vocabulary, frames_per_segment, stale_final_ties
        )
        starts = list(range(0, num_frames, frames_per_segment))
    else:
        # Windows starting at arbitrary frames, as training crops do.
        starts = sorted({0} | {frame for frame in cut_frames if frame < num_frames})
        encoded = encode_note_sequence(
            ns, np.arange(num_frames) / FRAMES_PER_SECOND, vocabulary, stale_final_ties
        )
        ends = starts[1:] + [num_frames]
        tokens = [segment_tokens(encoded, start, end) for start, end in zip(starts, ends)]

    start_times = [first_step(frame) / 100 for frame in starts]
    result = tokens_to_note_sequence(tokens, start_times, vocabulary)
    assert decoded_notes(result.note_sequence) == expected_notes(notes, vocabulary)
    expected_invalid = 0
    if stale_final_ties and vocabulary.use_ties:
        expected_invalid = stale_tie_names(notes, starts)
    assert (result.num_invalid_events, result.num_dropped_events) == (expected_invalid, 0)
    for segment in tokens:
        assert segment[-1] == 1 and 1 not in segment[:-1].tolist()
        assert (segment[:-1] >= 3).all()  # no special ids inside a segment
        assert segment.max() < vocabulary.vocab_size - 100  # never an extra id


def test_first_step_is_the_encoders_frame_to_step_rule():
    # A frame at time t starts at the smallest step s with t < (s + 1) / 100.
    for frame in range(5000):
        time, step = frame / FRAMES_PER_SECOND, first_step(frame)
        assert time < (step + 1) / 100 and not time < step / 100
