"""MT3 transcription metrics: pure functions on NoteSequences (mir_eval + pretty_midi).

Only `NoteF1` needs Keras; it is imported on first use so that scoring stays Keras-free.
"""

from keras_mt3.metrics.frame_metrics import frame_counts, piano_roll
from keras_mt3.metrics.match_counts import MatchCounts
from keras_mt3.metrics.multi_instrument import (
    MultiInstrumentCounts,
    TrackMatching,
    instrument_tracks,
    match_instrument_tracks,
    multi_instrument_counts,
)
from keras_mt3.metrics.note_matching import (
    MT3_OFFSET_RATIO,
    ONSET_ONLY,
    NoteMatching,
    match_notes,
)
from keras_mt3.metrics.transcription_metrics import transcription_metrics, without_drums


def __getattr__(name):
    if name == "NoteF1":
        from keras_mt3.metrics.note_f1 import NoteF1

        return NoteF1
    raise AttributeError(f"module 'keras_mt3.metrics' has no attribute {name!r}")
