"""All of MT3's transcription metrics for one (estimate, reference) pair of NoteSequences."""

from note_seq import sequences_lib
from note_seq.protobuf import music_pb2

from keras_mt3.codec.vocabulary import PROGRAM_GRANULARITIES
from keras_mt3.errors import KerasMT3Error
from keras_mt3.metrics.frame_metrics import frame_counts
from keras_mt3.metrics.multi_instrument import multi_instrument_counts
from keras_mt3.metrics.note_matching import MT3_OFFSET_RATIO, ONSET_ONLY, match_notes

# (name prefix, offset_ratio, with_velocity) of the instrument-agnostic note metrics.
NOTE_METRICS = (
    ("onset", ONSET_ONLY, False),
    ("onset_offset", MT3_OFFSET_RATIO, False),
    ("onset_velocity", ONSET_ONLY, True),
    ("onset_offset_velocity", MT3_OFFSET_RATIO, True),
)


def transcription_metrics(estimate, reference, *, apply_sustain=False):
    """Scores an estimated transcription against a reference, as MT3's evaluation does.

    Each metric gives `NAME_precision`, `NAME_recall` and `NAME_f1` (floats in [0, 1]; 0.0 when
    a side has no notes). NAME is one of:

    - `onset`, `onset_offset`: notes matched on onset and pitch (and offset), ignoring
      instruments, on the sequences without drums (MT3's "Onset F1", "Onset + offset F1").
    - `onset_velocity`, `onset_offset_velocity`: the same, also requiring matching velocities
      (mir_eval.transcription_velocity). Meaningful only for models that predict velocity:
      the mt3 checkpoint writes every note at velocity 127.
    - `frame`: active piano-roll cells at 62.5 frames per second, without drums ("Frame F1").
    - `program_flat`, `program_midi_class`, `program_full`: MT3's multi-instrument F1 at each
      program granularity (non-drum notes matched on onset + offset per instrument, drums on
      onset only, micro-averaged over instruments); `program_full` is the released mt3 setting.
    - `nondrum_program_flat`, `nondrum_program_midi_class`, `nondrum_program_full`: the same
      over non-drum instruments only.
    - `drum_onset`: drum notes matched on onset and drum pitch (the same at every granularity,
      since drum programs are not mapped).

    Args:
        estimate: the transcription, a `NoteSequence`.
        reference: the ground truth, a `NoteSequence`.
        apply_sustain: lengthen the reference's notes by its sustain-pedal control changes first.
            MT3's datasets applied the pedal when building the references, so pass True for a
            reference read straight from a MIDI file that uses the pedal (e.g. MAESTRO); the
            default leaves the reference as given.

    Returns:
        `dict[str, float]` with the keys above, in a fixed order.
    """
    check_note_sequence(estimate, "estimate")
    check_note_sequence(reference, "reference")
    if apply_sustain:
        reference = sequences_lib.apply_sustain_control_changes(reference)
    est_drumless = without_drums(estimate)
    ref_drumless = without_drums(reference)

    scores = {}
    for name, offset_ratio, with_velocity in NOTE_METRICS:
        matching = match_notes(
            ref_drumless.notes,
            est_drumless.notes,
            offset_ratio=offset_ratio,
            with_velocity=with_velocity,
        )
        scores.update(matching.counts.scores(name))
    scores.update(frame_counts(est_drumless, ref_drumless).scores("frame"))
    by_granularity = {
        granularity: multi_instrument_counts(estimate, reference, granularity)
        for granularity in PROGRAM_GRANULARITIES
    }
    for granularity, counts in by_granularity.items():
        scores.update(counts.total.scores(f"program_{granularity}"))
    for granularity, counts in by_granularity.items():
        scores.update(counts.nondrum.scores(f"nondrum_program_{granularity}"))
    scores.update(by_granularity["full"].drum.scores("drum_onset"))
    return scores


def without_drums(note_sequence):
    """A copy of `note_sequence` without its drum notes (everything else is kept)."""
    drumless = music_pb2.NoteSequence()
    drumless.CopyFrom(note_sequence)
    del drumless.notes[:]
    drumless.notes.extend(note for note in note_sequence.notes if not note.is_drum)
    return drumless


def check_note_sequence(value, which):
    if not isinstance(value, music_pb2.NoteSequence):
        raise KerasMT3Error(
            f"the {which} must be a note_seq NoteSequence, got {type(value).__name__}; "
            "read MIDI files with keras_mt3.load_midi"
        )
