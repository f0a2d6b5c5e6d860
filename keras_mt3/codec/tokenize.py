"""NoteSequence -> per-segment target token ids (model ids, ending with EOS).

`encode_note_sequence` turns a whole NoteSequence into events indexed by audio frame once;
`segment_tokens` then cuts the targets of any frame window from it, the way MT3 builds its
training targets (tie section, program granularity, redundant state removal, run-length
encoded time, EOS).
"""

import dataclasses
import math

import numpy as np
from note_seq import sequences_lib
from note_seq.protobuf import music_pb2

from keras_mt3.codec import note_encoding
from keras_mt3.codec.event_codec import Event
from keras_mt3.codec.run_length_encoding import (
    IndexedEvents,
    encode_and_index_events,
    run_length_encode_shifts,
)
from keras_mt3.codec.vocabulary import (
    MAX_MIDI_PITCH,
    MAX_MIDI_PROGRAM,
    MAX_MIDI_VELOCITY,
    VocabularyLike,
    get_vocabulary,
)
from keras_mt3.constants import EOS_ID, FRAMES_PER_SECOND
from keras_mt3.errors import KerasMT3Error

STATE_CHANGE_EVENT_TYPES = ("velocity", "program")


@dataclasses.dataclass(frozen=True)
class EncodedNoteSequence(IndexedEvents):
    """All events of a NoteSequence indexed by audio frame (see `IndexedEvents`), plus the
    vocabulary they were encoded with. `state_events` holds the tie sections (empty without
    ties)."""

    vocabulary: object = None

    @property
    def num_frames(self):
        return len(self.event_start_indices)


def encode_note_sequence(
    note_sequence: music_pb2.NoteSequence,
    frame_times,
    vocabulary: VocabularyLike,
    stale_final_ties: bool = True,
) -> EncodedNoteSequence:
    """Encodes a NoteSequence against the audio frames starting at `frame_times` (seconds).

    The sustain pedal is applied first. Drums contribute onsets only. Raises `KerasMT3Error`
    for notes the vocabulary cannot represent. `stale_final_ties` (default True, as MT3): the
    tie section of a segment starting after the last event's step names the notes sounding
    before that step, as in the targets the released checkpoint was trained on; False names
    the notes actually sounding (see `encode_and_index_events`).
    """
    vocabulary = get_vocabulary(vocabulary)
    frame_times = np.asarray(frame_times, dtype=np.float64)
    if frame_times.ndim != 1 or len(frame_times) == 0:
        raise KerasMT3Error("frame_times must be a non-empty 1-D array of frame start times")
    if np.any(np.diff(frame_times) < 0) or not np.all(np.isfinite(frame_times)):
        raise KerasMT3Error("frame_times must be finite and ascending")
    _check_notes(note_sequence)
    try:
        note_sequence = sequences_lib.apply_sustain_control_changes(note_sequence)
    except sequences_lib.QuantizationStatusError as error:
        raise KerasMT3Error(
            "encode_note_sequence needs an unquantized NoteSequence (times in seconds); "
            f"got a quantized one ({error})"
        ) from error

    times, values = note_encoding.note_sequence_to_note_events(note_sequence)
    num_velocity_bins = vocabulary.num_velocity_bins
    state = note_encoding.NoteEncodingState() if vocabulary.use_ties else None
    indexed = encode_and_index_events(
        event_times=times,
        event_values=values,
        encode_event_fn=lambda value: note_encoding.note_event_to_events(
            state, value, num_velocity_bins
        ),
        codec=vocabulary.codec,
        frame_times=frame_times,
        state_events_fn=None if state is None else lambda: note_encoding.tie_section_events(state),
        stale_final_state=stale_final_ties,
    )
    fields = {field.name: getattr(indexed, field.name) for field in dataclasses.fields(indexed)}
    return EncodedNoteSequence(**fields, vocabulary=vocabulary)


