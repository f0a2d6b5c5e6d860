"""`keras-mt3 transcribe IN... -o OUT`: audio files or folders to MIDI (or JSON/CSV notes)."""

import pathlib
import sys
import time

from keras_mt3 import note_export
from keras_mt3.cli import common

_LABELS = {"mid": "MIDI", "json": "JSON", "csv": "CSV"}


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "transcribe",
        help="transcribe audio files or folders to MIDI",
        description="Transcribe audio (wav, flac, ogg, mp3; any rate; stereo is mixed down) to "
        "MIDI (or JSON/CSV notes, --format). Every input gets its own output: files found in a folder keep their subfolders "
        "below it, inputs that would share a name keep the folders (then the extension) that "
        "tell them apart; any still alike are refused before work starts. Each file appears "
        "only once complete. Inputs and output paths are checked before the model loads; a "
        "file that fails (input or output) is reported and the others still go through; the "
        "exit code is then 1.",
    )
    parser.add_argument("inputs", nargs="+", help="audio files and/or folders (searched recursively)")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="output file (one input only) or folder (written as <input name>.mid, .json or "
        ".csv, mirroring the subfolders of a folder given)",
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


def output_paths(found, output, format_name="mid"):
    """The output file for each `(file, root)` of `keras_mt3.utils.expand_inputs_with_roots`.

    Raises:
        KerasMT3Error: `output` names one file but there are several inputs, `output` is a
            file rather than a folder, or two inputs cannot be told apart.
    """
    from keras_mt3.errors import OutputError
    from keras_mt3.utils import unique_output_names

    output = pathlib.Path(output)
    extension = note_export.FORMATS[format_name][1]
    if note_export.format_for_path(output, default=None) is not None:
        if len(found) > 1:
            raise OutputError(
                f"-o {output} names one {_LABELS[format_name]} file, but {len(found)} audio "
                "files were given; "
                f"give a folder to write one {extension} file per input"
            )
        return [output]
    if output.exists() and not output.is_dir():
        raise OutputError(f"-o {output} is a file; give a folder (or a file name for one input)")
    sources = [path for path, _ in found]
    roots = [root for _, root in found]
    return [output / name for name in unique_output_names(sources, extension, roots)]


def describe(note_sequence):
    programs = sorted({(n.is_drum, n.program) for n in note_sequence.notes})
    names = ["drums" if drum else f"program {program}" for drum, program in programs]
    return f"{len(note_sequence.notes)} notes, {len(names)} instruments ({', '.join(names) or 'none'})"


def run(args):
    from keras_mt3.errors import KerasMT3Error
    from keras_mt3.preprocessing.audio_io import AUDIO_EXTENSIONS
    from keras_mt3.utils import expand_inputs_with_roots

    found = expand_inputs_with_roots(args.inputs, AUDIO_EXTENSIONS)
    if not found:
        raise KerasMT3Error(f"no audio files found in {' '.join(args.inputs)}")
    format_name = output_format(args.output, args.format)
    jobs = list(zip([path for path, _ in found], output_paths(found, args.output, format_name)))
    ready = [job for job in jobs if _usable(*job)]
    failures = len(jobs) - len(ready)
    model = common.load_transcriber(args) if ready else None
    started = time.perf_counter()
    # All files share the decoder's slots (`MT3Transcriber.transcribe_many`); each is written as
    # soon as it is done.
    results = ()
    if ready:
        results = model.transcribe_many(
            [source for source, _ in ready],
            progress=None if not args.no_progress else False,
            return_errors=True,
        )
    # transcribe_many yields the files in the order given.
    for (source, target), (_, note_sequence) in zip(ready, results):
        try:
            if isinstance(note_sequence, KerasMT3Error):
                raise note_sequence
            note_export.save_notes(note_sequence, target, format_name)
        except KerasMT3Error as error:
            failures += 1
            _report(source, error)
            continue
        seconds = time.perf_counter() - started
        print(f"{source}: {describe(note_sequence)} -> {target} ({seconds:.1f} s since start)")
    if failures:
        print(f"{failures} of {len(jobs)} files failed", file=sys.stderr)
        return 1
    return 0


def _usable(source, target):
    """Checks what can be checked before the model loads: the audio header and the output path."""
    from keras_mt3.errors import KerasMT3Error
    from keras_mt3.preprocessing.audio_io import audio_duration
    from keras_mt3.utils import check_output_file

    try:
        audio_duration(source)
        check_output_file(target)
    except KerasMT3Error as error:
        _report(source, error)
        return False
    return True


def _report(source, error):
    print(f"{source}: error: {error}", file=sys.stderr)
