"""MT3's frame metric: piano-roll cells at 62.5 frames per second, built through pretty_midi."""

import numpy as np
from note_seq.protobuf import music_pb2

from keras_mt3.metrics.match_counts import MatchCounts
from keras_mt3.midi_io import note_sequence_to_pretty_midi

PIANO_ROLL_FRAMES_PER_SECOND = 62.5  # not the frontend's 125: MT3 scores frames at half that
MIN_NOTE_SECONDS = 0.05  # shorter notes are lengthened so that they cover a frame or more
REFERENCE_VELOCITY_THRESHOLD = 30  # quieter reference cells do not count as active


def piano_roll(note_sequence, frames_per_second=PIANO_ROLL_FRAMES_PER_SECOND):
    """`[128, frames]` array of summed note velocities, as MT3 builds it.

    Notes shorter than 50 ms are lengthened to 50 ms and drum notes last exactly 50 ms. The roll
    comes from pretty_midi, so overlapping notes add up and a sustain pedal (control 64) in the
    sequence lengthens the notes it holds. The input is not modified.
    """
    lengthened = music_pb2.NoteSequence()
    lengthened.CopyFrom(note_sequence)
    for note in lengthened.notes:
        if note.is_drum or note.end_time - note.start_time < MIN_NOTE_SECONDS:
            note.end_time = note.start_time + MIN_NOTE_SECONDS
    midi = note_sequence_to_pretty_midi(lengthened)
    for instrument in midi.instruments:
        instrument.is_drum = False  # pretty_midi gives drum instruments an all-zero roll
    return midi.get_piano_roll(fs=frames_per_second)


def frame_counts(
    estimate,
    reference,
    *,
    frames_per_second=PIANO_ROLL_FRAMES_PER_SECOND,
    velocity_threshold=REFERENCE_VELOCITY_THRESHOLD,
):
    """Active-cell counts: a reference cell is active above `velocity_threshold`, an estimated
    cell above 0; the shorter roll is padded with silence. Returns `MatchCounts`."""
    ref_roll = piano_roll(reference, frames_per_second)
    est_roll = piano_roll(estimate, frames_per_second)
    num_frames = max(ref_roll.shape[1], est_roll.shape[1])
    ref_active = _pad_frames(ref_roll, num_frames) > velocity_threshold
    est_active = _pad_frames(est_roll, num_frames) > 0
    return MatchCounts(
        matched=int(np.count_nonzero(ref_active & est_active)),
        estimated=int(np.count_nonzero(est_active)),
        reference=int(np.count_nonzero(ref_active)),
    )


def _pad_frames(roll, num_frames):
    return np.pad(roll, [(0, 0), (0, num_frames - roll.shape[1])])
