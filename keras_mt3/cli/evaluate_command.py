"""`keras-mt3 evaluate`: score transcriptions against reference MIDI files, one row per file.

The scoring loop (`evaluate_files`) and the table (`format_table`) are plain functions so that
benchmarks reuse them with their own way of producing the transcriptions.
"""

import csv
import dataclasses
import io
import json
import pathlib
import sys

from keras_mt3.cli import common
from keras_mt3.constants import MIDI_EXTENSIONS

DEFAULT_GRANULARITY = "full"
GRANULARITIES = ("flat", "midi_class", "full")
# A transcription ending this much earlier or later than its reference suggests a wrong pairing
# or truncated audio; both sides are still scored, with a warning.
LENGTH_MISMATCH_SECONDS = 2.0
LENGTH_MISMATCH_RATIO = 0.25


@dataclasses.dataclass
class FileScore:
    """The outcome for one file: `metrics` (all of transcription_metrics) or an `error`."""

    name: str
    estimate: str = None
    reference: str = None
    metrics: dict = None
    error: str = None
    warnings: list = dataclasses.field(default_factory=list)
    # Metric prefixes with nothing to score on either side (drum_onset for a piece without
    # drums): the metric reads 0.0, but the table shows n/a and the mean leaves the file out.
    not_applicable: list = dataclasses.field(default_factory=list)

    @property
    def failed(self):
        return self.error is not None


def table_columns(granularity=DEFAULT_GRANULARITY):
    """(header, metric prefix) of the columns in the printed table."""
    return (
        ("onset F1", "onset"),
        ("onset+offset F1", "onset_offset"),
        ("frame F1", "frame"),
        (f"program ({granularity}) F1", f"program_{granularity}"),
        ("drum onset F1", "drum_onset"),
    )


def find_reference(reference_dir, stem):
    """`<stem>.mid` or `<stem>.midi` in `reference_dir`, or None."""
    for extension in MIDI_EXTENSIONS:
        candidate = pathlib.Path(reference_dir) / (stem + extension)
        if candidate.is_file():
            return candidate
    return None


def evaluate_files(pairs, transcribe, *, apply_sustain=False, progress=None):
    """Scores each estimate against its reference MIDI file; never stops at a bad file.

    Args:
        pairs: `(name, estimate_source, reference_path)` triples; `reference_path` None means no
            reference was found for that file.
        transcribe: callable `estimate_source -> NoteSequence` (runs the model, or reads a MIDI
            file); a `KerasMT3Error` it raises is recorded as that file's error.
        apply_sustain: passed to `transcription_metrics`.
        progress: show a progress bar (default: when stderr is a terminal).

    Returns:
        One `FileScore` per pair, in order.
    """
    from keras_mt3.utils import progress_bar

    results = []
    with progress_bar(total=len(pairs), desc="evaluating", unit="file", enabled=progress) as bar:
        for name, source, reference_path in pairs:
            results.append(_score_one(name, source, reference_path, transcribe, apply_sustain))
            bar.update(1)
    return results


def _score_one(name, source, reference_path, transcribe, apply_sustain):
    from keras_mt3.errors import KerasMT3Error
    from keras_mt3.metrics import transcription_metrics
    from keras_mt3.midi_io import load_midi

    result = FileScore(name, estimate=str(source), reference=reference_path and str(reference_path))
    if reference_path is None:
        result.error = "no reference MIDI (<name>.mid or .midi) for it in the reference folder"
        return result
    try:
        reference = load_midi(reference_path)
        if not reference.notes:
            raise KerasMT3Error(f"the reference {reference_path} has no notes; nothing to score")
        estimate = transcribe(source)
        result.metrics = transcription_metrics(estimate, reference, apply_sustain=apply_sustain)
    except KerasMT3Error as error:
        result.error = str(error)
        return result
    result.warnings = _warnings(estimate, reference)
    if not any(note.is_drum for note in [*estimate.notes, *reference.notes]):
        result.not_applicable = ["drum_onset"]
    return result


def _warnings(estimate, reference):
    if not estimate.notes:
        return ["the transcription has no notes, so every score is 0"]
    estimate_end = max(note.end_time for note in estimate.notes)
    reference_end = max(note.end_time for note in reference.notes)
    gap = abs(estimate_end - reference_end)
    if gap > LENGTH_MISMATCH_SECONDS and gap > LENGTH_MISMATCH_RATIO * reference_end:
        return [
            f"the transcription ends at {estimate_end:.1f} s but the reference at "
            f"{reference_end:.1f} s; check that they are the same recording"
        ]
    return []


