import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from note_seq.protobuf import music_pb2

from keras_mt3.codec.detokenize import tokens_to_note_sequence
from keras_mt3.codec.event_codec import Event
from keras_mt3.codec.tokenize import (
    encode_note_sequence,
    note_sequence_to_segment_tokens,
    remove_redundant_state_changes,
    segment_tokens,
)
from keras_mt3.codec.vocabulary import ISMIR2021_VOCABULARY, MT3_VOCABULARY
from keras_mt3.errors import KerasMT3Error

pytestmark = pytest.mark.backend_independent

FRAME_TIMES_64 = np.arange(64) / 125  # 0.512 s of 8 ms frames


def piano_and_kick():
    ns = music_pb2.NoteSequence()
    ns.notes.add(pitch=60, program=0, start_time=0.01, end_time=0.50, velocity=80)
    ns.notes.add(pitch=36, program=0, start_time=0.25, end_time=0.30, velocity=100, is_drum=True)
    return ns


def test_hand_checked_mt3_tokens():
    """Model id = codec index + 3; codec offsets (docs/mt3_details.md#vocabulary, mt3): shift 0,
    pitch 1001, velocity 1129, tie 1131, program 1132, drum 1260."""
    encoded = encode_note_sequence(piano_and_kick(), FRAME_TIMES_64, "mt3")
    assert segment_tokens(encoded, 0, 64).tolist() == [
        1134,  # tie (codec 1131): empty tie section, nothing sounds before step 0
        4,  # shift 1 (codec 1): step 1 = 0.01 s
        1135,  # program 0 (codec 1132 + 0)
        1133,  # velocity bin 1 (codec 1129 + 1): ceil(1 * 80 / 127) = 1
        1064,  # pitch 60 (codec 1001 + 60): piano onset
        28,  # shift 25 (codec 25): 0.25 s, absolute within the segment
        1299,  # drum 36 (codec 1260 + 36); velocity bin 1 again, so no velocity token
        53,  # shift 50: 0.50 s
        1132,  # velocity 0 (codec 1129): note-off; program 0 unchanged, so no program token
        1064,  # pitch 60: piano offset
        1,  # EOS
    ]


def test_hand_checked_mt3_tokens_with_a_window_starting_mid_note():
    encoded = encode_note_sequence(piano_and_kick(), FRAME_TIMES_64, "mt3")
    # Frames [0, 32) end before 0.256 s: only the piano onset; trailing shifts are dropped.
    assert segment_tokens(encoded, 0, 32).tolist() == [1134, 4, 1135, 1133, 1064, 1]
    # Frame 32 starts at 0.256 s, so its first step is 25 (0.25 s): the kick at that very step
    # is in this segment at offset 0, and the sounding piano note is in the tie section.
    assert segment_tokens(encoded, 32, 64).tolist() == [
        1135,  # program 0
        1064,  # pitch 60: still sounding
        1134,  # tie
        1133,  # velocity 1: the first velocity of a segment is always written
        1299,  # drum 36 at step 25 + 0
        28,  # shift 25: 0.25 + 0.25 = 0.50 s
        1132,  # velocity 0 (program 0 is still current from the tie section)
        1064,  # pitch 60 off
        1,
    ]


def test_hand_checked_ismir2021_tokens():
    """ismir2021: 127 velocity bins (identity), no ties, programs dropped ('flat'). Codec
    offsets: velocity 1129, drum 1386."""
    tokens = note_sequence_to_segment_tokens(piano_and_kick(), 64, "ismir2021", 32)
    assert [t.tolist() for t in tokens] == [
        [4, 1212, 1064, 1],  # shift 1; velocity 80 (1129 + 80 + 3); pitch 60; EOS
        [1232, 1425, 28, 1132, 1064, 1],  # velocity 100; drum 36 (1386 + 36 + 3); shift 25;
        # velocity 0; pitch 60; EOS
    ]


def test_hand_checked_tokens_decode_back():
    tokens = note_sequence_to_segment_tokens(piano_and_kick(), 64, "mt3", 32)
    result = tokens_to_note_sequence(tokens, [0.0, 0.25], "mt3")
    notes = sorted(
        (n.pitch, n.is_drum, n.start_time, n.end_time) for n in result.note_sequence.notes
    )
    assert notes == [(36, True, 0.25, pytest.approx(0.26)), (60, False, 0.01, 0.5)]
    assert (result.num_invalid_events, result.num_dropped_events) == (0, 0)


