"""`train(config)`: a whole training run, from the datasets to the final preset.

`config.output` receives `checkpoints/` (weights, optimizer and random state after every
epoch), `history.csv`, `logs/` (TensorBoard, if installed), `train_config.json` (the options,
the backend and the backbone config) and `preset/` (the final model, loadable with
`MT3Transcriber.from_preset`). Progress notes go to the `keras_mt3.training` logger.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import pathlib
import warnings
from typing import TYPE_CHECKING, Any, ContextManager

from keras_mt3.errors import KerasMT3Error
from keras_mt3.training.checkpointing import resume_from_checkpoint, training_callbacks
from keras_mt3.training.config import TrainingConfig
from keras_mt3.training.model import build_transcriber, compile_for_training
from keras_mt3.training.sources import collect_pairs

if TYPE_CHECKING:
    from keras_mt3.data.skip_log import SkipLog
    from keras_mt3.models.mt3_transcriber import MT3Transcriber

LOGGER = logging.getLogger(__name__)
CONFIG_RECORD = "train_config.json"


@dataclasses.dataclass
class TrainingResult:
    """What `train` made: the trained `model`, its `preset_dir`, the Keras `history` and the
    `skip_log` of the pairs that could not be used."""

    model: MT3Transcriber
    preset_dir: pathlib.Path
    history: Any
    skip_log: SkipLog


def train(config: TrainingConfig) -> TrainingResult:
    """Trains (or fine-tunes, or with `config.resume` continues) the model `config` describes.

    Raises:
        KerasMT3Error: no output folder or no training data named, no usable training pairs,
            data-parallel training under torch, or a checkpoint that does not fit.
    """
    import keras

    from keras_mt3.data.pipeline import TrainingDataConfig, evaluation_dataset, training_dataset
    from keras_mt3.data.skip_log import SkipLog

    if not config.output:
        raise KerasMT3Error("give an output folder (`output`)")
    if not config.has_data:
        raise KerasMT3Error(
            "no training data: name data folders or maestro, slakh, guitarset, urmp, or a "
            "number of synthetic clips"
        )
    output = pathlib.Path(config.output).expanduser()
    output.mkdir(parents=True, exist_ok=True)
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    with distribution_scope(config.data_parallel):
        model = compile_for_training(build_transcriber(config), config)
        step = resume_from_checkpoint(model, output) if config.resume else 0
    data_config = TrainingDataConfig(
        vocabulary=model.vocabulary,
        program_granularity=config.program_granularity,
        window_frames=config.window_frames,
        target_length=config.target_length,
        batch_size=config.batch_size,
        cache=None if config.cache in (None, "none") else config.cache,
        seed=config.seed,
    )
    train_sources, validation_pairs = collect_pairs(config)
    skip_log = SkipLog()
    train_data = training_dataset(
        train_sources, data_config, skip_log=skip_log, start_batch=_batches_used(step, config)
    )
    validation_data = None
    if validation_pairs:
        validation_data = evaluation_dataset(validation_pairs, data_config, skip_log=skip_log)
        if config.validation_steps:
            validation_data = validation_data.take(config.validation_steps)

    write_config_record(output / CONFIG_RECORD, config, model)
    LOGGER.info(
        "training %.1fM-parameter model on %d pairs (%s, jit_compile=%s), %d epochs of %d "
        "steps -> %s",
        model.backbone.count_params() / 1e6,
        sum(len(pairs) for pairs in train_sources.values()),
        keras.backend.backend(),
        model.jit_compile,
        config.epochs,
        config.steps_per_epoch,
        output,
    )
    with warnings.catch_warnings():
        # Validation sets are finite streams of unknown length; Keras warns when one ends.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        history = model.fit(
            train_data,
            steps_per_epoch=config.steps_per_epoch,
            epochs=config.epochs,
            initial_epoch=step // config.steps_per_epoch,
            validation_data=validation_data,
            callbacks=training_callbacks(output),
            verbose=config.verbose if config.verbose == "auto" else int(config.verbose),
            shuffle=False,  # the pipeline draws windows in random order itself
        )

    preset_dir = model.save_to_preset(output / "preset")
    return TrainingResult(model, pathlib.Path(preset_dir), history, skip_log)


def distribution_scope(data_parallel: bool) -> ContextManager:
    """Where to build and compile the model so that `fit` splits each batch over the local
    devices: a `tf.distribute.MirroredStrategy` scope under TensorFlow; under JAX Keras'
    global distribution is set (so the scope does nothing). Without `data_parallel`, nothing.
    """
    if not data_parallel:
        return contextlib.nullcontext()
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        LOGGER.info("data parallel over %d devices: %s", len(devices), ", ".join(devices))
        return contextlib.nullcontext()
    if backend == "tensorflow":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy()
        LOGGER.info("data parallel over %d devices", strategy.num_replicas_in_sync)
        return strategy.scope()
    raise KerasMT3Error(
        "data-parallel training supports the jax and tensorflow backends; under torch run one "
        "process per device with torch.distributed instead"
    )


def _batches_used(step, config):
    """Batches to skip so that a resumed seeded run sees the batches an uninterrupted one
    would; without a seed the stream is random anyway."""
    if step and config.seed is None:
        LOGGER.warning("note: no seed, so the resumed data stream is a new random one")
        return 0
    return step


def write_config_record(path: os.PathLike, config: TrainingConfig, model: MT3Transcriber) -> None:
    """`train_config.json`: every option of the run, the backend and the backbone config."""
    from keras_mt3.utils import atomic_write

    # Field by field rather than `asdict`, which would deep-copy a learning-rate schedule.
    options = {field.name: getattr(config, field.name) for field in dataclasses.fields(config)}
    record = dict(
        options,
        backend=os.environ.get("KERAS_BACKEND"),
        backbone=model.backbone.get_config(),
    )
    with atomic_write(path, "w") as handle:
        json.dump(record, handle, indent=2, default=str)
