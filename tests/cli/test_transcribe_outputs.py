"""`keras-mt3 transcribe` never loses a result: unique output names, output errors per file.

The model is a stand-in (conftest.py) that writes one note as long as its input, so each MIDI
file shows which input it came from.
"""

import pytest
from cli_support import write_tone

from keras_mt3.cli.main import main
from keras_mt3.midi_io import load_midi

pytestmark = pytest.mark.backend_independent


def note_end(midi_path):
    (note,) = load_midi(midi_path).notes
    return round(note.end_time, 2)


def written_notes(folder):
    """{every file under `folder`, relative: the end of its one note}."""
    return {str(p.relative_to(folder)): note_end(p) for p in folder.rglob("*") if p.is_file()}


def transcribe(*args):
    return main(["transcribe", *map(str, args), "--no-progress"])


def test_inputs_with_the_same_name_keep_every_result(tmp_path, monkeypatch, stand_in_model, capsys):
    monkeypatch.chdir(tmp_path)
    write_tone(tmp_path / "a" / "song.wav", 1.0)
    write_tone(tmp_path / "b" / "song.wav", 1.5)
    write_tone(tmp_path / "song.flac", 2.0)
    code = transcribe("a/song.wav", "b/song.wav", "song.flac", "-o", "out")
    printed = capsys.readouterr().out
    assert code == 0
    assert written_notes(tmp_path / "out") == {"a/song.mid": 1.0, "b/song.mid": 1.5, "song.mid": 2.0}
    assert "a/song.wav: 1 notes" in printed and "-> out/a/song.mid" in printed


def test_a_folder_is_mirrored_and_extensions_separate_same_stems(
    tmp_path, monkeypatch, stand_in_model
):
    monkeypatch.chdir(tmp_path)
    write_tone(tmp_path / "in" / "song.wav", 1.0)
    write_tone(tmp_path / "in" / "song.flac", 1.25)
    write_tone(tmp_path / "in" / "day1" / "take.wav", 0.5)
    write_tone(tmp_path / "in" / "day2" / "take.wav", 0.75)
    # The same file again, by name: transcribed once.
    assert transcribe("in", "in/day1/take.wav", "-o", "out") == 0
    assert written_notes(tmp_path / "out") == {"song.wav.mid": 1.0, "song.flac.mid": 1.25, "day1/take.mid": 0.5,
                       "day2/take.mid": 0.75}
    assert len(stand_in_model.transcribed) == 4


def test_one_midi_file_for_several_inputs_is_refused_before_loading(
    tmp_path, no_model_load, capsys
):
    first, second = write_tone(tmp_path / "x.wav", 0.5), write_tone(tmp_path / "y.wav", 0.5)
    code = transcribe(first, second, "-o", tmp_path / "multi.mid")
    assert code == 2
    assert "names one MIDI file, but 2 audio files were given" in capsys.readouterr().err
    assert not (tmp_path / "multi.mid").exists()


def test_an_output_folder_that_is_a_file_is_refused_before_loading(tmp_path, no_model_load, capsys):
    (tmp_path / "out").write_text("a file")
    code = transcribe(write_tone(tmp_path / "x.wav", 0.5), "-o", tmp_path / "out")
    assert code == 2
    assert "is a file; give a folder" in capsys.readouterr().err
    assert (tmp_path / "out").read_text() == "a file"


def test_output_errors_are_reported_per_file_and_the_others_written(
    tmp_path, monkeypatch, stand_in_model, capsys
):
    monkeypatch.chdir(tmp_path)
    for name in ("a", "sub/b", "c", "d"):
        write_tone(tmp_path / "in" / f"{name}.wav", 1.0)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "sub").write_text("a file where out/sub/b.mid needs a folder")
    (tmp_path / "out" / "c.mid").mkdir()  # a folder where a file should go
    # An obstacle that appears while d.wav is transcribed: found only when writing.
    stand_in_model.before_transcribing = lambda audio: (
        (tmp_path / "out" / "d.mid").mkdir() if audio.name == "d.wav" else None
    )
    code = transcribe("in", "-o", "out")
    captured = capsys.readouterr()
    assert code == 1
    assert "in/sub/b.wav: error: cannot write out/sub/b.mid: out/sub is a file, not a folder" in (
        captured.err
    )
    assert "in/c.wav: error: cannot write out/c.mid: it is a folder" in captured.err
    assert "in/d.wav: error: cannot write out/d.mid: it is a folder" in captured.err
    assert "3 of 4 files failed" in captured.err
    assert "Traceback" not in captured.err
    assert note_end(tmp_path / "out" / "a.mid") == 1.0
    # The two bad paths were found before any work: only a.wav and d.wav were transcribed.
    assert [path.name for path in stand_in_model.transcribed] == ["a.wav", "d.wav"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.mid", "c.mid", "d.mid", "sub"]
    assert not any((tmp_path / "out" / "d.mid").iterdir())  # no temporary file left


def test_nothing_loads_when_no_input_can_be_done(tmp_path, no_model_load, capsys):
    (tmp_path / "out.mid").mkdir()
    code = transcribe(tmp_path / "missing.wav", "-o", tmp_path / "out.mid")
    assert code == 1
    assert "missing.wav: error: audio file" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-3", "two"])
def test_a_bad_batch_size_is_a_usage_error(value, tmp_path, no_model_load, capsys):
    with pytest.raises(SystemExit) as stopped:
        transcribe(tmp_path / "x.wav", "-o", tmp_path, "--decode-batch-size", value)
    assert stopped.value.code == 2
    message = f"--decode-batch-size: must be a whole number >= 1, got '{value}'"
    assert message in capsys.readouterr().err
