"""TensorFlow SavedModel export for TF Serving: `keras_mt3.export(model, path, ...)`.

Signature names and their inputs/outputs are in `keras_mt3.saved_model.signatures`;
serving/README.md explains how to serve the result.
"""

from keras_mt3.saved_model.exporter import DEFAULT_MAX_AUDIO_SECONDS
from keras_mt3.saved_model.exporter import export

__all__ = ["DEFAULT_MAX_AUDIO_SECONDS", "export"]
