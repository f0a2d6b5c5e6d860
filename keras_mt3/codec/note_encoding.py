"""Notes <-> events: what a note onset/offset becomes, the tie section, and the decoder state.

Encoding a non-drum note event gives `program, velocity bin, pitch` (velocity bin 0 = offset);
a drum gives `velocity bin, drum` at its onset only. Decoding runs the inverse state machine of
MT3 (`decode_note_event`), which never raises: invalid events are reported and skipped.
"""

import dataclasses

from note_seq.protobuf import music_pb2

from keras_mt3.codec.event_codec import Event
from keras_mt3.codec.vocabulary import (
    bin_to_velocity,
    num_velocity_bins_from_codec,
    velocity_to_bin,
)
from keras_mt3.constants import DEFAULT_VELOCITY

MIN_NOTE_DURATION = 0.01  # decoded notes last at least one time step
DRUM_CHANNEL = 9
TICKS_PER_QUARTER = 220


@dataclasses.dataclass(frozen=True)
class NoteEventData:
    """One onset (velocity > 0) or offset (velocity 0) of a note."""

    pitch: int
    velocity: int
    program: int
    is_drum: bool


def note_sequence_to_note_events(note_sequence):
    """`(times, values)`: the offsets of all non-drum notes, then the onsets of all notes.

    Notes are ordered by `(is_drum, program, pitch)`. A stable sort by time then puts, at equal
    times, every offset before every onset, each group in that note order.
    """
    notes = sorted(note_sequence.notes, key=lambda note: (note.is_drum, note.program, note.pitch))
    offsets = [
        (note.end_time, NoteEventData(note.pitch, 0, note.program, False))
        for note in notes
        if not note.is_drum
    ]
    onsets = [
        (note.start_time, NoteEventData(note.pitch, note.velocity, note.program, note.is_drum))
        for note in notes
    ]
    timed = offsets + onsets
    return [time for time, _ in timed], [value for _, value in timed]


# ---- encoding -------------------------------------------------------------------------------


@dataclasses.dataclass
class NoteEncodingState:
    """Non-drum notes sounding so far, as `(pitch, program)` keys."""

    active_notes: set = dataclasses.field(default_factory=set)


def note_event_to_events(state, value, num_velocity_bins):
    """The events of one `NoteEventData`, updating `state` (may be None) for non-drum notes."""
    velocity_bin = velocity_to_bin(value.velocity, num_velocity_bins)
    if value.is_drum:
        return [Event("velocity", velocity_bin), Event("drum", value.pitch)]
    if state is not None:
        key = (value.pitch, value.program)
        if velocity_bin:
            state.active_notes.add(key)
        else:
            state.active_notes.discard(key)
    return [
        Event("program", value.program),
        Event("velocity", velocity_bin),
        Event("pitch", value.pitch),
    ]


def tie_section_events(state):
    """`program, pitch` for every sounding note, sorted by (program, pitch), then `tie`."""
    events = []
    for pitch, program in sorted(state.active_notes, key=lambda key: (key[1], key[0])):
        events += [Event("program", program), Event("pitch", pitch)]
    events.append(Event("tie", 0))
    return events


# ---- decoding -------------------------------------------------------------------------------


@dataclasses.dataclass
class NoteDecodingState:
    current_time: float = 0.0
    current_velocity: int = DEFAULT_VELOCITY  # 0 turns pitch tokens into offsets
    current_program: int = 0
    # (pitch, program) -> (onset time, velocity); insertion order fixes the output note order.
    active_notes: dict = dataclasses.field(default_factory=dict)
    tied_notes: set = dataclasses.field(default_factory=set)
    in_tie_section: bool = False
    note_sequence: music_pb2.NoteSequence = dataclasses.field(
        default_factory=lambda: music_pb2.NoteSequence(ticks_per_quarter=TICKS_PER_QUARTER)
    )


def begin_tie_section(state):
    """Called at each segment start when ties are used: only the tie bookkeeping resets."""
    state.tied_notes = set()
    state.in_tie_section = True


def _add_note(state, start_time, end_time, pitch, velocity, program=0, is_drum=False):
    end_time = max(end_time, start_time + MIN_NOTE_DURATION)
    state.note_sequence.notes.add(
        start_time=start_time,
        end_time=end_time,
        pitch=pitch,
        velocity=velocity,
        program=program,
        is_drum=is_drum,
    )
    state.note_sequence.total_time = max(state.note_sequence.total_time, end_time)


def _close_note(state, key, end_time):
    onset_time, velocity = state.active_notes.pop(key)
    pitch, program = key
    _add_note(state, onset_time, end_time, pitch, velocity, program)


def decode_note_event(state, time, event, codec):
    """Applies one event at `time`; returns False (event skipped) when it is invalid."""
    if time < state.current_time:
        return False
    # Set before the checks below, so even an invalid event moves time forward (as in MT3).
    state.current_time = time
    if event.type == "pitch":
        key = (event.value, state.current_program)
        if state.in_tie_section:
            if key not in state.active_notes or key in state.tied_notes:
                return False
            state.tied_notes.add(key)
        elif state.current_velocity == 0:
            if key not in state.active_notes:
                return False
            _close_note(state, key, time)
        else:
            if key in state.active_notes:  # a repeated onset ends the sounding note first
                _close_note(state, key, time)
            state.active_notes[key] = (time, state.current_velocity)
    elif event.type == "drum":
        if state.current_velocity == 0:
            return False
        _add_note(state, time, time + MIN_NOTE_DURATION, event.value, state.current_velocity,
                  is_drum=True)
    elif event.type == "velocity":
        state.current_velocity = bin_to_velocity(event.value, num_velocity_bins_from_codec(codec))
    elif event.type == "program":
        state.current_program = event.value
    elif event.type == "tie":
        if not state.in_tie_section:
            return False
        # Notes the tie section did not name end where the segment starts.
        for key in [key for key in state.active_notes if key not in state.tied_notes]:
            _close_note(state, key, state.current_time)
        state.in_tie_section = False
    else:
        return False
    return True


def assign_instruments(note_sequence):
    """One instrument (MIDI channel) per program in order of appearance; drums on channel 9."""
    instruments = {}
    for note in note_sequence.notes:
        if note.is_drum:
            note.instrument = DRUM_CHANNEL
            continue
        if note.program not in instruments:
            count = len(instruments)
            instruments[note.program] = count if count < DRUM_CHANNEL else count + 1
        note.instrument = instruments[note.program]


def flush_note_decoding_state(state):
    """Ends every sounding note (at least one step after its onset) and returns the sequence."""
    for onset_time, _ in state.active_notes.values():
        state.current_time = max(state.current_time, onset_time + MIN_NOTE_DURATION)
    for key in list(state.active_notes):
        _close_note(state, key, state.current_time)
    assign_instruments(state.note_sequence)
    return state.note_sequence
