"""`keras-mt3 transcribe IN... -o OUT`: audio files or folders to MIDI (or JSON/CSV notes)."""

import pathlib
import sys
import time

from keras_mt3 import note_export
from keras_mt3.cli import common


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "transcribe",
        help="transcribe audio files or folders to MIDI",
        description="Transcribe audio (wav, flac, ogg, mp3; any rate; stereo is mixed down) to MIDI.",
    )
    parser.add_argument("inputs", nargs="+", help="audio files and/or folders (searched recursively)")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="output file (one input) or folder (written as <input name>.mid, .json or .csv)",
    )
    parser.add_argument(
        "--format",
        choices=tuple(note_export.FORMATS),
        help="mid (MIDI), or json or csv notes (onset, offset, pitch, velocity, program, "
        "instrument, is_drum); default: the extension of -o, else mid",
    )
    common.add_model_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(run=run)


def output_paths(inputs, output, format_name="mid"):
    output = pathlib.Path(output)
    if len(inputs) == 1 and note_export.format_for_path(output, default=None) == format_name:
        return [output]
    extension = note_export.FORMATS[format_name][1]
    return [output / (path.stem + extension) for path in inputs]


def output_format(output, requested):
    """--format, else the format -o's extension names, else MIDI; the two must not disagree."""
    from keras_mt3.errors import KerasMT3Error

    named = note_export.format_for_path(output, default=None)
    if requested and named and named != requested:
        raise KerasMT3Error(
            f"-o {output} names a {named} file but --format is {requested}; give the output "
            f"a {note_export.FORMATS[requested][1]} name, or drop --format"
        )
    return requested or named or "mid"


def describe(note_sequence):
    programs = sorted({(n.is_drum, n.program) for n in note_sequence.notes})
    names = ["drums" if drum else f"program {program}" for drum, program in programs]
    return f"{len(note_sequence.notes)} notes, {len(names)} instruments ({', '.join(names) or 'none'})"


def run(args):
    from keras_mt3.errors import KerasMT3Error

    inputs = common.expand_inputs(args.inputs)
    if not inputs:
        raise KerasMT3Error(f"no audio files found in {' '.join(args.inputs)}")
    format_name = output_format(args.output, args.format)
    outputs = output_paths(inputs, args.output, format_name)
    model = common.load_transcriber(args)
    failures = 0
    for source, target in zip(inputs, outputs):
        started = time.perf_counter()
        try:
            note_sequence = model.transcribe(
                source, progress=None if not args.no_progress else False
            )
            note_export.save_notes(note_sequence, target, format_name)
        except KerasMT3Error as error:
            failures += 1
            print(f"{source}: error: {error}", file=sys.stderr)
            continue
        seconds = time.perf_counter() - started
        print(f"{source}: {describe(note_sequence)} -> {target} ({seconds:.1f} s)")
    if failures:
        print(f"{failures} of {len(inputs)} files failed", file=sys.stderr)
        return 1
    return 0
