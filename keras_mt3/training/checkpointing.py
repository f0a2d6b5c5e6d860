"""What a run leaves in its output folder after every epoch, and how `resume` reads it back.

`OUT/checkpoints/epoch_NNNN.weights.h5` holds the weights and the optimizer state (with its
step count); Keras leaves the dropout seed generators' states out of weight files, so they are
saved beside each checkpoint (`epoch_NNNN.random_state.json`) and a resumed run draws the
masks an uninterrupted one would.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import pathlib
import warnings
from typing import TYPE_CHECKING, Union

from keras_mt3.errors import KerasMT3Error

if TYPE_CHECKING:
    import keras

    from keras_mt3.models.mt3_transcriber import MT3Transcriber

LOGGER = logging.getLogger(__name__)
PathLike = Union[str, os.PathLike]
CHECKPOINTS_FOLDER = "checkpoints"
WEIGHTS_SUFFIX = ".weights.h5"
RANDOM_STATE_SUFFIX = ".random_state.json"


def training_callbacks(output: PathLike) -> list[keras.callbacks.Callback]:
    """Weights and random state after every epoch, a CSV history, TensorBoard logs (when
    TensorBoard is installed) and a stop on NaN loss."""
    import keras

    output = pathlib.Path(output)
    checkpoints = output / CHECKPOINTS_FOLDER
    checkpoints.mkdir(parents=True, exist_ok=True)
    callbacks = [
        keras.callbacks.ModelCheckpoint(
            str(checkpoints / f"epoch_{{epoch:04d}}{WEIGHTS_SUFFIX}"), save_weights_only=True
        ),
        random_state_callback(checkpoints),
        keras.callbacks.CSVLogger(str(output / "history.csv"), append=True),
        keras.callbacks.TerminateOnNaN(),
    ]
    if importlib.util.find_spec("tensorboard") is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(output / "logs")))
    else:
        LOGGER.info("note: `pip install tensorboard` to also get TensorBoard logs")
    return callbacks


def random_state_callback(checkpoint_dir: PathLike) -> keras.callbacks.Callback:
    """A callback writing `epoch_NNNN.random_state.json` after every epoch."""
    import keras

    from keras_mt3.utils import atomic_write

    class SaveRandomState(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            path = pathlib.Path(checkpoint_dir) / f"epoch_{epoch + 1:04d}{RANDOM_STATE_SUFFIX}"
            states = [_to_list(variable) for variable in _seed_state_variables(self.model)]
            with atomic_write(path, "w") as handle:
                json.dump(states, handle)

    return SaveRandomState()


def resume_from_checkpoint(model: MT3Transcriber, output: PathLike) -> int:
    """Restores `output`'s last checkpoint into the compiled `model`: weights, optimizer state
    with its step count, and the dropout random state. Returns the step training stopped at.

    Raises:
        KerasMT3Error: there is no checkpoint, or it was written by another model or optimizer.
    """
    import keras

    folder = pathlib.Path(output) / CHECKPOINTS_FOLDER
    checkpoints = sorted(folder.glob(f"epoch_*{WEIGHTS_SUFFIX}"))
    if not checkpoints:
        raise KerasMT3Error(f"cannot resume: no checkpoints in {folder}")
    checkpoint = checkpoints[-1]
    # The weights file holds the optimizer's variables too, but Keras loads them only into
    # an optimizer that already has its slots.
    model.optimizer.build(model.trainable_variables)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a mismatched optimizer is reported below
        try:
            model.load_weights(str(checkpoint))
        except ValueError as error:
            raise KerasMT3Error(
                f"cannot resume: {checkpoint} does not fit this model ({error}); resume with "
                "the model options the run started with"
            ) from None
    step = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
    if step == 0:
        raise KerasMT3Error(
            f"cannot resume: {checkpoint} holds no state for the "
            f"{type(model.optimizer).__name__} optimizer; resume with the optimizer the run "
            "started with"
        )
    restored = _restore_random_state(model, checkpoint)
    LOGGER.info(
        "resuming from %s at step %d%s",
        checkpoint,
        step,
        "" if restored else " (no saved dropout random state: drawn afresh)",
    )
    return step


def _restore_random_state(model, weights_path):
    """Loads the states saved beside `weights_path`; False when there are none."""
    import numpy as np

    path = pathlib.Path(str(weights_path).removesuffix(WEIGHTS_SUFFIX) + RANDOM_STATE_SUFFIX)
    if not path.is_file():
        return False
    states = json.loads(path.read_text())
    variables = _seed_state_variables(model)
    if len(states) != len(variables):
        raise KerasMT3Error(f"cannot resume: {path} does not fit this model")
    for variable, state in zip(variables, states):
        variable.assign(np.asarray(state, dtype=variable.dtype))
    return True


def _seed_state_variables(model):
    # `variables` lists the seed generators' states as well, `weights` does not.
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


def _to_list(variable):
    import keras

    return keras.ops.convert_to_numpy(variable).tolist()
