"""`keras-mt3 transcribe`: files and folders in, MIDI files out, one summary line per file."""

import numpy as np
import pytest
import soundfile

from keras_mt3.cli.main import main
from keras_mt3.midi_io import load_midi
from keras_mt3.preprocessing.audio_io import load_audio

# The command is the same code under every backend; running it once keeps the suite short.
pytestmark = [pytest.mark.backend_independent, pytest.mark.checkpoint]


@pytest.fixture
def audio_folder(tmp_path, reference_dir):
    folder = tmp_path / "in"
    (folder / "nested").mkdir(parents=True)
    chorale = load_audio(reference_dir / "piano_chorale.wav")[: 16000 * 3]
    soundfile.write(folder / "chorale.flac", chorale, 16000)
    soundfile.write(folder / "nested" / "silence.wav", np.zeros(16000, "float32"), 16000)
    (folder / "notes.txt").write_text("not audio, ignored")
    return folder


def test_transcribes_a_folder_and_reports_each_file(audio_folder, tmp_path, checkpoint_dir, capsys):
    out = tmp_path / "out"
    code = main(
        ["transcribe", str(audio_folder), "-o", str(out), "--checkpoint-dir", str(checkpoint_dir),
         "--no-progress"]
    )
    printed = capsys.readouterr().out
    assert code == 0
    # The folder's layout is mirrored: nested/silence.wav -> nested/silence.mid.
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.mid")) == [
        "chorale.mid", "nested/silence.mid"
    ]
    chorale = load_midi(out / "chorale.mid")
    assert len(chorale.notes) > 5
    assert f"{len(chorale.notes)} notes" in printed
    assert "silence.wav: 0 notes" in printed


def test_missing_and_corrupt_inputs_are_reported_and_others_still_written(
    audio_folder, tmp_path, checkpoint_dir, capsys
):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"definitely not a wav file")
    out = tmp_path / "out"
    code = main(
        ["transcribe", str(tmp_path / "missing.wav"), str(corrupt),
         str(audio_folder / "nested" / "silence.wav"), "-o", str(out),
         "--checkpoint-dir", str(checkpoint_dir), "--no-progress"]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "missing.wav: error:" in captured.err
    assert "corrupt.wav: error:" in captured.err
    assert "2 of 3 files failed" in captured.err
    assert (out / "silence.mid").is_file()
    assert not (out / "missing.mid").exists() and not (out / "corrupt.mid").exists()


def test_wrong_checkpoint_directory_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "ckpt").mkdir()
    wav = tmp_path / "a.wav"
    soundfile.write(wav, np.zeros(1600, "float32"), 16000)
    code = main(["transcribe", str(wav), "-o", str(tmp_path / "a.mid"), "--checkpoint-dir",
                 str(tmp_path / "ckpt")])
    assert code == 2
    assert "checkpoint" in capsys.readouterr().err.lower()
