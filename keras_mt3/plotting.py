"""Piano-roll pictures of a NoteSequence, alone (by instrument) or against a reference.

matplotlib is imported only when a plot is made, and figures are drawn with the Agg canvas
directly (no pyplot), so plotting works without a display and leaves no global figure state.
"""

import dataclasses
import math

from keras_mt3.errors import KerasMT3Error
from keras_mt3.utils import atomic_write

FIGURE_SIZE_INCHES = (12.0, 5.0)
DPI = 100
MATCHED_COLOR = "#2ca02c"  # green: estimated notes that match a reference note
MISSED_COLOR = "#d62728"  # red: reference notes nothing matched
EXTRA_COLOR = "#1f77b4"  # blue: estimated notes that match no reference note
DRUM_COLOR = "#404040"
_INSTRUMENT_PALETTE = "tab10"
_MIN_BAR_FRACTION = 1 / 400  # drums and other very short notes stay visible at any zoom
_BAR_HEIGHT = 0.8


@dataclasses.dataclass
class _Layer:
    label: str
    color: str
    notes: list
    hatch: str = None


def plot_pianoroll(note_sequence, reference=None, path=None, *, title=None, start=None, end=None):
    """Draws notes as horizontal bars (time on x, MIDI pitch on y) and returns the Figure.

    Without `reference`, notes are coloured by instrument (General MIDI program, or drums) with
    a legend. With `reference`, notes are coloured by how they score: estimated notes matching
    a reference note (same instrument and pitch, onset within 50 ms, as in the metrics) in green,
    reference notes left unmatched ("missed", red, hatched) and estimated notes matching nothing
    ("extra", blue); the title then gives the instrument-aware onset F1.

    Args:
        note_sequence: the NoteSequence to draw (the estimate when `reference` is given).
        reference: optional ground-truth NoteSequence.
        path: if given, the figure is also written there as a PNG (atomically).
        title: figure title; a default describes the plot.
        start, end: time window in seconds (default: 0 to the last note's end).

    Returns:
        A `matplotlib.figure.Figure` (Agg canvas).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise KerasMT3Error(
            "plot_pianoroll needs matplotlib; install it with `pip install keras-mt3[plot]`"
        ) from None
    sequences = [note_sequence] if reference is None else [note_sequence, reference]
    start, end = _time_window(sequences, start, end)
    if reference is None:
        layers = _instrument_layers(note_sequence)
        default_title = "piano roll by instrument"
    else:
        layers, f1 = _match_layers(note_sequence, reference)
        default_title = f"estimate vs reference: onset F1 per instrument {f1:.3f}"

    figure = Figure(figsize=FIGURE_SIZE_INCHES, dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    pitches = _draw_layers(axes, layers, start, end)
    axes.set_xlim(start, end)
    axes.set_xlabel("time (s)")
    axes.set_ylabel("MIDI pitch")
    axes.set_title(title if title is not None else default_title)
    if pitches:
        axes.set_ylim(min(pitches) - 2, max(pitches) + 2)
        # Outside the axes, so that the legend never hides notes.
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    else:
        axes.set_yticks([])
        axes.text(0.5, 0.5, "no notes", transform=axes.transAxes, ha="center", va="center")
    figure.tight_layout()
    if path is not None:
        with atomic_write(path) as handle:
            figure.savefig(handle, format="png", dpi=DPI)
    return figure


def check_time_window(start=None, end=None):
    """Raises `KerasMT3Error` unless the window's given ends are finite and `start < end`.

    Callers about to transcribe first check the window with it, before the long work.
    """
    for name, value in (("start", start), ("end", end)):
        if value is not None and not math.isfinite(float(value)):
            raise KerasMT3Error(f"the plot window's {name} must be a finite time, got {value}")
    if start is not None and end is not None and float(end) <= float(start):
        raise KerasMT3Error(
            f"the plot window must end after it starts; got start={float(start)}, "
            f"end={float(end)}"
        )


def _time_window(sequences, start, end):
    check_time_window(start, end)
    start = 0.0 if start is None else float(start)
    if end is None:
        last = max((n.end_time for seq in sequences for n in seq.notes), default=0.0)
        end = last if last > start else start + 1.0
    return start, float(end)


def _instrument_layers(note_sequence):
    import matplotlib
    import pretty_midi

    by_instrument = {}
    for note in note_sequence.notes:
        by_instrument.setdefault((bool(note.is_drum), note.program), []).append(note)
    palette = matplotlib.colormaps[_INSTRUMENT_PALETTE]
    layers = []
    for index, (is_drum, program) in enumerate(sorted(by_instrument)):
        if is_drum:
            label, color = "drums", DRUM_COLOR
        else:
            name = pretty_midi.program_to_instrument_name(program)
            label = f"{name} (program {program})"
            color = matplotlib.colors.to_hex(palette(index % palette.N))
        layers.append(_Layer(label, color, by_instrument[(is_drum, program)]))
    return layers


def _match_layers(estimate, reference):
    from keras_mt3.metrics.match_counts import MatchCounts
    from keras_mt3.metrics.multi_instrument import match_instrument_tracks
    from keras_mt3.metrics.note_matching import ONSET_ONLY

    tracks = match_instrument_tracks(estimate, reference, "full", offset_ratio=ONSET_ONLY)
    matched_est = {est for track in tracks for _, est in track.pairs}
    matched_ref = {ref for track in tracks for ref, _ in track.pairs}
    total = sum((track.counts for track in tracks), MatchCounts())
    layers = [
        _Layer(
            "missed reference",
            MISSED_COLOR,
            [n for i, n in enumerate(reference.notes) if i not in matched_ref],
            hatch="//",
        ),
        _Layer(
            "extra estimate",
            EXTRA_COLOR,
            [n for i, n in enumerate(estimate.notes) if i not in matched_est],
        ),
        _Layer("matched", MATCHED_COLOR, [estimate.notes[i] for i in sorted(matched_est)]),
    ]
    return layers, total.f1


def _draw_layers(axes, layers, start, end):
    """Draws each layer's notes inside the window; returns the pitches drawn."""
    min_width = (end - start) * _MIN_BAR_FRACTION
    pitches = []
    for layer in layers:
        notes = [n for n in layer.notes if n.end_time >= start and n.start_time <= end]
        if not notes:
            continue
        pitches.extend(n.pitch for n in notes)
        axes.barh(
            [n.pitch for n in notes],
            [max(n.end_time - n.start_time, min_width) for n in notes],
            left=[n.start_time for n in notes],
            height=_BAR_HEIGHT,
            color=layer.color,
            edgecolor=layer.color if layer.hatch is None else "white",
            hatch=layer.hatch,
            linewidth=0.0 if layer.hatch is None else 0.5,
            label=f"{layer.label} ({len(notes)})",
        )
    return pitches
