import pytest
from note_seq.protobuf import music_pb2

from keras_mt3.codec import note_encoding
from keras_mt3.codec.event_codec import Event
from keras_mt3.codec.note_encoding import (
    NoteDecodingState,
    NoteEncodingState,
    assign_instruments,
    begin_tie_section,
    decode_note_event,
    flush_note_decoding_state,
    note_event_to_events,
    note_sequence_to_note_events,
    tie_section_events,
)
from keras_mt3.codec.vocabulary import MT3_VOCABULARY, VocabularyConfig

pytestmark = pytest.mark.backend_independent

CODEC = MT3_VOCABULARY.codec


def notes_of(state):
    return [
        (n.pitch, n.program, n.is_drum, round(n.start_time, 6), round(n.end_time, 6), n.velocity)
        for n in state.note_sequence.notes
    ]


def apply(state, time, *events):
    return [decode_note_event(state, time, Event(*event), CODEC) for event in events]


def test_offsets_come_before_onsets_and_notes_are_ordered():
    ns = music_pb2.NoteSequence()
    ns.notes.add(pitch=62, program=5, start_time=0.0, end_time=1.0, velocity=90)
    ns.notes.add(pitch=36, program=3, start_time=0.5, end_time=0.6, velocity=80, is_drum=True)
    ns.notes.add(pitch=60, program=5, start_time=0.2, end_time=0.5, velocity=70)
    times, values = note_sequence_to_note_events(ns)
    # Non-drum offsets first (by program, pitch), then all onsets (non-drum before drum).
    assert times == [0.5, 1.0, 0.2, 0.0, 0.5]
    assert [(v.pitch, v.velocity, v.is_drum) for v in values] == [
        (60, 0, False), (62, 0, False), (60, 70, False), (62, 90, False), (36, 80, True)
    ]


def test_note_events_and_tie_section():
    state = NoteEncodingState()
    onset = note_encoding.NoteEventData(pitch=64, velocity=100, program=33, is_drum=False)
    assert note_event_to_events(state, onset, 1) == [
        Event("program", 33), Event("velocity", 1), Event("pitch", 64)
    ]
    note_event_to_events(state, note_encoding.NoteEventData(60, 50, 40, False), 1)
    note_event_to_events(state, note_encoding.NoteEventData(61, 50, 0, False), 1)
    drum = note_encoding.NoteEventData(pitch=38, velocity=127, program=0, is_drum=True)
    assert note_event_to_events(state, drum, 127) == [Event("velocity", 127), Event("drum", 38)]
    # Sorted by (program, pitch); drums never sound on.
    assert tie_section_events(state) == [
        Event("program", 0), Event("pitch", 61),
        Event("program", 33), Event("pitch", 64),
        Event("program", 40), Event("pitch", 60),
        Event("tie", 0),
    ]
    note_event_to_events(state, note_encoding.NoteEventData(64, 0, 33, False), 1)
    assert Event("pitch", 64) not in tie_section_events(state)


def test_onset_offset_and_default_velocity():
    state = NoteDecodingState()
    assert apply(state, 0.1, ("pitch", 60)) == [True]  # velocity 100 until a velocity token
    assert apply(state, 0.3, ("velocity", 0), ("pitch", 60)) == [True, True]
    assert notes_of(state) == [(60, 0, False, 0.1, 0.3, 100)]


def test_invalid_events_are_rejected_without_effect():
    state = NoteDecodingState()
    assert apply(state, 0.0, ("velocity", 0), ("pitch", 60)) == [True, False]  # inactive off
    assert apply(state, 0.0, ("drum", 36)) == [False]  # drum with velocity 0
    assert apply(state, 0.0, ("tie", 0)) == [False]  # tie outside a tie section
    assert apply(state, 0.5, ("velocity", 1)) == [True]
    assert apply(state, 0.4, ("pitch", 61)) == [False]  # time went backwards
    assert state.note_sequence.notes == [] and state.active_notes == {}


def test_invalid_event_still_moves_time_forward():
    state = NoteDecodingState()
    apply(state, 0.0, ("pitch", 60))
    assert apply(state, 0.7, ("velocity", 0), ("pitch", 61)) == [True, False]
    begin_tie_section(state)
    apply(state, 0.7, ("tie", 0))  # ends pitch 60 at current_time, which the invalid event set
    assert notes_of(state) == [(60, 0, False, 0.0, 0.7, 100)]


def test_repeated_onset_ends_the_sounding_note():
    state = NoteDecodingState()
    apply(state, 0.0, ("program", 4), ("pitch", 60))
    apply(state, 0.2, ("pitch", 60))
    flush_note_decoding_state(state)
    assert notes_of(state) == [(60, 4, False, 0.0, 0.2, 100), (60, 4, False, 0.2, 0.21, 100)]


def test_tie_section_keeps_named_notes_and_ends_the_others():
    state = NoteDecodingState()
    apply(state, 0.0, ("velocity", 1), ("program", 0), ("pitch", 60), ("pitch", 64))
    begin_tie_section(state)
    # 62 is not sounding, 60 is named twice: both invalid.
    assert apply(state, 2.0, ("pitch", 60), ("pitch", 62), ("pitch", 60), ("tie", 0)) == [
        True, False, False, True
    ]
    assert notes_of(state) == [(64, 0, False, 0.0, 2.0, 127)]
    assert list(state.active_notes) == [(60, 0)]
    apply(state, 2.5, ("velocity", 0), ("pitch", 60))
    assert notes_of(state)[-1] == (60, 0, False, 0.0, 2.5, 127)


def test_drums_last_one_step_with_program_zero():
    state = NoteDecodingState()
    apply(state, 1.0, ("program", 30), ("velocity", 1), ("drum", 42))
    assert notes_of(state) == [(42, 0, True, 1.0, 1.01, 127)]


def test_velocity_tokens_use_the_codecs_bins():
    codec = VocabularyConfig(num_velocity_bins=4).codec
    state = NoteDecodingState()
    decode_note_event(state, 0.0, Event("velocity", 2), codec)
    assert state.current_velocity == 63


def test_flush_ends_notes_at_least_one_step_after_their_onset():
    state = NoteDecodingState()
    apply(state, 0.0, ("pitch", 60))
    apply(state, 0.5, ("pitch", 61), ("velocity", 0), ("pitch", 60))
    apply(state, 0.5, ("velocity", 0))
    sequence = flush_note_decoding_state(state)
    assert notes_of(state) == [(60, 0, False, 0.0, 0.5, 100), (61, 0, False, 0.5, 0.51, 100)]
    assert sequence.total_time == pytest.approx(0.51)


def test_instruments_follow_first_appearance_and_skip_the_drum_channel():
    ns = music_pb2.NoteSequence()
    programs = [40, 0, 40, 1, 2, 3, 4, 5, 6, 7, 8]
    for program in programs:
        ns.notes.add(pitch=60, program=program)
    ns.notes.add(pitch=36, program=40, is_drum=True)
    assign_instruments(ns)
    assert [n.instrument for n in ns.notes] == [0, 1, 0, 2, 3, 4, 5, 6, 7, 8, 10, 9]
