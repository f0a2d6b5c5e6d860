"""`TrainingConfig`: every option of a training run, with its default, in one place.

The field names are the `keras-mt3 train` flags with underscores and the keys of its JSON
`--config` file. The module imports nothing heavy, so the command line can read the defaults
for its help without loading TensorFlow or Keras.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional, Sequence, Union

from keras_mt3.constants import MAX_DECODE_LENGTH
from keras_mt3.errors import KerasMT3Error

PathLike = Union[str, os.PathLike]

# Backbone shapes by name ("mt3" is the released model's; the others are for small budgets).
BACKBONE_SIZES = {
    "mt3": dict(
        hidden_dim=512, num_heads=6, head_dim=64, intermediate_dim=1024,
        num_encoder_layers=8, num_decoder_layers=8,
    ),
    "small": dict(
        hidden_dim=256, num_heads=4, head_dim=64, intermediate_dim=1024,
        num_encoder_layers=4, num_decoder_layers=4,
    ),
    "tiny": dict(
        hidden_dim=128, num_heads=2, head_dim=64, intermediate_dim=256,
        num_encoder_layers=2, num_decoder_layers=2,
    ),
}
DATASET_READERS = ("maestro", "slakh", "guitarset", "urmp")
OPTIMIZERS = ("adafactor", "adamw")
LOSS_NORMALIZATIONS = ("token_mean", "sum")


@dataclasses.dataclass
class TrainingConfig:
    """What to train, on what, and how.

    Data: `data` (folders of `x.wav` + `x.mid` pairs), the dataset folders `maestro`, `slakh`,
    `guitarset`, `urmp`, and `synthetic` (that many rendered random clips, a smoke test). Pairs
    of `split` train, pairs of `validation_split` are scored after every epoch
    (`validation_steps` batches; None: all); datasets without splits train on everything.

    Model: `preset` (a preset name or folder to fine-tune, read from `checkpoint_dir` if
    given), else a new backbone of `model_size` (`BACKBONE_SIZES`) with `vocabulary` and
    `dropout`.

    Steps: `steps` in all, a checkpoint every `steps_per_epoch`; `batch_size` examples per
    step of `window_frames` frames (None: the vocabulary's, 256 for mt3) and `target_length`
    tokens; `program_granularity` of the targets (None: the vocabulary's); `cache` "memory",
    None (or "none") or a folder. The data fields mean what they mean in
    `keras_mt3.data.TrainingDataConfig` and have its defaults.

    Optimization: `optimizer` (`make_optimizer`: "adafactor" or "adamw"), `learning_rate`
    (a number or a Keras schedule; None: the optimizer's default), `z_loss` and
    `loss_normalization` (`MT3Loss`), `jit_compile` (None: XLA under jax and tensorflow,
    eager under torch), `data_parallel` over the local devices, `resume` from `output`'s last
    checkpoint, `seed` of the data order and initialization, and Keras `verbose` for `fit`.
    """

    output: Optional[PathLike] = None
    data: Sequence[PathLike] = ()
    maestro: Optional[PathLike] = None
    slakh: Optional[PathLike] = None
    guitarset: Optional[PathLike] = None
    urmp: Optional[PathLike] = None
    synthetic: int = 0
    split: str = "train"
    validation_split: str = "validation"
    validation_steps: Optional[int] = None
    cache: Optional[str] = "memory"
    preset: Optional[str] = None
    checkpoint_dir: Optional[PathLike] = None
    model_size: str = "small"
    vocabulary: str = "mt3"
    program_granularity: Optional[str] = None
    dropout: float = 0.1
    steps: int = 10000
    steps_per_epoch: int = 500
    batch_size: int = 8
    window_frames: Optional[int] = None
    target_length: int = MAX_DECODE_LENGTH
    optimizer: str = "adafactor"
    learning_rate: Any = None
    z_loss: float = 1e-4
    loss_normalization: str = "token_mean"
    jit_compile: Optional[bool] = None
    data_parallel: bool = False
    resume: bool = False
    seed: Optional[int] = None
    verbose: Union[str, int] = "auto"

    def __post_init__(self):
        if isinstance(self.data, (str, os.PathLike)):
            self.data = [self.data]
        self.data = list(self.data)
        for name, choices in (
            ("model_size", BACKBONE_SIZES),
            ("optimizer", OPTIMIZERS),
            ("loss_normalization", LOSS_NORMALIZATIONS),
        ):
            _check_choice(name, getattr(self, name), choices)
        for name in ("steps", "steps_per_epoch", "batch_size", "target_length"):
            if getattr(self, name) < 1:
                raise KerasMT3Error(f"{name} must be at least 1, got {getattr(self, name)}")

    @property
    def has_data(self) -> bool:
        """Whether any training data is named."""
        readers = [getattr(self, name) for name in DATASET_READERS]
        return bool(self.data or self.synthetic or any(readers))

    @property
    def epochs(self) -> int:
        """`fit` epochs of `steps_per_epoch` that cover `steps` (at least one)."""
        return max(1, -(-self.steps // self.steps_per_epoch))


def option_names() -> list[str]:
    """The fields of `TrainingConfig`, i.e. the keys a JSON config may hold."""
    return [field.name for field in dataclasses.fields(TrainingConfig)]


def _check_choice(name, value, choices):
    if value not in choices:
        raise KerasMT3Error(f"{name} {value!r} is unknown; use one of {', '.join(choices)}")
