"""keras-mt3: MT3 multi-instrument music transcription for Keras 3."""

from keras_mt3.version import __version__

_LAZY = {
    "MT3Backbone": "keras_mt3.models.mt3_backbone",
    "MT3Transcriber": "keras_mt3.models.mt3_transcriber",
    "load_audio": "keras_mt3.preprocessing.audio_io",
    "load_midi": "keras_mt3.midi_io",
    "save_midi": "keras_mt3.midi_io",
    "plot_pianoroll": "keras_mt3.plotting",
    "transcription_metrics": "keras_mt3.metrics",
}


def __getattr__(name):
    # Importing keras_mt3 stays cheap (and backend-neutral) until a Keras-backed name is used.
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'keras_mt3' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
