import numpy as np
import pytest
from helpers import note_sequence
from note_seq.protobuf import music_pb2

from keras_mt3 import plotting
from keras_mt3.errors import KerasMT3Error
from keras_mt3.plotting import plot_pianoroll

matplotlib = pytest.importorskip("matplotlib")
from matplotlib import colors as mcolors  # noqa: E402
from matplotlib import image as mimage  # noqa: E402

pytestmark = pytest.mark.backend_independent

EXPECTED_SHAPE = (
    round(plotting.FIGURE_SIZE_INCHES[1] * plotting.DPI),
    round(plotting.FIGURE_SIZE_INCHES[0] * plotting.DPI),
)


def sequence(notes):
    """`(pitch, start, end, program, is_drum)` tuples -> NoteSequence (velocity 100)."""
    return note_sequence([(p, on, off, 100, program, drum) for p, on, off, program, drum in notes])


BAND = sequence(
    [(60 + i % 5, 0.5 * i, 0.5 * i + 0.4, 0, False) for i in range(8)]
    + [(40 + i % 3, 0.5 * i, 0.5 * i + 0.45, 33, False) for i in range(8)]
    + [(36 + 2 * (i % 2), 0.25 * i, 0.25 * i + 0.01, 0, True) for i in range(16)]
)


def read_png(path):
    pixels = mimage.imread(path)
    assert pixels.shape[:2] == EXPECTED_SHAPE
    return pixels[..., :3]


def pixels_of_color(pixels, color, tolerance=0.02):
    rgb = np.array(mcolors.to_rgb(color))
    return int(np.sum(np.all(np.abs(pixels - rgb) < tolerance, axis=-1)))


def legend_entries(figure):
    legend = figure.axes[0].get_legend()
    return {
        text.get_text(): mcolors.to_hex(handle.get_facecolor())
        for text, handle in zip(legend.get_texts(), legend.legend_handles)
    }


def test_instrument_colors_with_legend(tmp_path):
    path = tmp_path / "band.png"
    figure = plot_pianoroll(BAND, path=path, title="band")
    entries = legend_entries(figure)
    assert set(entries) == {
        "Acoustic Grand Piano (program 0) (8)",
        "Electric Bass (finger) (program 33) (8)",
        "drums (16)",
    }
    assert len(set(entries.values())) == 3
    pixels = read_png(path)
    assert pixels.std() > 0.05  # not blank
    for label, color in entries.items():
        assert pixels_of_color(pixels, color) > 50, label
    assert figure.axes[0].get_title() == "band"


def test_against_reference_shows_matched_missed_and_extra(tmp_path):
    reference = sequence(
        [(60, 0.0, 1.0, 0, False), (62, 1.0, 2.0, 0, False), (40, 0.0, 2.0, 33, False)]
    )
    estimate = sequence(
        [
            (60, 0.02, 0.9, 0, False),  # matched
            (40, 0.0, 2.0, 32, False),  # right pitch and time, wrong instrument: extra
            (70, 1.5, 2.0, 0, False),  # extra
        ]
    )
    path = tmp_path / "compare.png"
    figure = plot_pianoroll(estimate, reference, path)
    entries = legend_entries(figure)
    assert entries == {
        "missed reference (2)": mcolors.to_hex(plotting.MISSED_COLOR),
        "extra estimate (2)": mcolors.to_hex(plotting.EXTRA_COLOR),
        "matched (1)": mcolors.to_hex(plotting.MATCHED_COLOR),
    }
    # onset F1 per instrument: 1 match of 3 estimated and 3 reference notes.
    assert "0.333" in figure.axes[0].get_title()
    pixels = read_png(path)
    for color in (plotting.MATCHED_COLOR, plotting.MISSED_COLOR, plotting.EXTRA_COLOR):
        assert pixels_of_color(pixels, color) > 50, color


def test_window_limits_what_is_drawn(tmp_path):
    notes = sequence([(60, 0.0, 1.0, 0, False), (40, 5.0, 6.0, 33, False)])
    path = tmp_path / "window.png"
    figure = plot_pianoroll(notes, path=path, start=0.0, end=2.0)
    assert figure.axes[0].get_xlim() == (0.0, 2.0)
    entries = legend_entries(figure)
    assert list(entries) == ["Acoustic Grand Piano (program 0) (1)"]
    assert pixels_of_color(read_png(path), entries["Acoustic Grand Piano (program 0) (1)"]) > 50


def test_empty_sequence_says_no_notes(tmp_path):
    path = tmp_path / "empty.png"
    figure = plot_pianoroll(music_pb2.NoteSequence(), path=path)
    assert "no notes" in [text.get_text() for text in figure.axes[0].texts]
    assert figure.axes[0].get_legend() is None
    read_png(path)


def test_without_path_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    figure = plot_pianoroll(BAND)
    assert isinstance(figure, matplotlib.figure.Figure)
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_replaced_whole(tmp_path):
    path = tmp_path / "plot.png"
    path.write_bytes(b"old")
    plot_pianoroll(BAND, path=path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]


def test_window_must_end_after_it_starts():
    with pytest.raises(KerasMT3Error, match="must end after it starts"):
        plot_pianoroll(BAND, start=3.0, end=1.0)
