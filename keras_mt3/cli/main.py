"""`keras-mt3` command line: one subcommand per module in this package."""

import argparse
import importlib
import os
import sys

from keras_mt3.version import __version__

SUBCOMMANDS = ("transcribe", "evaluate", "plot", "train", "convert", "export", "serve")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-mt3", description="MT3 music transcription (audio to MIDI) with Keras 3."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--backend",
        choices=("jax", "tensorflow", "torch"),
        help="Keras backend (default: $KERAS_BACKEND, else Keras' own default).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        _subcommand_module(name).add_parser(subparsers)
    return parser


def _subcommand_module(name):
    # A listed command whose module is missing is a broken package: say so, never drop it.
    try:
        return importlib.import_module(f"keras_mt3.cli.{name}_command")
    except ModuleNotFoundError as error:
        if error.name == f"keras_mt3.cli.{name}_command":
            raise ImportError(
                f"keras-mt3: the `{name}` command is listed but keras_mt3/cli/{name}_command.py "
                "is missing; reinstall keras-mt3"
            ) from error
        raise


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.backend:  # must happen before anything imports keras
        os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_mt3.errors import KerasMT3Error
    from keras_mt3.tensorflow_logs import quiet_tensorflow_startup

    try:
        with quiet_tensorflow_startup():
            return args.run(args) or 0
    except KerasMT3Error as error:
        print(f"keras-mt3 {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        # The interrupted work may still run on a backend's own threads (an XLA program that
        # Ctrl-C does not stop), and interpreter teardown under them can crash (SIGSEGV), which
        # turned a clean Ctrl-C into exit -11. The `finally` blocks that remove partial outputs
        # ran on the way here, so leave without the teardown.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)


if __name__ == "__main__":
    sys.exit(main())
