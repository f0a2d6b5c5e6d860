import json

import numpy as np
import pytest
from hypothesis import given, settings
from helpers import assert_same_notes, reference_notes
from hypothesis import strategies as st
from note_seq.protobuf import music_pb2

from keras_mt3.codec.detokenize import (
    DetokenizeResult,
    codec_events_to_note_sequence,
    tokens_to_note_sequence,
)
from keras_mt3.codec.vocabulary import ISMIR2021_VOCABULARY, MT3_VOCABULARY
from keras_mt3.errors import KerasMT3Error

pytestmark = pytest.mark.backend_independent

# Invalid events per clip: the original's decoding of its reference files has 19, 48 and 31,
# all of them tie-section pitches or note-offs of notes not sounding (see
# docs/mt3_details.md#decoding-tokens); these two clips are the ones with 19 and 31.
REFERENCE_INVALID_COUNTS = {"piano_chorale": 19, "multi_band": 31}
REFERENCE_CLIPS = tuple(REFERENCE_INVALID_COUNTS)


def note_tuples(notes):
    return sorted(
        (n.pitch, n.program, n.is_drum, n.velocity, n.start_time, n.end_time) for n in notes
    )


@pytest.mark.parametrize("clip", REFERENCE_CLIPS)
def test_reference_tokens_decode_to_the_reference_notes(reference_dir, clip):
    reference = json.loads((reference_dir / f"{clip}.json").read_text())
    segments = reference["segments"]
    start_times = [segment["start_time"] for segment in segments]
    expected = reference_notes(reference_dir, clip)

    from_codec = codec_events_to_note_sequence(
        [segment["codec_event_ids"] for segment in segments], start_times, MT3_VOCABULARY
    )
    from_model_ids = tokens_to_note_sequence(
        [segment["model_vocab_ids"] for segment in segments], start_times, "mt3"
    )
    for result in (from_codec, from_model_ids):
        assert isinstance(result, DetokenizeResult)
        assert_same_notes(result.note_sequence, expected, atol=1e-6)
        assert result.num_dropped_events == 0
        assert result.num_invalid_events == REFERENCE_INVALID_COUNTS[clip]
    assert len(expected) == reference["num_notes"]
    # Every id is a regular token, so the invalid events come from the decoding rules.
    num_classes = MT3_VOCABULARY.num_classes
    assert all(0 <= i < num_classes for segment in segments for i in segment["codec_event_ids"])


def test_reference_tokens_as_padded_model_output(reference_dir):
    """Rows as the decoder returns them: EOS then PAD; segments given out of time order."""
    reference = json.loads((reference_dir / "piano_chorale.json").read_text())
    segments = reference["segments"]
    width = max(len(segment["model_vocab_ids"]) for segment in segments) + 5
    rows = np.zeros((len(segments), width), np.int32)
    for row, segment in zip(rows, segments):
        row[: len(segment["model_vocab_ids"])] = segment["model_vocab_ids"]
    order = np.random.default_rng(0).permutation(len(segments))
    start_times = np.array([segment["start_time"] for segment in segments])[order]
    result = tokens_to_note_sequence(rows[order], start_times, "mt3")
    expected = reference_notes(reference_dir, "piano_chorale")
    assert_same_notes(result.note_sequence, expected, atol=1e-6)


def test_decoded_instruments_put_drums_on_channel_9(reference_dir):
    reference = json.loads((reference_dir / "multi_band.json").read_text())
    segments = reference["segments"]
    result = tokens_to_note_sequence(
        [s["model_vocab_ids"] for s in segments], [s["start_time"] for s in segments], "mt3"
    )
    notes = result.note_sequence.notes
    assert {n.instrument for n in notes if n.is_drum} == {9}
    by_program = {}
    for note in notes:
        if not note.is_drum:
            by_program.setdefault(note.program, set()).add(note.instrument)
    assert all(len(instruments) == 1 for instruments in by_program.values())
    assert 9 not in set().union(*by_program.values())


