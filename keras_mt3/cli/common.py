"""Argument helpers shared by the subcommands."""

import argparse
import math


def add_model_arguments(parser):
    parser.add_argument(
        "--preset",
        default="mt3",
        help="preset name (mt3, ismir2021; default: mt3), a preset folder (keras-mt3 convert or "
        "train), a T5X checkpoint folder, hf://OWNER/REPO or "
        "kaggle://OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION]",
    )
    parser.add_argument(
        "--checkpoint-dir",
        help="read a preset name's T5X checkpoint from this directory instead of the cache "
        "(default: $KERAS_MT3_CHECKPOINT_DIR, else download once); it is converted into the "
        "cache on first use",
    )
    parser.add_argument(
        "--decode-batch-size",
        type=positive_int,
        help="segments decoded together; fewer use less memory (default: 16)",
    )


def positive_int(text):
    """argparse type: an integer >= 1 (a bad value is a usage error before anything loads)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def positive_seconds(text):
    """argparse type: a finite number of seconds > 0."""
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def non_negative_seconds(text):
    """argparse type: a finite number of seconds >= 0."""
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text!r}")
    return value


def _finite_float(text):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def load_transcriber(args):
    from keras_mt3.models.mt3_transcriber import MT3Transcriber

    settings = {}
    if args.decode_batch_size is not None:
        settings["decode_batch_size"] = args.decode_batch_size
    return MT3Transcriber.from_preset(args.preset, checkpoint_dir=args.checkpoint_dir, **settings)
