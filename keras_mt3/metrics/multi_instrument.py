"""MT3's multi-instrument ("onset + offset + program") note metric.

Notes are split into tracks by `(program, is_drum)` after mapping non-drum programs through a
program granularity (`flat`: all 0, `midi_class`: first program of the General MIDI class,
`full`: unchanged). Each track present in the reference or the estimate is matched on its own:
non-drum tracks on onset and offset, drum tracks on onset only. Counts are then summed over
tracks, which is MT3's micro-average (precision = sum(P_i * n_est_i) / sum(n_est_i)).

As in MT3, drum notes keep their program, so reference drums on a program other than the
estimate's (MT3 writes drums on program 0) form a separate track and do not match.
"""

import collections
import dataclasses

from keras_mt3.codec.vocabulary import PROGRAM_GRANULARITIES
from keras_mt3.errors import KerasMT3Error
from keras_mt3.metrics.match_counts import MatchCounts
from keras_mt3.metrics.note_matching import MT3_OFFSET_RATIO, ONSET_ONLY, match_notes


@dataclasses.dataclass(frozen=True)
class TrackMatching:
    """One `(program, is_drum)` track; `pairs` index the full sequences' `notes`."""

    program: int
    is_drum: bool
    pairs: tuple
    counts: MatchCounts


@dataclasses.dataclass(frozen=True)
class MultiInstrumentCounts:
    """Counts summed over all tracks (`total`), over drum tracks and over non-drum tracks."""

    total: MatchCounts
    drum: MatchCounts
    nondrum: MatchCounts


def instrument_tracks(notes, granularity="full"):
    """`{(program, is_drum): [note indices]}` with non-drum programs mapped by `granularity`."""
    map_program = program_map(granularity)
    tracks = collections.defaultdict(list)
    for index, note in enumerate(notes):
        program = note.program if note.is_drum else map_program(note.program)
        tracks[(program, bool(note.is_drum))].append(index)
    return dict(tracks)


def match_instrument_tracks(estimate, reference, granularity="full", offset_ratio=MT3_OFFSET_RATIO):
    """Matches each track separately; returns `TrackMatching`s sorted by (is_drum, program).

    `offset_ratio` applies to non-drum tracks (None: onset only); drums always match on onset.
    """
    est_tracks = instrument_tracks(estimate.notes, granularity)
    ref_tracks = instrument_tracks(reference.notes, granularity)
    matchings = []
    for program, is_drum in sorted(set(est_tracks) | set(ref_tracks), key=lambda t: (t[1], t[0])):
        est_indices = est_tracks.get((program, is_drum), [])
        ref_indices = ref_tracks.get((program, is_drum), [])
        matching = match_notes(
            [reference.notes[i] for i in ref_indices],
            [estimate.notes[i] for i in est_indices],
            offset_ratio=ONSET_ONLY if is_drum else offset_ratio,
        )
        pairs = tuple((ref_indices[r], est_indices[e]) for r, e in matching.pairs)
        matchings.append(TrackMatching(program, is_drum, pairs, matching.counts))
    return matchings


def multi_instrument_counts(estimate, reference, granularity="full", offset_ratio=MT3_OFFSET_RATIO):
    """MT3's program-aware note counts at one granularity (see the module docstring)."""
    drum, nondrum = MatchCounts(), MatchCounts()
    for track in match_instrument_tracks(estimate, reference, granularity, offset_ratio):
        if track.is_drum:
            drum += track.counts
        else:
            nondrum += track.counts
    return MultiInstrumentCounts(total=drum + nondrum, drum=drum, nondrum=nondrum)


def program_map(granularity):
    """The metrics' program map of a granularity name (KerasMT3Error if unknown)."""
    if granularity not in PROGRAM_GRANULARITIES:
        raise KerasMT3Error(
            f"program granularity {granularity!r} is unknown; use one of "
            f"{sorted(PROGRAM_GRANULARITIES)}"
        )
    return PROGRAM_GRANULARITIES[granularity].program_map_fn
