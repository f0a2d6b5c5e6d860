"""Note matching with mir_eval's rules and MT3's settings, in memory that grows with the notes.

mir_eval's defaults are MT3's: onsets within 50 ms, pitches within 50 cents and, when offsets
count, offsets within max(20 % of the reference note's duration, 50 ms). The matching is a
maximum bipartite matching, so each note is used at most once.

mir_eval compares every reference note with every estimated note: several dense
[reference, estimate] float64 matrices, over 12 GB for two 20,000-note sequences. Here only
notes that can match are compared: the same MIDI pitch (neighbouring pitches are 100 cents
apart, twice the tolerance) and onsets within the tolerance, found by sorting the onsets.
Each candidate pair gets mir_eval's own tests, element for element, and the hits are handed
to mir_eval's matching routine in the order mir_eval builds them, so the pairs, and with them
every score, are exactly mir_eval's.
"""

import dataclasses

import mir_eval
import numpy as np
import pretty_midi

from keras_mt3.errors import KerasMT3Error
from keras_mt3.metrics.match_counts import MatchCounts

ONSET_ONLY = None  # `offset_ratio` value that ignores offsets ("Onset F1")
MT3_OFFSET_RATIO = 0.2  # mir_eval's default, used by MT3's "Onset + offset" metrics

# mir_eval's default tolerances, which are MT3's.
ONSET_TOLERANCE = 0.05  # seconds
PITCH_TOLERANCE = 50.0  # cents
OFFSET_MIN_TOLERANCE = 0.05  # seconds
VELOCITY_TOLERANCE = 0.1  # after rescaling velocities to [0, 1]

# Candidates are searched a little beyond the onset tolerance: mir_eval rounds onset
# distances to 6 decimals before comparing, which can admit up to 5e-7 s more.
_ONSET_SEARCH_WINDOW = ONSET_TOLERANCE + 1e-3
# The most note pairs that may fall within each other's tolerances. Ordinary transcriptions
# have about one per note; beyond this the sequences are mostly duplicated notes, and the
# matching graph alone would take gigabytes.
MAX_CANDIDATE_PAIRS = 4_000_000
# Candidate pairs tested at once (bounds the temporary arrays to a few tens of MB).
_CHUNK_PAIRS = 1 << 20

_MIN_MIDI_PITCH, _MAX_MIDI_PITCH = 0, 127


@dataclasses.dataclass(frozen=True)
class NoteMatching:
    """Result of `match_notes`.

    Attributes:
        pairs: `(reference_index, estimated_index)` tuples, indices into the note lists given.
        counts: matched / estimated / reference note counts. Zero-length notes are not counted,
            as mir_eval cannot take them (MT3 drops them the same way).
    """

    pairs: tuple
    counts: MatchCounts


def match_notes(reference_notes, estimated_notes, *, offset_ratio=ONSET_ONLY, with_velocity=False):
    """Matches estimated notes to reference notes (NoteSequence notes, any instruments).

    The result is `mir_eval.transcription.match_notes`'s (with `with_velocity`,
    `mir_eval.transcription_velocity.match_notes`'s), pair for pair.

    Args:
        reference_notes: sequence of `NoteSequence.Note` (e.g. `note_sequence.notes`).
        estimated_notes: the same for the estimate.
        offset_ratio: `None` to match on onset and pitch only; a ratio (MT3: 0.2) to also require
            offsets within max(ratio * reference duration, 50 ms).
        with_velocity: also require velocities to agree, as `mir_eval.transcription_velocity`
            does: estimated velocities are linearly rescaled to the reference's on the matched
            notes, and a match stays only if they are within 0.1 after normalization to [0, 1].

    Returns:
        A `NoteMatching`.

    Raises:
        KerasMT3Error: a note ends before it starts or starts before 0, or more than
            `MAX_CANDIDATE_PAIRS` note pairs are within matching distance.
    """
    reference = _valued_notes(reference_notes, "reference")
    estimate = _valued_notes(estimated_notes, "estimate")
    if not reference.kept or not estimate.kept:
        # mir_eval would only warn and score 0 here.
        return NoteMatching((), MatchCounts(0, len(estimate.kept), len(reference.kept)))
    pairs = _maximum_matching(_hits(reference, estimate, offset_ratio))
    if with_velocity:
        pairs = _keep_matching_velocities(pairs, reference.velocities, estimate.velocities)
    pairs = tuple((reference.kept[ref], estimate.kept[est]) for ref, est in pairs)
    return NoteMatching(pairs, MatchCounts(len(pairs), len(estimate.kept), len(reference.kept)))


