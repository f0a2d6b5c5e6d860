"""Training data: dataset readers, the tf.data pipeline, dataset mixtures and a toy synthesizer.

Names are imported on first use, so reading a dataset listing does not load TensorFlow.
"""

from keras_mt3.utils import lazy_module_getattr

_LAZY = {
    "TranscriptionPair": "keras_mt3.data.pairs",
    "folder_pairs": "keras_mt3.data.folder_dataset",
    "maestro_pairs": "keras_mt3.data.maestro",
    "slakh_pairs": "keras_mt3.data.slakh",
    "guitarset_pairs": "keras_mt3.data.guitarset",
    "urmp_pairs": "keras_mt3.data.urmp",
    "mixture_rates": "keras_mt3.data.mixture",
    "SkipLog": "keras_mt3.data.skip_log",
    "DataPairError": "keras_mt3.data.loading",
    "load_pair": "keras_mt3.data.loading",
    "ClipStore": "keras_mt3.data.clip_store",
    "TrainingDataConfig": "keras_mt3.data.pipeline",
    "training_dataset": "keras_mt3.data.pipeline",
    "evaluation_dataset": "keras_mt3.data.pipeline",
    "window_dataset": "keras_mt3.data.pipeline",
    "tf_log_mel": "keras_mt3.tf_ops.log_mel_spectrogram",
    "render_note_sequence": "keras_mt3.data.synth",
    "random_note_sequence": "keras_mt3.data.synthetic",
    "synthetic_pairs": "keras_mt3.data.synthetic",
}


__getattr__ = lazy_module_getattr(__name__, _LAZY)

__all__ = list(_LAZY)
