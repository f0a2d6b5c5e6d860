"""`keras-mt3 export OUT_DIR`: write a TensorFlow SavedModel for TF Serving."""

import os
import pathlib

from keras_mt3.cli import common


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a TensorFlow SavedModel (audio in, notes out) for TF Serving",
        description=(
            "Export the model as a TensorFlow SavedModel whose default signature takes 16 kHz "
            "audio and returns notes, computed entirely in TensorFlow ops (no Python package "
            "needed to serve or call it). For TF Serving, OUT_DIR is a numbered version folder, "
            "e.g. models/mt3/1. See serving/README.md."
        ),
    )
    parser.add_argument("output", metavar="OUT_DIR", help="SavedModel folder to create")
    common.add_model_arguments(parser)
    parser.add_argument(
        "--max-audio-seconds",
        type=common.positive_seconds,
        default=None,
        help="longest clip one request may hold (default: 600); longer ones are rejected",
    )
    parser.add_argument(
        "--request-batch-size",
        type=common.positive_int,
        default=None,
        help="fix the number of clips per request (default: any)",
    )
    parser.add_argument(
        "--no-xla",
        action="store_true",
        help="leave out the XLA signature decode_xla",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing OUT_DIR, only if it is empty or a SavedModel keras-mt3 exported "
        "(any other folder is refused, untouched)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(run=run)


def run(args):
    # The SavedModel is built from TensorFlow graphs; under another backend export() rebuilds
    # the model in a TensorFlow child process, so only pick TensorFlow if nothing was chosen.
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from keras_mt3.saved_model import DEFAULT_MAX_AUDIO_SECONDS
    from keras_mt3.saved_model import export
    from keras_mt3.saved_model.exporter import check_export_target

    check_export_target(pathlib.Path(args.output).expanduser(), args.overwrite)  # before loading
    model = common.load_transcriber(args)
    max_audio_seconds = args.max_audio_seconds
    if max_audio_seconds is None:
        max_audio_seconds = DEFAULT_MAX_AUDIO_SECONDS
    path = export(
        model,
        args.output,
        request_batch_size=args.request_batch_size,
        max_audio_seconds=max_audio_seconds,
        include_xla=not args.no_xla,
        overwrite=args.overwrite,
        progress=False if args.no_progress else None,
    )
    print(
        f"wrote SavedModel {path} (signatures: serving_default"
        f", decode_tokens{'' if args.no_xla else ', decode_xla'}; "
        f"clips up to {max_audio_seconds:g} s)"
    )
    return 0
