"""Argument helpers shared by the subcommands."""

import pathlib

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff")


def add_model_arguments(parser):
    parser.add_argument(
        "--preset",
        default="mt3",
        help="preset name (mt3, ismir2021) or a directory with a T5X checkpoint or converted preset",
    )
    parser.add_argument(
        "--checkpoint-dir",
        help="read the preset's official T5X checkpoint from this directory instead of the cache "
        "(default: $KERAS_MT3_CHECKPOINT_DIR, else download once)",
    )
    parser.add_argument("--batch-size", type=int, default=16, help="segments decoded together")


def load_transcriber(args):
    from keras_mt3.models.mt3_transcriber import MT3Transcriber

    return MT3Transcriber.from_preset(
        args.preset, checkpoint_dir=args.checkpoint_dir, batch_size=args.batch_size
    )


def expand_inputs(paths, extensions=AUDIO_EXTENSIONS):
    """Files as given, plus the matching files (sorted, recursive) of every folder given.

    Paths that do not exist are returned too, so the caller reports them one by one.
    """
    found = []
    for raw in paths:
        path = pathlib.Path(raw)
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in extensions)
            )
        else:
            found.append(path)
    return found
