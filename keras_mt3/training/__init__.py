"""Training MT3 models: `train(TrainingConfig(...))` runs what `keras-mt3 train` runs.

- `config`: `TrainingConfig`, every option of a run with its default, and `BACKBONE_SIZES`.
- `model`: the model a run trains (`build_transcriber`) and its compilation
  (`compile_for_training`).
- `sources`: the training and validation pairs of the datasets a run names (`collect_pairs`).
- `checkpointing`: the per-epoch callbacks and `resume_from_checkpoint`.
- `run`: `train`, the whole run, and `distribution_scope` for data-parallel training.

Names are imported on first use, so reading the defaults does not load Keras or TensorFlow.
"""

from keras_mt3.utils import lazy_module_getattr

_LAZY = {
    "BACKBONE_SIZES": "keras_mt3.training.config",
    "TrainingConfig": "keras_mt3.training.config",
    "build_transcriber": "keras_mt3.training.model",
    "compile_for_training": "keras_mt3.training.model",
    "default_jit_compile": "keras_mt3.training.model",
    "collect_pairs": "keras_mt3.training.sources",
    "training_callbacks": "keras_mt3.training.checkpointing",
    "random_state_callback": "keras_mt3.training.checkpointing",
    "resume_from_checkpoint": "keras_mt3.training.checkpointing",
    "TrainingResult": "keras_mt3.training.run",
    "distribution_scope": "keras_mt3.training.run",
    "train": "keras_mt3.training.run",
}


__getattr__ = lazy_module_getattr(__name__, _LAZY)

__all__ = list(_LAZY)
