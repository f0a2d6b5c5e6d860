"""Scoring transcriptions against reference MIDI files, one `FileScore` per file, and the
summaries `keras-mt3 evaluate` prints or writes (table, JSON, CSV).

The scoring loop takes any `transcribe` callable, so the same code scores the model, existing
MIDI files (`load_midi`) or another system's output. Heavy modules (note_seq, mir_eval) are
imported only when scoring starts, so that importing this module stays cheap.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import pathlib
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Sequence, Union

if TYPE_CHECKING:
    from note_seq.protobuf.music_pb2 import NoteSequence

PathLike = Union[str, os.PathLike]

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
    estimate: Optional[str] = None
    reference: Optional[str] = None
    metrics: Optional[dict[str, float]] = None
    error: Optional[str] = None
    warnings: list[str] = dataclasses.field(default_factory=list)
    # Metric prefixes with nothing to score on either side (drum_onset for a piece without
    # drums): the metric reads 0.0, but the table shows n/a and the mean leaves the file out.
    not_applicable: list[str] = dataclasses.field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.error is not None


def table_columns(granularity: str = DEFAULT_GRANULARITY) -> tuple[tuple[str, str], ...]:
    """(header, metric prefix) of the columns in the printed table."""
    return (
        ("onset F1", "onset"),
        ("onset+offset F1", "onset_offset"),
        ("frame F1", "frame"),
        (f"program ({granularity}) F1", f"program_{granularity}"),
        ("drum onset F1", "drum_onset"),
    )


def find_reference(reference_dir: PathLike, stem: str) -> Optional[pathlib.Path]:
    """`<stem>.mid` or `<stem>.midi` in `reference_dir`, or None."""
    from keras_mt3.constants import MIDI_EXTENSIONS

    for extension in MIDI_EXTENSIONS:
        candidate = pathlib.Path(reference_dir) / (stem + extension)
        if candidate.is_file():
            return candidate
    return None


def pair_with_references(
    sources: Iterable[PathLike], reference_dir: PathLike
) -> list[tuple[str, PathLike, Optional[pathlib.Path]]]:
    """`(name, source, reference or None)` for each source, paired by file name without its
    extension: the `pairs` of `evaluate_files`."""
    pairs = []
    for source in sources:
        name = pathlib.Path(source).stem
        pairs.append((name, source, find_reference(reference_dir, name)))
    return pairs


def unused_references(reference_dir: PathLike, names: Iterable[str]) -> list[str]:
    """File names of the reference MIDI files in `reference_dir` whose stem is not in
    `names` (nothing would be scored against them), sorted."""
    from keras_mt3.constants import MIDI_EXTENSIONS

    names = set(names)
    return sorted(
        path.name
        for path in pathlib.Path(reference_dir).iterdir()
        if path.suffix.lower() in MIDI_EXTENSIONS and path.stem not in names and path.is_file()
    )


def evaluate_files(
    pairs: Sequence[tuple[str, Any, Optional[PathLike]]],
    transcribe: Callable[[Any], NoteSequence],
    *,
    apply_sustain: bool = False,
    progress: Optional[bool] = None,
) -> list[FileScore]:
    """Scores each estimate against its reference MIDI file; never stops at a bad file.

    Args:
        pairs: `(name, estimate_source, reference_path)` triples (see `pair_with_references`);
            `reference_path` None means no reference was found for that file.
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


def mean_metrics(results: Sequence[FileScore]) -> Optional[dict[str, Optional[float]]]:
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


def format_table(results: Sequence[FileScore], granularity: str = DEFAULT_GRANULARITY) -> str:
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


def results_json(results: Sequence[FileScore]) -> dict[str, Any]:
    """Every file's scores (or error), the mean and the failure count, as JSON-ready data."""
    return {
        "files": [dataclasses.asdict(result) for result in results],
        "mean": mean_metrics(results),
        "num_failed": sum(result.failed for result in results),
    }


def results_csv(results: Sequence[FileScore]) -> str:
    """One CSV row per file with every metric (empty for a failed file, with its error), then
    the mean row."""
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
