"""The model a run trains (a preset to fine-tune, or a new backbone) and how it is compiled."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from keras_mt3.constants import MAX_DECODE_LENGTH, NUM_MEL_BINS
from keras_mt3.errors import KerasMT3Error
from keras_mt3.training.config import BACKBONE_SIZES, TrainingConfig

if TYPE_CHECKING:
    from keras_mt3.models.mt3_transcriber import MT3Transcriber

LOGGER = logging.getLogger(__name__)


def build_transcriber(config: TrainingConfig) -> MT3Transcriber:
    """The model to train: `config.preset` to fine-tune, or a new backbone of
    `config.model_size`."""
    from keras_mt3.codec.vocabulary import get_vocabulary
    from keras_mt3.models.mt3_backbone import MT3Backbone
    from keras_mt3.models.mt3_transcriber import MT3Transcriber

    if config.preset:
        model = MT3Transcriber.from_preset(config.preset, checkpoint_dir=config.checkpoint_dir)
        _check_fits(model, config)
        return model
    vocabulary = get_vocabulary(config.vocabulary)
    frames = config.window_frames or vocabulary.input_frames
    # Position tables are computed, not learned: make them long enough for inference (full
    # segments, up to 1024 decoded tokens) whatever the training windows and targets are.
    backbone = MT3Backbone(
        vocabulary_size=vocabulary.num_embeddings,
        input_dim=NUM_MEL_BINS,
        max_encoder_length=max(frames, vocabulary.input_frames),
        max_decoder_length=max(config.target_length, MAX_DECODE_LENGTH),
        dropout=config.dropout,
        **BACKBONE_SIZES[config.model_size],
    )
    return MT3Transcriber(backbone, vocabulary=vocabulary, max_decode_length=config.target_length)


def _check_fits(model, config):
    backbone = model.backbone
    frames = config.window_frames or model.vocabulary.input_frames
    too_long = config.target_length > backbone.max_decoder_length
    if frames > backbone.max_encoder_length or too_long:
        raise KerasMT3Error(
            f"this model takes at most {backbone.max_encoder_length} frames and "
            f"{backbone.max_decoder_length} target tokens; lower window_frames / target_length"
        )


def compile_for_training(model: MT3Transcriber, config: TrainingConfig) -> MT3Transcriber:
    """Compiles with `MT3Loss` and `config.optimizer`; `jit_compile` is always explicit."""
    import keras

    from keras_mt3.models.losses import MT3Loss
    from keras_mt3.models.optimizers import make_optimizer

    jit_compile = config.jit_compile
    if jit_compile is None:
        jit_compile = default_jit_compile()
    model.compile(
        optimizer=make_optimizer(config.optimizer, config.learning_rate),
        loss=MT3Loss(z_loss=config.z_loss, normalization=config.loss_normalization),
        jit_compile=bool(jit_compile),
    )
    if keras.backend.backend() == "torch" and jit_compile:
        LOGGER.warning("note: torch.compile is experimental for this model")
    return model


def default_jit_compile() -> bool:
    """XLA under JAX and TensorFlow; eager under torch (torch.compile gains little on this
    model and compiles slowly)."""
    import keras

    return keras.backend.backend() in ("jax", "tensorflow")