def test_notes_at_time_zero_are_in_the_first_segment():
    ns = music_pb2.NoteSequence()
    ns.notes.add(pitch=60, start_time=0.0, end_time=0.004, velocity=50)  # 4 ms: offset at step 0
    ns.notes.add(pitch=61, start_time=0.0, end_time=0.02, velocity=50)
    tokens = note_sequence_to_segment_tokens(ns, 10, "mt3")[0].tolist()
    # tie; onsets at step 0 need no shift.
    assert tokens[:5] == [1134, 1135, 1133, 1064, 1065]


def test_same_step_events_are_offsets_then_onsets_by_program_and_pitch():
    ns = music_pb2.NoteSequence()
    ns.notes.add(pitch=50, program=33, start_time=0.0, end_time=0.1, velocity=100)
    ns.notes.add(pitch=62, program=0, start_time=0.1, end_time=0.2, velocity=100)
    ns.notes.add(pitch=40, program=33, start_time=0.1, end_time=0.2, velocity=100)
    ns.notes.add(pitch=38, program=0, start_time=0.1, end_time=0.2, velocity=100, is_drum=True)
    tokens = note_sequence_to_segment_tokens(ns, 64, "mt3")[0].tolist()
    program = lambda p: 1135 + p
    pitch = lambda p: 1004 + p
    assert tokens[: tokens.index(13)] == [1134, program(33), 1133, pitch(50)]
    at_step_10 = tokens[tokens.index(13) + 1 : tokens.index(23)]
    assert at_step_10 == [
        1132, pitch(50),  # offset of program 33 pitch 50 (program 33 still current)
        program(0), 1133, pitch(62),  # onsets: program 0 ...
        program(33), pitch(40),  # ... then program 33 ...
        1263 + 38,  # ... then drums
    ]


def test_sustain_pedal_is_applied_before_encoding():
    ns = music_pb2.NoteSequence()
    ns.notes.add(pitch=60, start_time=0.1, end_time=0.2, velocity=100)
    ns.control_changes.add(time=0.0, control_number=64, control_value=127)
    ns.control_changes.add(time=0.4, control_number=64, control_value=0)
    tokens = note_sequence_to_segment_tokens(ns, 64, "mt3")
    (note,) = tokens_to_note_sequence(tokens, [0.0], "mt3").note_sequence.notes
    assert (note.start_time, note.end_time) == (0.1, 0.4)
    assert ns.notes[0].end_time == 0.2  # the input is left alone


def test_last_segment_holds_events_after_the_audio():
    ns = music_pb2.NoteSequence()
    ns.notes.add(pitch=60, start_time=0.1, end_time=30.0, velocity=100)
    tokens = note_sequence_to_segment_tokens(ns, 100, "mt3", 64)
    assert len(tokens) == 2 and len(tokens[1]) > 3
    # Second segment: frame 64 = 0.512 s -> step 51; the offset at step 3000 is 2949 steps in.
    assert tokens[1].tolist()[-6:] == [3 + 1000, 3 + 1000, 3 + 949, 1132, 1064, 1]
    (note,) = tokens_to_note_sequence(tokens, [0.0, 0.51], "mt3").note_sequence.notes
    assert note.end_time == pytest.approx(30.0)


def test_empty_note_sequence_gives_tie_and_eos():
    tokens = note_sequence_to_segment_tokens(music_pb2.NoteSequence(), 300, "mt3")
    assert [t.tolist() for t in tokens] == [[1134, 1], [1134, 1]]
    tokens = note_sequence_to_segment_tokens(music_pb2.NoteSequence(), 300, "ismir2021")
    assert [t.tolist() for t in tokens] == [[1]]


def test_redundant_velocity_and_program_tokens_are_removed():
    codec = MT3_VOCABULARY.codec
    e = lambda kind, value: codec.encode_event(Event(kind, value))
    events = [e("program", 0), e("pitch", 60), e("program", 0), e("pitch", 64), e("tie", 0),
              e("velocity", 1), 1, e("program", 0), e("velocity", 1), e("pitch", 65),
              e("program", 5), e("velocity", 0), e("pitch", 60)]
    assert remove_redundant_state_changes(events, codec, ("velocity", "program")).tolist() == [
        e("program", 0), e("pitch", 60), e("pitch", 64), e("tie", 0), e("velocity", 1), 1,
        e("pitch", 65), e("program", 5), e("velocity", 0), e("pitch", 60)
    ]


