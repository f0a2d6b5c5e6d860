"""Per-segment token ids -> one NoteSequence, as MT3's `event_predictions_to_ns`.

Segments are decoded in order of start time with one decoding state carried across them (only
the tie bookkeeping resets at each segment). A segment may not place events after the next
segment's start: a shift past it drops the rest of the segment. Malformed streams never raise;
bad tokens are counted in `num_invalid_events` and skipped.
"""

import operator
from typing import NamedTuple

import numpy as np
from note_seq.protobuf import music_pb2

from keras_mt3.codec import note_encoding
from keras_mt3.codec.run_length_encoding import decode_events
from keras_mt3.codec.vocabulary import DECODED_INVALID_ID, VocabularyLike, get_vocabulary
from keras_mt3.constants import EOS_ID
from keras_mt3.errors import KerasMT3Error

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


class DetokenizeResult(NamedTuple):
    note_sequence: music_pb2.NoteSequence
    num_invalid_events: int  # tokens that could not be decoded or applied, and were skipped
    num_dropped_events: int  # tokens cut because they fell after the next segment's start


def tokens_to_note_sequence(
    segment_tokens, start_times, vocabulary: VocabularyLike
) -> DetokenizeResult:
    """Decodes model ids, one sequence per segment, into a `DetokenizeResult`.

    Args:
        segment_tokens: per segment, model ids (list, 1-D array, or rows of a 2-D array).
            Everything from the first EOS on is ignored; PAD, UNK, extra ids and ids outside the
            vocabulary count as invalid events.
        start_times: per segment, the time in seconds of its first time step (MT3 rounds the
            segment's audio start down to 10 ms).
        vocabulary: a vocabulary name or `VocabularyConfig`.
    """
    vocabulary = get_vocabulary(vocabulary)
    segment_events = []
    if segment_tokens is None:
        segment_tokens = []
    for tokens in segment_tokens:
        model_ids = _to_int_list(tokens)
        if EOS_ID in model_ids:
            model_ids = model_ids[: model_ids.index(EOS_ID)]
        segment_events.append(vocabulary.model_ids_to_codec_indices(model_ids).tolist())
    return codec_events_to_note_sequence(segment_events, start_times, vocabulary)


def codec_events_to_note_sequence(
    segment_events, start_times, vocabulary: VocabularyLike
) -> DetokenizeResult:
    """Decodes codec indices (already cut at EOS), one sequence per segment.

    Indices outside `[0, num_classes)` count as invalid events. See `tokens_to_note_sequence`.
    """
    vocabulary = get_vocabulary(vocabulary)
    if segment_events is None:
        segment_events = []
    segment_events = [_to_int_list(events) for events in segment_events]
    start_times = _start_times(start_times, len(segment_events))
    order = sorted(range(len(segment_events)), key=lambda segment: start_times[segment])

    state = note_encoding.NoteDecodingState()
    num_invalid = num_dropped = 0
    for position, segment in enumerate(order):
        if vocabulary.use_ties:
            note_encoding.begin_tie_section(state)
        max_time = start_times[order[position + 1]] if position + 1 < len(order) else None
        invalid, dropped = decode_events(
            state,
            segment_events[segment],
            start_times[segment],
            max_time,
            vocabulary.codec,
            note_encoding.decode_note_event,
        )
        num_invalid += invalid
        num_dropped += dropped
    note_sequence = note_encoding.flush_note_decoding_state(state)
    return DetokenizeResult(note_sequence, num_invalid, num_dropped)


def _to_int_list(tokens):
    """Python ints from any token container; what is not a 32-bit integer becomes invalid."""
    if tokens is None:
        return []
    if isinstance(tokens, np.ndarray):
        tokens = tokens.reshape(-1).tolist()
    else:
        try:
            tokens = list(tokens)
        except TypeError:
            tokens = [tokens]
    return [_to_int(token) for token in tokens]


def _to_int(token):
    try:
        value = operator.index(token)
    except TypeError:
        if not (isinstance(token, float) and token.is_integer()):
            return DECODED_INVALID_ID
        value = int(token)
    return value if _INT32_MIN <= value <= _INT32_MAX else DECODED_INVALID_ID


def _start_times(start_times, num_segments):
    if start_times is None:
        start_times = []
    try:
        start_times = np.asarray(start_times, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise KerasMT3Error(f"start_times must be numbers (seconds): {error}") from error
    if len(start_times) != num_segments:
        raise KerasMT3Error(
            f"got {num_segments} token segments but {len(start_times)} start times; pass one "
            "start time per segment"
        )
    return start_times.tolist()
