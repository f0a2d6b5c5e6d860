"""Argument helpers shared by the subcommands."""

import argparse
import math
import os
import pathlib

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")


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
        "--batch-size", type=positive_int, default=16, help="segments decoded together (default: 16)"
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

    return MT3Transcriber.from_preset(
        args.preset, checkpoint_dir=args.checkpoint_dir, batch_size=args.batch_size
    )


def expand_inputs(paths, extensions=AUDIO_EXTENSIONS):
    """Files as given, plus the matching files (sorted, recursive) of every folder given.

    Paths that do not exist are returned too, so the caller reports them one by one. A file
    reached twice (given, and inside a folder given) is listed once.
    """
    return [path for path, _ in expand_inputs_with_roots(paths, extensions)]


def expand_inputs_with_roots(paths, extensions=AUDIO_EXTENSIONS):
    """`(file, root)` pairs of `expand_inputs`: root is the folder given that the file was found
    in, or None for a file given directly (what output names mirror)."""
    found, seen = [], set()
    for raw in paths:
        path = pathlib.Path(raw)
        if path.is_dir():
            matches = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in extensions
            )
            pairs = [(match, path) for match in matches]
        else:
            pairs = [(path, None)]
        for file, root in pairs:
            key = os.path.realpath(file)
            if key not in seen:
                seen.add(key)
                found.append((file, root))
    return found