def sounding_notes_from_tie_section(tokens):
    """(program, pitch) pairs named by the tie section of mt3 model ids."""
    named, program = [], None
    for token in tokens[: tokens.index(1134)]:
        if 1135 <= token <= 1262:
            program = token - 1135
        else:
            named.append((program, token - 1004))
    return named


@settings(max_examples=100, deadline=None)
@given(
    notes=st.lists(
        st.tuples(st.integers(55, 60), st.sampled_from([0, 33]), st.integers(0, 600),
                  st.integers(1, 400)),
        max_size=12,
    ),
    start_frame=st.integers(0, 99),
    stale_final_ties=st.booleans(),
)
def test_a_window_at_any_frame_names_the_notes_sounding_before_its_first_step(
    notes, start_frame, stale_final_ties
):
    ns = music_pb2.NoteSequence()
    for pitch, program, start_ms, duration_ms in notes:
        ns.notes.add(pitch=pitch, program=program, start_time=start_ms / 1000,
                     end_time=(start_ms + duration_ms) / 1000, velocity=100)
    encoded = encode_note_sequence(ns, np.arange(100) / 125, "mt3", stale_final_ties)
    tokens = segment_tokens(encoded, start_frame, 100).tolist()
    first_step = 4 * start_frame // 5  # floor(100 * frame / 125)
    # The encoder's state is keyed by (pitch, program). Events are ordered by their unrounded
    # times (offsets first at equal times); the window's tie section is the state after every
    # event whose rounded step is before its first step. MT3 records no state after the last
    # event's step, so a window starting later gets the state before that step's events.
    last_step = max((round((start + duration) / 10) for _, _, start, duration in notes),
                    default=first_step)
    if stale_final_ties:
        first_step = min(first_step, last_step)
    expected = set()
    for key in {(program, pitch) for pitch, program, _, _ in notes}:
        events = []
        for pitch, program, start_ms, duration_ms in notes:
            if (program, pitch) == key:
                events.append(((start_ms + duration_ms) / 1000, False))
                events.append((start_ms / 1000, True))
        sounding = False
        for time, is_onset in sorted(events):
            if round(time * 100) >= first_step:
                break
            sounding = is_onset
        if sounding:
            expected.add(key)
    named = sounding_notes_from_tie_section(tokens)
    assert named == sorted(expected)


def test_model_windows_may_start_at_any_frame_offset():
    encoded = encode_note_sequence(piano_and_kick(), FRAME_TIMES_64, "mt3")
    for start in range(64):
        tokens = segment_tokens(encoded, start, min(start + 16, 64))
        assert tokens[-1] == 1 and tokens.dtype == np.int32


def test_bad_windows_and_mismatched_vocabularies_raise():
    encoded = encode_note_sequence(piano_and_kick(), FRAME_TIMES_64, "mt3")
    for start, end in [(5, 5), (-1, 3), (0, 65)]:
        with pytest.raises(KerasMT3Error, match="frame window"):
            segment_tokens(encoded, start, end)
    with pytest.raises(KerasMT3Error, match="encoded with vocabulary 'mt3'"):
        segment_tokens(encoded, 0, 64, ISMIR2021_VOCABULARY)


@pytest.mark.parametrize(
    "note, message",
    [
        ({"pitch": 128}, "pitch"),
        ({"program": 200}, "program"),
        ({"velocity": 0}, "velocity"),
        ({"start_time": 0.5, "end_time": 0.5}, "start_time >= end_time"),
        ({"start_time": -0.1}, "negative"),
    ],
)
def test_unencodable_notes_raise_a_clear_error(note, message):
    ns = music_pb2.NoteSequence()
    ns.notes.add(**{"pitch": 60, "velocity": 100, "start_time": 0.0, "end_time": 1.0, **note})
    with pytest.raises(KerasMT3Error, match=message):
        encode_note_sequence(ns, FRAME_TIMES_64, "mt3")


def test_bad_frame_times_raise():
    for frame_times in ([], [0.1, 0.0]):
        with pytest.raises(KerasMT3Error, match="frame_times"):
            encode_note_sequence(piano_and_kick(), frame_times, "mt3")