def segment_tokens(
    encoded: EncodedNoteSequence,
    start_frame: int,
    end_frame: int,
    vocabulary: VocabularyLike | None = None,
) -> np.ndarray:
    """Target model ids (int32, ending with EOS) for the frames `[start_frame, end_frame)`.

    Any window works, e.g. a random training crop starting mid-note: its tie section names the
    notes sounding just before its first time step. `vocabulary` defaults to the one `encoded`
    was made with; a different one is an error.
    """
    vocabulary = encoded.vocabulary if vocabulary is None else get_vocabulary(vocabulary)
    if vocabulary != encoded.vocabulary:
        raise KerasMT3Error(
            f"these events were encoded with vocabulary {encoded.vocabulary.name!r}; encode the "
            f"NoteSequence again to get {vocabulary.name!r} tokens"
        )
    if not 0 <= start_frame < end_frame <= encoded.num_frames:
        raise KerasMT3Error(
            f"frame window [{start_frame}, {end_frame}) is empty or outside the "
            f"{encoded.num_frames} encoded frames"
        )
    codec = vocabulary.codec
    events = encoded.events[
        encoded.event_start_indices[start_frame] : encoded.event_end_indices[end_frame - 1]
    ]
    if vocabulary.use_ties:
        events = np.concatenate([_tie_section(encoded, start_frame, codec), events])
    events = vocabulary.granularity.tokens_map_fn(events, codec)
    events = remove_redundant_state_changes(events, codec, STATE_CHANGE_EVENT_TYPES)
    events = run_length_encode_shifts(events, codec)
    return np.append(vocabulary.codec_indices_to_model_ids(events), np.int32(EOS_ID))


def note_sequence_to_segment_tokens(
    note_sequence: music_pb2.NoteSequence,
    num_frames: int,
    vocabulary: VocabularyLike,
    frames_per_segment: int | None = None,
    stale_final_ties: bool = True,
) -> list[np.ndarray]:
    """Targets of consecutive segments of `frames_per_segment` frames (default: the
    vocabulary's `input_frames`), as at inference: frame i starts at i / 125 s. The last segment
    is shorter when `num_frames` is not a multiple and also holds every event after the audio.
    `stale_final_ties` as in `encode_note_sequence`."""
    vocabulary = get_vocabulary(vocabulary)
    if frames_per_segment is None:
        frames_per_segment = vocabulary.input_frames
    if num_frames < 1 or frames_per_segment < 1:
        raise KerasMT3Error("num_frames and frames_per_segment must be positive")
    encoded = encode_note_sequence(
        note_sequence, np.arange(num_frames) / FRAMES_PER_SECOND, vocabulary, stale_final_ties
    )
    return [
        segment_tokens(encoded, start, min(start + frames_per_segment, num_frames), vocabulary)
        for start in range(0, num_frames, frames_per_segment)
    ]


def remove_redundant_state_changes(events, codec, event_types):
    """Drops each token of `event_types` that repeats the last value of its type."""
    ranges = [codec.event_type_range(event_type) for event_type in event_types]
    last_values = [None] * len(ranges)
    kept = []
    for index in np.asarray(events).tolist():
        redundant = False
        for position, (first, last) in enumerate(ranges):
            if first <= index <= last:
                redundant = last_values[position] == index
                last_values[position] = index
        if not redundant:
            kept.append(index)
    return np.asarray(kept, dtype=np.int32)


def _tie_section(encoded, start_frame, codec):
    start = encoded.state_event_indices[start_frame]
    tie_index = codec.encode_event(Event("tie", 0))
    end = start + int(np.argmax(encoded.state_events[start:] == tie_index)) + 1
    return encoded.state_events[start:end]


def _check_notes(note_sequence):
    for note in note_sequence.notes:
        problem = None
        if not 0 <= note.pitch <= MAX_MIDI_PITCH:
            problem = "a pitch outside 0..127"
        elif not 0 <= note.program <= MAX_MIDI_PROGRAM:
            problem = "a program outside 0..127"
        elif not 1 <= note.velocity <= MAX_MIDI_VELOCITY:
            problem = "a velocity outside 1..127"
        elif not (math.isfinite(note.start_time) and math.isfinite(note.end_time)):
            problem = "a non-finite time"
        elif note.start_time < 0:
            problem = "a negative start time"
        elif note.start_time >= note.end_time:
            problem = "start_time >= end_time"
        if problem:
            raise KerasMT3Error(
                f"cannot encode a note with {problem} (pitch {note.pitch}, program "
                f"{note.program}, velocity {note.velocity}, {note.start_time}-{note.end_time} s); "
                "fix or drop such notes first"
            )