@dataclasses.dataclass(frozen=True)
class _ValuedNotes:
    """The notes mir_eval can score, as arrays; `kept` are their positions in the input."""

    kept: list
    onsets: np.ndarray
    offsets: np.ndarray
    pitches: np.ndarray  # MIDI numbers
    log2_hz: np.ndarray
    velocities: np.ndarray


def _hits(reference, estimate, offset_ratio):
    """`(reference index, estimate index)` arrays of every pair that passes mir_eval's onset,
    pitch and offset tests, in mir_eval's order (by reference, then estimate)."""
    lows, highs, order = _onset_windows(reference, estimate)
    counts = highs - lows
    total = int(counts.sum())
    if total > MAX_CANDIDATE_PAIRS:
        raise KerasMT3Error(
            f"{total} pairs of reference and estimated notes share a pitch and onset (within "
            f"{ONSET_TOLERANCE * 1000:g} ms), more than the {MAX_CANDIDATE_PAIRS} note matching "
            "takes; the sequences are mostly duplicated notes. Remove the duplicates first."
        )
    if offset_ratio is not None:
        durations = reference.offsets - reference.onsets
        offset_tolerances = np.maximum(offset_ratio * durations, OFFSET_MIN_TOLERANCE)
    found_refs, found_ests = [], []
    for refs, ests in _candidate_chunks(lows, counts, order):
        hit = _rounded_distance(reference.onsets[refs], estimate.onsets[ests]) <= ONSET_TOLERANCE
        cents = np.abs(1200 * (reference.log2_hz[refs] - estimate.log2_hz[ests]))
        hit &= cents <= PITCH_TOLERANCE
        if offset_ratio is not None:
            offset_distances = _rounded_distance(reference.offsets[refs], estimate.offsets[ests])
            hit &= offset_distances <= offset_tolerances[refs]
        refs, ests = refs[hit], ests[hit]
        by_position = np.lexsort((ests, refs))
        found_refs.append(refs[by_position])
        found_ests.append(ests[by_position])
    return np.concatenate(found_refs), np.concatenate(found_ests)


def _rounded_distance(a, b):
    # mir_eval's rounding, so that a distance of exactly 50 ms passes despite float error.
    return np.around(np.abs(a - b), decimals=mir_eval.transcription.N_DECIMALS)


def _onset_windows(reference, estimate):
    """For each reference note, the run `order[lows[i]:highs[i]]` of estimated notes with its
    MIDI pitch and an onset within `_ONSET_SEARCH_WINDOW` of its own."""
    order = np.lexsort((estimate.onsets, estimate.pitches))
    sorted_pitches = estimate.pitches[order]
    sorted_onsets = estimate.onsets[order]
    lows = np.zeros(len(reference.onsets), np.int64)
    highs = np.zeros(len(reference.onsets), np.int64)
    for pitch in np.unique(reference.pitches):
        start, stop = np.searchsorted(sorted_pitches, [pitch, pitch + 1])
        refs = np.flatnonzero(reference.pitches == pitch)
        onsets = reference.onsets[refs]
        block = sorted_onsets[start:stop]
        lows[refs] = start + np.searchsorted(block, onsets - _ONSET_SEARCH_WINDOW, "left")
        highs[refs] = start + np.searchsorted(block, onsets + _ONSET_SEARCH_WINDOW, "right")
    return lows, highs, order


