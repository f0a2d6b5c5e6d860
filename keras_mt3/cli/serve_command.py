"""`keras-mt3 serve`: the transcription web service (HTTP API + browser page) under uvicorn."""

import os
import sys

from keras_mt3.cli import common
from keras_mt3.service.settings import MIB, TOKEN_ENV_VAR, ServiceSettings, exposure_warning

_DEFAULTS = ServiceSettings()
_LIMIT_OPTIONS = (
    ("--max-upload-mb", float, _DEFAULTS.max_upload_bytes / MIB, "largest upload in MiB"),
    ("--max-audio-seconds", float, _DEFAULTS.max_audio_seconds, "longest audio per request"),
    (
        "--async-over-seconds",
        float,
        _DEFAULTS.async_over_seconds,
        "longer audio is answered with a job URL (202) to poll",
    ),
    (
        "--queue-size",
        int,
        _DEFAULTS.queue_size,
        "transcriptions that may wait; beyond that requests get 429",
    ),
    ("--timeout", float, _DEFAULTS.timeout_seconds, "most seconds one transcription may run"),
    (
        "--result-ttl",
        float,
        _DEFAULTS.result_ttl_seconds,
        "seconds a finished job's result is kept",
    ),
)


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "serve",
        help="run the transcription web service (HTTP API and browser page)",
        description="Serve MT3 over HTTP: POST audio to /v1/transcriptions for MIDI, JSON or CSV "
        "notes, or open the page at / to drop a file and see, hear and download its notes. "
        "Needs the serve extra: pip install 'keras-mt3[serve]'.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only)",
    )
    parser.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    common.add_model_arguments(parser)
    parser.add_argument(
        "--token",
        help=f"require 'Authorization: Bearer TOKEN' on the API (default: ${TOKEN_ENV_VAR}, "
        "else no token)",
    )
    for flag, kind, default, text in _LIMIT_OPTIONS:
        parser.add_argument(flag, type=kind, default=default, help=f"{text} (default: %(default)g)")
    parser.set_defaults(run=run)


def settings_from_args(args):
    from keras_mt3.errors import KerasMT3Error

    try:
        return ServiceSettings(
            max_upload_bytes=int(args.max_upload_mb * MIB),
            max_audio_seconds=args.max_audio_seconds,
            async_over_seconds=args.async_over_seconds,
            queue_size=args.queue_size,
            timeout_seconds=args.timeout,
            result_ttl_seconds=args.result_ttl,
            token=args.token or os.environ.get(TOKEN_ENV_VAR) or None,
        )
    except ValueError as error:
        raise KerasMT3Error(f"bad service setting: {error}") from None


def run(args):
    from keras_mt3.errors import KerasMT3Error

    settings = settings_from_args(args)
    warning = exposure_warning(args.host, settings.token)
    if warning:
        print(f"\n{'!' * 78}\n{warning}\n{'!' * 78}\n", file=sys.stderr)
    try:
        import uvicorn
    except ImportError:
        raise KerasMT3Error(
            "keras-mt3 serve needs uvicorn and FastAPI; install them with "
            "`pip install 'keras-mt3[serve]'`"
        ) from None
    from keras_mt3.service.app import create_app

    app = create_app(common.load_transcriber(args), settings)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"serving on http://{host}:{args.port}/ (API: /v1/transcriptions); Ctrl-C stops",
        file=sys.stderr,
    )
    # Ctrl-C must not wait for every queued transcription: requests still open after a few
    # seconds are dropped, and running work stops at its next batch.
    uvicorn.run(
        app, host=args.host, port=args.port, log_level="info", timeout_graceful_shutdown=5
    )
    return 0
