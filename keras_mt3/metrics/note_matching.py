"""Note matching with mir_eval, with MT3's settings.

mir_eval's defaults are MT3's: onsets within 50 ms, pitches within 50 cents and, when offsets
count, offsets within max(20 % of the reference note's duration, 50 ms). The matching is a
maximum bipartite matching, so each note is used at most once.
"""

import dataclasses

import mir_eval
import numpy as np
import pretty_midi

from keras_mt3.errors import KerasMT3Error
from keras_mt3.metrics.match_counts import MatchCounts

ONSET_ONLY = None  # `offset_ratio` value that ignores offsets ("Onset F1")
MT3_OFFSET_RATIO = 0.2  # mir_eval's default, used by MT3's "Onset + offset" metrics

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
    """
    ref_kept, ref_intervals, ref_hz, ref_velocities = _valued_intervals(
        reference_notes, "reference"
    )
    est_kept, est_intervals, est_hz, est_velocities = _valued_intervals(
        estimated_notes, "estimate"
    )
    if not ref_kept or not est_kept:
        # mir_eval would only warn and score 0 here.
        return NoteMatching((), MatchCounts(0, len(est_kept), len(ref_kept)))
    if with_velocity:
        pairs = mir_eval.transcription_velocity.match_notes(
            ref_intervals, ref_hz, ref_velocities, est_intervals, est_hz, est_velocities,
            offset_ratio=offset_ratio,
        )
    else:
        pairs = mir_eval.transcription.match_notes(
            ref_intervals, ref_hz, est_intervals, est_hz, offset_ratio=offset_ratio
        )
    pairs = tuple((ref_kept[ref_index], est_kept[est_index]) for ref_index, est_index in pairs)
    return NoteMatching(pairs, MatchCounts(len(pairs), len(est_kept), len(ref_kept)))


def _valued_intervals(notes, which):
    """Intervals, pitches in Hz and velocities, as `sequence_to_valued_intervals` builds them.

    Like note_seq, leaves out zero-length notes and pitches outside MIDI's range; also returns
    the positions of the notes it kept.
    """
    kept = []
    for index, note in enumerate(notes):
        if note.end_time < note.start_time:
            raise KerasMT3Error(
                f"{which} note {index} (pitch {note.pitch}) ends at {note.end_time} s, before it "
                f"starts at {note.start_time} s; fix the NoteSequence before scoring it"
            )
        if note.end_time > note.start_time and _MIN_MIDI_PITCH <= note.pitch <= _MAX_MIDI_PITCH:
            kept.append(index)
    intervals = np.array(
        [(notes[i].start_time, notes[i].end_time) for i in kept], dtype=np.float64
    ).reshape(-1, 2)
    pitches_hz = pretty_midi.note_number_to_hz(np.array([notes[i].pitch for i in kept], np.float64))
    velocities = np.array([notes[i].velocity for i in kept], dtype=np.float64)
    return kept, intervals, pitches_hz, velocities
