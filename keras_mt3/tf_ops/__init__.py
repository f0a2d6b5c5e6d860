"""TensorFlow-op twins of NumPy / keras.ops code, for graphs that cannot call the originals.

Each module mirrors one module elsewhere in the package and is named after it:

- `log_mel_spectrogram` mirrors `keras_mt3.layers.log_mel_spectrogram` (the tf.data pipeline
  computes the model's inputs with it under any Keras backend);
- `segments` mirrors `keras_mt3.preprocessing.segments` (framing inside a SavedModel);
- `detokenize` mirrors `keras_mt3.codec.detokenize` (notes out of a SavedModel).

`exact_math` holds the float64 helper the twins share. A parity test per twin lives in
tests/tf_ops/. This package sits above the codec, the constants, the preprocessing and the
layers, whose numbers and tables it reuses, and below `keras_mt3.data` and
`keras_mt3.saved_model`, which import it; nothing below imports it. Importing a module here
imports TensorFlow.
"""
