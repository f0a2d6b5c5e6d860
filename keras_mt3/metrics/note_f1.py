"""`NoteF1`: a Keras metric that accumulates note F1 over (estimate, reference) NoteSequences."""

import keras

from keras_mt3.errors import KerasMT3Error
from keras_mt3.metrics.match_counts import MatchCounts
from keras_mt3.metrics.multi_instrument import multi_instrument_counts, program_map
from keras_mt3.metrics.note_matching import MT3_OFFSET_RATIO, ONSET_ONLY, match_notes
from keras_mt3.metrics.transcription_metrics import check_note_sequence, without_drums


@keras.saving.register_keras_serializable(package="keras_mt3")
class NoteF1(keras.metrics.Metric):
    """Note F1 accumulated over many transcriptions, for host-side evaluation loops.

    Feed it pairs of NoteSequences, e.g. from `MT3Transcriber.transcribe`, with
    `update_state_from_sequences(estimate, reference)`. It cannot run inside a compiled
    `fit`/`evaluate` step: matching notes is a host-side graph problem, not a tensor op, so
    `update_state` raises.

    The result pools the counts of every pair (matched / estimated / reference notes) before
    computing F1, i.e. a micro-average over notes. MT3's published numbers are a mean of per-clip
    scores instead (`transcription_metrics` per clip, then average), which weights short clips
    more.

    Args:
        offsets: also require offsets to match (MT3's "onset + offset"); default onset only.
        granularity: None to ignore instruments (drums left out, like MT3's "Onset F1"), or a
            program granularity (`"flat"`, `"midi_class"`, `"full"`) for MT3's multi-instrument
            F1, where drums count and are matched on onset only.
    """

    def __init__(self, offsets=False, granularity=None, name="note_f1", **kwargs):
        super().__init__(name=name, **kwargs)
        if granularity is not None:
            program_map(granularity)  # fails early on an unknown name
        self.offsets = bool(offsets)
        self.granularity = granularity
        self.matched = self._count_variable("matched")
        self.estimated = self._count_variable("estimated")
        self.reference = self._count_variable("reference")

    def _count_variable(self, name):
        return self.add_variable(shape=(), initializer="zeros", dtype="float32", name=name)

    def update_state(self, *args, **kwargs):
        raise KerasMT3Error(
            "NoteF1 scores NoteSequences on the host and cannot take tensors; call "
            "update_state_from_sequences(estimate, reference) in your evaluation loop"
        )

    def update_state_from_sequences(self, estimate, reference):
        """Adds one transcription's note counts; returns its own `MatchCounts`."""
        check_note_sequence(estimate, "estimate")
        check_note_sequence(reference, "reference")
        counts = self._counts(estimate, reference)
        self.matched.assign_add(float(counts.matched))
        self.estimated.assign_add(float(counts.estimated))
        self.reference.assign_add(float(counts.reference))
        return counts

    def _counts(self, estimate, reference):
        offset_ratio = MT3_OFFSET_RATIO if self.offsets else ONSET_ONLY
        if self.granularity is None:
            return match_notes(
                without_drums(reference).notes,
                without_drums(estimate).notes,
                offset_ratio=offset_ratio,
            ).counts
        return multi_instrument_counts(estimate, reference, self.granularity, offset_ratio).total

    def result(self):
        # 2PR / (P + R) written with counts: 2 * matched / (estimated + reference).
        return keras.ops.divide_no_nan(2.0 * self.matched, self.estimated + self.reference)

    def counts(self):
        """The accumulated counts as a `MatchCounts` (precision, recall and f1 on the host)."""
        return MatchCounts(
            int(keras.ops.convert_to_numpy(self.matched)),
            int(keras.ops.convert_to_numpy(self.estimated)),
            int(keras.ops.convert_to_numpy(self.reference)),
        )

    def get_config(self):
        return {**super().get_config(), "offsets": self.offsets, "granularity": self.granularity}