# ---- malformed streams ----------------------------------------------------------------------

SHIFT = lambda steps: 3 + steps
PITCH = lambda pitch: 1004 + pitch
VELOCITY = lambda velocity_bin: 1132 + velocity_bin
TIE, PROGRAM_0 = 1134, 1135


def test_invalid_events_are_counted_and_skipped():
    tokens = [
        PROGRAM_0, PITCH(60), TIE,  # tie section naming a note that is not sounding: 1 invalid
        0, 2, 1400, 1490, 1535, 5000, -3,  # PAD, UNK, extra ids, past the embedding, negative: 7
        SHIFT(10), VELOCITY(1), PITCH(61),
        SHIFT(5), PITCH(62),  # time going backwards: 1 invalid (the shift itself is fine)
        SHIFT(20), VELOCITY(0), PITCH(63),  # offset of an inactive note: 1 invalid
        PITCH(61),
        TIE,  # tie outside the tie section: 1 invalid
        1, PITCH(70),  # EOS: the rest is ignored
    ]
    result = tokens_to_note_sequence([tokens], [1.0], "mt3")
    assert result.num_invalid_events == 11
    assert note_tuples(result.note_sequence.notes) == [(61, 0, False, 127, 1.1, 1.2)]


def test_shifts_past_the_next_segment_are_dropped():
    first = [TIE, SHIFT(10), VELOCITY(1), PITCH(60), SHIFT(204), PITCH(61), SHIFT(205), PITCH(62),
             VELOCITY(0), PITCH(60)]
    second = [TIE]
    result = tokens_to_note_sequence([first, second], [0.0, 2.04], "mt3")
    # shift 204 lands exactly on the next start (kept: the test is strict '>'); shift 205 drops
    # itself and the 3 tokens after it. The second segment's tie section ends both notes.
    assert result.num_dropped_events == 4
    assert note_tuples(result.note_sequence.notes) == [
        (60, 0, False, 127, 0.1, 2.04), (61, 0, False, 127, 2.04, pytest.approx(2.05))
    ]


def test_state_carries_across_segments():
    first = [TIE, SHIFT(10), PROGRAM_0 + 33, VELOCITY(1), PITCH(40)]
    second = [PROGRAM_0 + 33, PITCH(40), TIE, SHIFT(3), VELOCITY(0), PITCH(40)]
    result = tokens_to_note_sequence([first, second], [0.0, 2.04], "mt3")
    assert note_tuples(result.note_sequence.notes) == [(40, 33, False, 127, 0.1, 2.07)]
    assert result.num_invalid_events == 0


def test_ismir2021_has_no_tie_sections():
    # Without ties, notes stay open across segments with no declaration; a tie is invalid.
    first = [SHIFT(1), VELOCITY(80), PITCH(60)]
    second = [1260, SHIFT(2), VELOCITY(0), PITCH(60)]
    result = tokens_to_note_sequence([first, second], [0.0, 4.09], ISMIR2021_VOCABULARY)
    assert result.num_invalid_events == 1
    expected = [(60, 0, False, 80, 0.01, pytest.approx(4.11))]
    assert note_tuples(result.note_sequence.notes) == expected


@pytest.mark.parametrize(
    "segments",
    [
        [],
        [[]],
        [[1]],
        [None],
        [np.zeros(0, np.int64)],
        [[3.0, 1004.0, 1.5, float("nan"), float("inf"), "x", [1]]],
        [5],
        [[2**80, -(2**80), np.int64(2**62)]],
        [np.array([[1135, 1004], [1133, 1]])],
    ],
)
def test_odd_inputs_never_raise(segments):
    result = tokens_to_note_sequence(segments, [0.0] * len(segments), "mt3")
    assert isinstance(result.note_sequence, music_pb2.NoteSequence)
    assert result.num_invalid_events >= 0 and result.num_dropped_events >= 0


def test_mismatched_start_times_raise_a_clear_error():
    with pytest.raises(KerasMT3Error, match="start times"):
        tokens_to_note_sequence([[1], [1]], [0.0], "mt3")


