"""`keras-mt3 plot`: MIDI (or audio, transcribed first) in, a piano-roll PNG out."""

import matplotlib.colors
import matplotlib.image
import numpy as np
import pytest
import soundfile
from cli_support import write_tone

from keras_mt3.cli.main import main
from keras_mt3.plotting import DPI, EXTRA_COLOR, FIGURE_SIZE_INCHES, MATCHED_COLOR, MISSED_COLOR
from keras_mt3.preprocessing.audio_io import load_audio

pytestmark = pytest.mark.backend_independent


def read_png(path):
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (FIGURE_SIZE_INCHES[1] * DPI, FIGURE_SIZE_INCHES[0] * DPI)
    return image[..., :3]


def pixels_of(image, color, tolerance=0.02):
    rgb = np.array(matplotlib.colors.to_rgb(color))
    return int(np.all(np.abs(image - rgb) < tolerance, axis=-1).sum())


def test_plot_against_reference_shows_matched_missed_and_extra(reference_dir, tmp_path, capsys):
    out = tmp_path / "plots" / "multi_band.png"
    code = main(["plot", str(reference_dir / "multi_band.mt3.mid"),
                 "--reference", str(reference_dir / "multi_band.mid"),
                 "-o", str(out), "--start", "1", "--end", "8"])
    assert code == 0
    assert f"-> {out}" in capsys.readouterr().out
    image = read_png(out)
    assert image.std() > 0.05  # not a blank canvas
    # The original MT3 gets multi_band partly right: all three kinds of notes appear.
    for color in (MATCHED_COLOR, MISSED_COLOR, EXTRA_COLOR):
        assert pixels_of(image, color) > 200, color


def test_plot_alone_colours_by_instrument(reference_dir, tmp_path):
    out = tmp_path / "chorale.png"
    assert main(["plot", str(reference_dir / "piano_chorale.mid"), "-o", str(out)]) == 0
    image = read_png(out)
    assert pixels_of(image, MISSED_COLOR) == 0  # no scoring colours without a reference
    non_white = np.any(image < 0.9, axis=-1).mean()
    assert 0.01 < non_white < 0.6


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.mid"], "does not exist"),
        (["notes.txt"], "neither a MIDI file"),
        (["ok.mid", "--start", "5", "--end", "2"], "must end after it starts"),
        (["missing.wav"], "does not exist"),
        (["ok.mid", "--reference", "missing.mid"], "does not exist"),
    ],
)
def test_bad_inputs_are_clear_errors(args, message, reference_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ok.mid").write_bytes((reference_dir / "piano_chorale.mid").read_bytes())
    (tmp_path / "notes.txt").write_text("not music")
    code = main(["plot", *args, "-o", str(tmp_path / "out.png")])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--start", "nan", "must be a finite number, got 'nan'"),
        ("--end", "inf", "must be a finite number, got 'inf'"),
        ("--start", "-1", "must be a number of seconds >= 0, got '-1'"),
        ("--end", "0", "must be a number of seconds > 0, got '0'"),
        ("--decode-batch-size", "0", "must be a whole number >= 1, got '0'"),
    ],
)
def test_bad_option_values_are_usage_errors(option, value, message, reference_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["plot", str(reference_dir / "piano_chorale.mid"), "-o", str(tmp_path / "a.png"),
              option, value])
    assert stopped.value.code == 2
    assert f"{option}: {message}" in capsys.readouterr().err
    assert not (tmp_path / "a.png").exists()


@pytest.mark.parametrize(
    "output, message",
    [
        ("taken/roll.png", "taken is a file, not a folder"),
        ("folder.png", "folder.png: it is a folder"),
    ],
)
def test_an_unwritable_output_is_refused_before_transcribing(
    output, message, tmp_path, monkeypatch, no_model_load, capsys
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken").write_text("a file")
    (tmp_path / "folder.png").mkdir()
    code = main(["plot", str(write_tone(tmp_path / "clip.wav", 0.5)), "-o", output])
    captured = capsys.readouterr()
    assert code == 2
    assert message in captured.err and "Traceback" not in captured.err
    assert (tmp_path / "taken").read_text() == "a file" and not any((tmp_path / "folder.png").iterdir())


def test_a_bad_window_is_refused_before_transcribing(tmp_path, no_model_load, capsys):
    code = main(["plot", str(write_tone(tmp_path / "clip.wav", 0.5)), "-o", str(tmp_path / "a.png"),
                 "--start", "4", "--end", "4"])
    assert code == 2
    assert "must end after it starts" in capsys.readouterr().err


def test_output_must_be_png(reference_dir, tmp_path, capsys):
    code = main(["plot", str(reference_dir / "piano_chorale.mid"), "-o", str(tmp_path / "a.jpg")])
    assert code == 2
    assert "must end in .png" in capsys.readouterr().err


@pytest.mark.checkpoint
def test_plot_of_audio_transcribes_it_first(reference_dir, checkpoint_dir, tmp_path, capsys):
    wav = tmp_path / "chorale.wav"
    soundfile.write(wav, load_audio(reference_dir / "piano_chorale.wav")[: 16000 * 3], 16000)
    out = tmp_path / "chorale.png"
    code = main(["plot", str(wav), "--reference", str(reference_dir / "piano_chorale.mid"),
                 "--end", "3", "-o", str(out), "--checkpoint-dir", str(checkpoint_dir),
                 "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert int(printed.split(": ")[1].split(" notes")[0]) > 5
    assert pixels_of(read_png(out), MATCHED_COLOR) > 200
