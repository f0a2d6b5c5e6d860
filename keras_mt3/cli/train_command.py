"""`keras-mt3 train -o OUT_DIR`: train or fine-tune MT3 on audio/MIDI datasets.

Options come from flags and/or a JSON file (`--config`, keys = the long flag names with
underscores); flags win over the file, the file over the defaults. OUT_DIR receives
`checkpoints/` (weights and optimizer state after every epoch), `history.csv`, `logs/`
(TensorBoard, if installed), `train_config.json` (the options used) and `preset/` (the final
model, loadable with `MT3Transcriber.from_preset(OUT_DIR/preset)` and `keras-mt3 transcribe
--preset`).
"""

import argparse
import contextlib
import json
import logging
import pathlib
import sys

from keras_mt3.errors import KerasMT3Error
from keras_mt3.training.config import (
    BACKBONE_SIZES,
    LOSS_NORMALIZATIONS,
    OPTIMIZERS,
    TrainingConfig,
    option_names,
)

DEFAULTS = TrainingConfig()


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="train or fine-tune a model on audio + MIDI datasets",
        description=__doc__.split("\n\n", 1)[1],
        argument_default=None,
    )
    add = parser.add_argument
    add("-o", "--output", help="output folder (checkpoints, logs, final preset)")
    add("--config", help="JSON file with any of these options (keys use underscores)")
    data = parser.add_argument_group("data")
    data.add_argument("--data", action="append", help="folder of x.wav + x.mid pairs (repeatable)")
    data.add_argument("--maestro", help="MAESTRO folder (with maestro-v*.csv/json)")
    data.add_argument("--slakh", help="Slakh2100 folder (train/validation/test/TrackNNNNN)")
    data.add_argument("--guitarset", help="GuitarSet folder (annotation/, audio_mono-mic/)")
    data.add_argument("--urmp", help="URMP folder (NN_Piece_inst.../)")
    data.add_argument("--synthetic", type=int, help="add N rendered random clips (a smoke test)")
    _add_option(data, "--split", "split to train on where datasets define one")
    _add_option(data, "--validation-split", "split to validate on each epoch")
    data.add_argument("--validation-steps", type=int, help="validation batches per epoch (all)")
    _add_option(data, "--cache", "'memory', 'none', or a folder for a reusable on-disk cache")
    model = parser.add_argument_group("model")
    model.add_argument("--preset", help="fine-tune this preset (mt3) or preset folder")
    model.add_argument("--checkpoint-dir", help="the preset's T5X checkpoint folder")
    _add_option(model, "--model-size", "size of a new model", choices=sorted(BACKBONE_SIZES))
    _add_option(model, "--vocabulary", "target vocabulary of a new model: mt3 or ismir2021")
    model.add_argument(
        "--program-granularity", choices=("flat", "midi_class", "full"), help="instrument detail"
    )
    _add_option(model, "--dropout", "dropout of a new model", type=float)
    train = parser.add_argument_group("training")
    _add_option(train, "--steps", "total training steps", type=int)
    _add_option(train, "--steps-per-epoch", "steps between checkpoints", type=int)
    _add_option(train, "--batch-size", "examples per step", type=int)
    train.add_argument("--window-frames", type=int, help="frames per example (vocabulary's: 256)")
    _add_option(train, "--target-length", "target tokens per example", type=int)
    _add_option(train, "--optimizer", "", choices=OPTIMIZERS)
    train.add_argument("--learning-rate", type=float, help="(adafactor 1e-3, adamw 3e-4)")
    _add_option(train, "--z-loss", "z-loss weight", type=float)
    _add_option(
        train, "--loss-normalization", "token_mean or T5X's sum", choices=LOSS_NORMALIZATIONS
    )
    train.add_argument(
        "--jit-compile",
        action=argparse.BooleanOptionalAction,
        help="XLA-compile the train step (default: on under jax/tensorflow, off under torch)",
    )
    train.add_argument(
        "--data-parallel",
        action=argparse.BooleanOptionalAction,
        help="split batches over all local devices (jax: DataParallel, tensorflow: Mirrored)",
    )
    train.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        help="continue from OUT_DIR's last checkpoint (weights, optimizer state, step)",
    )
    train.add_argument("--seed", type=int, help="seed of the data order and initialization")
    _add_option(train, "--verbose", "Keras fit verbosity: auto, 0, 1 or 2")
    parser.set_defaults(run=run)


def _add_option(group, flag, text, **kwargs):
    """Adds `flag` with its default, read off `TrainingConfig`, at the end of its help."""
    default = getattr(DEFAULTS, flag.lstrip("-").replace("-", "_"))
    group.add_argument(flag, help=f"{text} ({default})".strip(), **kwargs)


def resolve_options(args):
    """Defaults, then the `--config` JSON, then the flags given: one `TrainingConfig`."""
    options = {}
    if args.config:
        options.update(_read_config(args.config))
    names = option_names()
    given = {key: value for key, value in vars(args).items() if key in names}
    options.update({key: value for key, value in given.items() if value is not None})
    try:
        config = TrainingConfig(**options)
    except TypeError as error:  # a JSON value of the wrong kind
        raise KerasMT3Error(f"bad training option: {error}") from None
    if not config.output:
        raise KerasMT3Error("give an output folder with -o/--output (or `output` in --config)")
    if not config.has_data:
        raise KerasMT3Error(
            "no training data: give --data FOLDER, --maestro, --slakh, --guitarset, --urmp or "
            "--synthetic N"
        )
    return config


def run(args):
    from keras_mt3.training.run import train

    config = resolve_options(args)
    with _notes_on_stderr("keras_mt3.training"):
        result = train(config)
    print(f"data: {result.skip_log.summary()}", file=sys.stderr)
    print(f"saved the trained model to {result.preset_dir}")
    return 0


class _StderrHandler(logging.Handler):
    # Looks sys.stderr up at each record, so a replaced stderr (pytest's capture) is honoured.
    def emit(self, record):
        print(self.format(record), file=sys.stderr)


@contextlib.contextmanager
def _notes_on_stderr(logger_name):
    """Prints the library's progress notes (INFO and up) as plain lines while the run lasts."""
    logger = logging.getLogger(logger_name)
    handler = _StderrHandler()
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


def _read_config(path):
    try:
        config = json.loads(pathlib.Path(path).expanduser().read_text())
    except (OSError, ValueError) as error:
        raise KerasMT3Error(f"cannot read the training config {path}: {error}") from None
    if not isinstance(config, dict):
        raise KerasMT3Error(f"{path} must hold a JSON object of options")
    names = option_names()
    unknown = sorted(set(config) - set(names))
    if unknown:
        raise KerasMT3Error(
            f"{path}: unknown options {', '.join(unknown)}; known: {', '.join(sorted(names))}"
        )
    return config