def mean_metrics(results):
    """Per-metric mean over the scored files where it applies (None when no file was scored)."""
    scored = [result for result in results if not result.failed]
    if not scored:
        return None
    mean = {}
    for key in scored[0].metrics:
        values = [r.metrics[key] for r in scored if not _not_applicable(r, key)]
        mean[key] = sum(values) / len(values) if values else None
    return mean


def _not_applicable(result, key):
    return any(key.startswith(prefix + "_") for prefix in result.not_applicable)


def format_table(results, granularity=DEFAULT_GRANULARITY):
    """A plain-text table: one row per file (F1 scores, 3 decimals) and the mean row."""
    columns = table_columns(granularity)
    headers = ["file", *(header for header, _ in columns)]
    rows = []
    for result in results:
        if result.failed:
            rows.append([result.name, *("failed" for _ in columns)])
        else:
            cells = _f1_cells(result.metrics, columns)
            for i, (_, prefix) in enumerate(columns):
                if prefix in result.not_applicable:
                    cells[i] = "n/a"
            rows.append([result.name, *cells])
    mean = mean_metrics(results)
    if mean is not None:
        scored = sum(not result.failed for result in results)
        rows.append([f"mean ({scored} files)", *_f1_cells(mean, columns)])
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells):
        first, *rest = cells
        return "  ".join([first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:]))])

    separator = "  ".join("-" * width for width in widths)
    body = [line(row) for row in rows]
    if mean is not None:
        body.insert(len(body) - 1, separator)
    return "\n".join([line(headers), separator, *body])


def _f1_cells(metrics, columns):
    values = [metrics[prefix + "_f1"] for _, prefix in columns]
    return ["n/a" if value is None else f"{value:.3f}" for value in values]


def results_json(results):
    return {
        "files": [dataclasses.asdict(result) for result in results],
        "mean": mean_metrics(results),
        "num_failed": sum(result.failed for result in results),
    }


def results_csv(results):
    metric_keys = next((list(r.metrics) for r in results if not r.failed), [])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", *metric_keys, "error"])
    for result in results:
        if result.failed:
            values = [""] * len(metric_keys)
        else:
            values = [result.metrics[key] for key in metric_keys]
        writer.writerow([result.name, *values, result.error or ""])
    mean = mean_metrics(results)
    if mean is not None:
        writer.writerow(["mean", *("" if mean[k] is None else mean[k] for k in metric_keys), ""])
    return buffer.getvalue()


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
        choices=GRANULARITIES,
        default=DEFAULT_GRANULARITY,
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
    from keras_mt3.utils import check_output_file

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
        sources = common.expand_inputs(args.inputs)
    if not sources:
        raise KerasMT3Error(f"no files to evaluate in {' '.join(args.inputs or [args.estimates])}")
    pairs = [(_name(path), path, find_reference(reference_dir, _name(path))) for path in sources]
    _warn_unused_references(reference_dir, {name for name, _, _ in pairs})
    if args.estimates:
        transcribe = load_midi
    else:
        transcribe = _model_transcribe(args, pairs)
    results = evaluate_files(
        pairs, transcribe, apply_sustain=args.apply_sustain, progress=progress
    )
    for result in results:
        for warning in result.warnings:
            print(f"{result.estimate}: warning: {warning}", file=sys.stderr)
        if result.failed:
            print(f"{result.estimate}: error: {result.error}", file=sys.stderr)
    print(format_table(results, args.granularity))
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
    unused = sorted(
        path.name
        for path in reference_dir.iterdir()
        if path.suffix.lower() in MIDI_EXTENSIONS and path.stem not in names and path.is_file()
    )
    if unused:
        print(
            f"warning: {len(unused)} reference file(s) in {reference_dir} have no transcription "
            f"to score and are left out: {', '.join(unused)}",
            file=sys.stderr,
        )


def _estimate_sources(estimates, inputs):
    from keras_mt3.errors import KerasMT3Error

    estimates = pathlib.Path(estimates)
    if not estimates.is_dir():
        raise KerasMT3Error(
            f"--estimates {estimates} is not a folder; give the folder of transcribed <name>.mid"
        )
    if not inputs:
        return common.expand_inputs([estimates], MIDI_EXTENSIONS)
    # Names come from the inputs; a missing transcription is reported like a missing file.
    names = [path.stem for path in common.expand_inputs(inputs)]
    return [find_reference(estimates, name) or estimates / (name + ".mid") for name in names]


def _name(path):
    return pathlib.Path(path).stem


def _write_outputs(results, args):
    """Writes --json and --csv; an unwritable one is reported and the other still written.
    Returns whether all were written."""
    from keras_mt3.errors import KerasMT3Error
    from keras_mt3.utils import atomic_write

    outputs = ((args.json, lambda handle: json.dump(results_json(results), handle, indent=2)),
               (args.csv, lambda handle: handle.write(results_csv(results))))
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