def _candidate_chunks(lows, counts, order):
    """Yields `(reference indices, estimate indices)` of the candidate pairs, reference notes
    in order, for as many reference notes at a time as fit in `_CHUNK_PAIRS` pairs."""
    ends = np.cumsum(counts)
    first = 0
    while first < len(counts):
        budget = (ends[first - 1] if first else 0) + _CHUNK_PAIRS
        last = max(int(np.searchsorted(ends, budget, "right")), first + 1)
        chunk_counts = counts[first:last]
        refs = np.repeat(np.arange(first, last), chunk_counts)
        # Pair k of the chunk is estimate order[lows[ref] + k - (pairs of earlier refs)].
        earlier = np.cumsum(chunk_counts) - chunk_counts
        positions = np.repeat(lows[first:last] - earlier, chunk_counts) + np.arange(len(refs))
        yield refs, order[positions]
        first = last


def _maximum_matching(hits):
    """mir_eval's maximum matching of the hit pairs, as sorted `(reference, estimate)` tuples.

    The graph is built exactly as mir_eval builds it (estimated notes in order of their first
    hit, each listing its reference notes in order), so the matching chosen among equally large
    ones is mir_eval's too; the velocity rule depends on which one it is.
    """
    graph = {}
    for ref, est in zip(*(indices.tolist() for indices in hits)):
        graph.setdefault(est, []).append(ref)
    return sorted(mir_eval.util._bipartite_match(graph).items())


def _keep_matching_velocities(pairs, ref_velocities, est_velocities):
    """The pairs whose velocities agree, by mir_eval.transcription_velocity's rule: reference
    velocities scaled to [0, 1] by their range (at least 1), estimated ones mapped onto them by
    the least-squares line through the matched pairs, then within `VELOCITY_TOLERANCE`."""
    if not pairs:
        return []
    lowest = np.min(ref_velocities)
    ref_scaled = (ref_velocities - lowest) / float(max(1, np.max(ref_velocities) - lowest))
    matched = np.array(pairs)
    ref_matched = ref_scaled[matched[:, 0]]
    est_matched = est_velocities[matched[:, 1]]
    line = np.vstack([est_matched, np.ones(len(est_matched))]).T
    slope, intercept = np.linalg.lstsq(line, ref_matched, rcond=None)[0]
    close = np.abs(slope * est_matched + intercept - ref_matched) < VELOCITY_TOLERANCE
    return [tuple(pair) for pair in matched[close].tolist()]


def _valued_notes(notes, which):
    """The notes as `sequence_to_valued_intervals` would give them to mir_eval.

    Like note_seq, leaves out zero-length notes and pitches outside MIDI's range.
    """
    kept = []
    for index, note in enumerate(notes):
        if note.end_time < note.start_time:
            raise KerasMT3Error(
                f"{which} note {index} (pitch {note.pitch}) ends at {note.end_time} s, before it "
                f"starts at {note.start_time} s; fix the NoteSequence before scoring it"
            )
        if note.start_time < 0:
            raise KerasMT3Error(
                f"{which} note {index} (pitch {note.pitch}) starts at {note.start_time} s, "
                "before 0; fix the NoteSequence before scoring it"
            )
        if note.end_time > note.start_time and _MIN_MIDI_PITCH <= note.pitch <= _MAX_MIDI_PITCH:
            kept.append(index)
    kept_notes = [notes[i] for i in kept]
    pitches = np.array([note.pitch for note in kept_notes], np.int64)
    return _ValuedNotes(
        kept=kept,
        onsets=np.array([note.start_time for note in kept_notes], np.float64),
        offsets=np.array([note.end_time for note in kept_notes], np.float64),
        pitches=pitches,
        # mir_eval compares log2 of these Hz values (computed over whole arrays, as here).
        log2_hz=np.log2(pretty_midi.note_number_to_hz(pitches.astype(np.float64))),
        velocities=np.array([note.velocity for note in kept_notes], np.float64),
    )
