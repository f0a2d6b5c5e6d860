"""`keras-mt3 evaluate`: score transcriptions against reference MIDI files, one row per file.

The scoring and its summaries are `keras_mt3.evaluation`; this module finds the files, decides
whether the model is needed, and prints and writes the results.
"""

import json
import pathlib
import sys

from keras_mt3 import evaluation
from keras_mt3.cli import common


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="score transcriptions against reference MIDI files",
        description="Transcribe audio files (or read existing transcriptions with --estimates) and "
        "score each against <name>.mid in the reference folder with MT3's metrics.",
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        help="audio files and/or folders (searched recursively); with --estimates, optional: "
        "only these names are scored",
    )
    parser.add_argument(
        "--reference", required=True, help="folder of ground-truth MIDI files named <name>.mid"
    )
    parser.add_argument(
        "--estimates",
        help="folder of existing transcriptions named <name>.mid: score them without the model",
    )
    parser.add_argument("--json", help="also write every metric (P/R/F1) to this JSON file")
    parser.add_argument("--csv", help="also write every metric to this CSV file")
    parser.add_argument(
        "--granularity",
        choices=evaluation.GRANULARITIES,
        default=evaluation.DEFAULT_GRANULARITY,
        help="program granularity of the table's multi-instrument column (default: full)",
    )
    parser.add_argument(
        "--apply-sustain",
        action="store_true",
        help="extend reference notes by their sustain pedal first (e.g. for MAESTRO MIDI)",
    )
    common.add_model_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(run=run)


def run(args):
    from keras_mt3.errors import KerasMT3Error
    from keras_mt3.midi_io import load_midi
    from keras_mt3.preprocessing.audio_io import AUDIO_EXTENSIONS
    from keras_mt3.utils import check_output_file, expand_inputs

    reference_dir = pathlib.Path(args.reference)
    if not reference_dir.is_dir():
        raise KerasMT3Error(
            f"--reference {reference_dir} is not a folder; give the folder holding <name>.mid files"
        )
    for path in filter(None, (args.json, args.csv)):
        check_output_file(path)  # before the scoring, not after it
    progress = False if args.no_progress else None
    if args.estimates:
        sources = _estimate_sources(args.estimates, args.inputs)
    else:
        if not args.inputs:
            raise KerasMT3Error("give audio files or folders to transcribe, or --estimates FOLDER")
        sources = expand_inputs(args.inputs, AUDIO_EXTENSIONS)
    if not sources:
        raise KerasMT3Error(f"no files to evaluate in {' '.join(args.inputs or [args.estimates])}")
    pairs = evaluation.pair_with_references(sources, reference_dir)
    _warn_unused_references(reference_dir, [name for name, _, _ in pairs])
    if args.estimates:
        transcribe = load_midi
    else:
        transcribe = _model_transcribe(args, pairs)
    results = evaluation.evaluate_files(
        pairs, transcribe, apply_sustain=args.apply_sustain, progress=progress
    )
    for result in results:
        for warning in result.warnings:
            print(f"{result.estimate}: warning: {warning}", file=sys.stderr)
        if result.failed:
            print(f"{result.estimate}: error: {result.error}", file=sys.stderr)
    print(evaluation.format_table(results, args.granularity))
    failures = sum(result.failed for result in results)
    if failures:
        print(f"{failures} of {len(results)} files failed", file=sys.stderr)
    written = _write_outputs(results, args)
    return 1 if failures or not written else 0


def _model_transcribe(args, pairs):
    """`path -> NoteSequence` with the model, loaded only if some audio file can be scored."""
    if not any(reference is not None and _readable(path) for _, path, reference in pairs):
        return _unreadable
    model = common.load_transcriber(args)
    return lambda path: model.transcribe(path, progress=False)


def _readable(path):
    from keras_mt3.errors import KerasMT3Error
    from keras_mt3.preprocessing.audio_io import audio_duration

    try:
        audio_duration(path)  # the header only; a bad file is reported when it is scored
    except KerasMT3Error:
        return False
    return True


def _unreadable(path):
    """Stands in for the model when no file could be read: raises why `path` cannot be."""
    from keras_mt3.errors import KerasMT3Error
    from keras_mt3.preprocessing.audio_io import audio_duration

    audio_duration(path)
    raise KerasMT3Error(f"{path} was unreadable when the run started, so no model was loaded")


def _warn_unused_references(reference_dir, names):
    unused = evaluation.unused_references(reference_dir, names)
    if unused:
        print(
            f"warning: {len(unused)} reference file(s) in {reference_dir} have no transcription "
            f"to score and are left out: {', '.join(unused)}",
            file=sys.stderr,
        )


def _estimate_sources(estimates, inputs):
    from keras_mt3.errors import KerasMT3Error
    from keras_mt3.constants import MIDI_EXTENSIONS
    from keras_mt3.preprocessing.audio_io import AUDIO_EXTENSIONS
    from keras_mt3.utils import expand_inputs

    estimates = pathlib.Path(estimates)
    if not estimates.is_dir():
        raise KerasMT3Error(
            f"--estimates {estimates} is not a folder; give the folder of transcribed <name>.mid"
        )
    if not inputs:
        return expand_inputs([estimates], MIDI_EXTENSIONS)
    # Names come from the inputs; a missing transcription is reported like a missing file.
    names = [path.stem for path in expand_inputs(inputs, AUDIO_EXTENSIONS)]
    return [
        evaluation.find_reference(estimates, name) or estimates / (name + ".mid") for name in names
    ]


def _write_outputs(results, args):
    """Writes --json and --csv; an unwritable one is reported and the other still written.
    Returns whether all were written."""
    from keras_mt3.errors import KerasMT3Error
    from keras_mt3.utils import atomic_write

    outputs = (
        (args.json, lambda handle: json.dump(evaluation.results_json(results), handle, indent=2)),
        (args.csv, lambda handle: handle.write(evaluation.results_csv(results))),
    )
    written = True
    for path, write in outputs:
        if not path:
            continue
        try:
            with atomic_write(path, "w") as handle:
                write(handle)
        except KerasMT3Error as error:
            print(f"keras-mt3 evaluate: error: {error}", file=sys.stderr)
            written = False
        else:
            print(f"wrote {path}")
    return written
