"""keras-mt3: MT3 multi-instrument music transcription for Keras 3."""

import warnings

from keras_mt3.utils import lazy_module_getattr
from keras_mt3.version import __version__

# note_seq imports pydub, which warns at import when ffmpeg is missing. keras-mt3 never calls
# pydub (audio is decoded by libsndfile), so the warning would only mislead.
warnings.filterwarnings(
    "ignore", message="Couldn't find ffmpeg or avconv", category=RuntimeWarning, module="pydub"
)

_LAZY = {
    "MT3Backbone": "keras_mt3.models.mt3_backbone",
    "MT3Transcriber": "keras_mt3.models.mt3_transcriber",
    "load_audio": "keras_mt3.preprocessing.audio_io",
    "load_midi": "keras_mt3.midi_io",
    "save_midi": "keras_mt3.midi_io",
    "notes_to_json": "keras_mt3.note_export",
    "notes_to_csv": "keras_mt3.note_export",
    "notes_from_json": "keras_mt3.note_export",
    "plot_pianoroll": "keras_mt3.plotting",
    "transcription_metrics": "keras_mt3.metrics",
    "export": "keras_mt3.saved_model.exporter",
}


__getattr__ = lazy_module_getattr(__name__, _LAZY)

__all__ = ["__version__", *_LAZY]