def before_eos(model_ids):
    return model_ids[: model_ids.index(1)] if 1 in model_ids else model_ids


def token_ids(vocabulary):
    regular = st.integers(3, 3 + vocabulary.num_classes - 1)
    small_shifts = st.integers(3, 3 + 300)
    note_tokens = st.integers(1004, 1004 + 127 + 400)  # pitches, velocities, tie, programs
    anything = st.integers(-(2**40), 2**40)
    return st.one_of(regular, small_shifts, note_tokens, note_tokens, st.integers(-3, 1700),
                     anything)


def undecodable_ids(vocabulary):
    """PAD, UNK, extra ids, ids past the embedding and negative ids: never a codec event."""
    first_extra = 3 + vocabulary.num_classes
    return st.sampled_from([0, 2, first_extra, first_extra + 99, 5000, -3, 2**40])


def result_tuple(result):
    notes = [(n.pitch, n.program, n.is_drum, n.velocity, round(n.start_time, 9),
              round(n.end_time, 9), n.instrument) for n in result.note_sequence.notes]
    return sorted(notes), result.num_invalid_events, result.num_dropped_events


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    vocabulary=st.sampled_from([MT3_VOCABULARY, ISMIR2021_VOCABULARY]),
    num_segments=st.integers(0, 5),
)
def test_random_token_streams_never_raise_and_follow_the_decoding_rules(
    data, vocabulary, num_segments
):
    segments = data.draw(st.lists(st.lists(token_ids(vocabulary), max_size=60),
                                  min_size=num_segments, max_size=num_segments))
    start_times = data.draw(st.lists(st.sampled_from([0.0, 0.5, 2.04, 4.09]) | st.floats(0, 50),
                                     min_size=num_segments, max_size=num_segments))
    result = tokens_to_note_sequence(segments, start_times, vocabulary)
    notes, num_invalid, num_dropped = result_tuple(result)
    num_tokens = sum(len(before_eos(s)) for s in segments)
    assert num_invalid + num_dropped <= num_tokens
    for note in result.note_sequence.notes:
        assert 0 <= note.pitch <= 127 and 0 <= note.program <= 127
        assert note.end_time >= note.start_time + 0.01 - 1e-9
        assert note.instrument == 9 if note.is_drum else note.instrument != 9
        if note.is_drum:
            assert note.program == 0
    if not segments:
        return

    # Everything from an EOS on is ignored.
    tail = data.draw(st.lists(token_ids(vocabulary), max_size=10))
    with_tail = [[*s, 1, *tail] for s in segments]
    assert result_tuple(tokens_to_note_sequence(with_tail, start_times, vocabulary)) == (
        notes, num_invalid, num_dropped
    )

    # An undecodable id is one skipped token: it neither moves time nor touches the state.
    # It counts as invalid, or as dropped when it lands after a shift past the next segment.
    segment = data.draw(st.integers(0, num_segments - 1))
    kept = before_eos(segments[segment])
    position = data.draw(st.integers(0, len(kept)))
    bad_id = data.draw(undecodable_ids(vocabulary))
    spoiled = list(segments)
    spoiled[segment] = [*kept[:position], bad_id, *kept[position:]]
    spoiled_notes, spoiled_invalid, spoiled_dropped = result_tuple(
        tokens_to_note_sequence(spoiled, start_times, vocabulary)
    )
    assert spoiled_notes == notes
    assert spoiled_invalid + spoiled_dropped == num_invalid + num_dropped + 1
    assert spoiled_invalid - num_invalid in (0, 1)

    # Segments are decoded in order of start time, whatever order they are given in.
    if len(set(start_times)) == num_segments:
        order = data.draw(st.permutations(range(num_segments)))
        shuffled = tokens_to_note_sequence(
            [segments[i] for i in order], [start_times[i] for i in order], vocabulary
        )
        assert result_tuple(shuffled) == (notes, num_invalid, num_dropped)
