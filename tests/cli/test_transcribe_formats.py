"""`keras-mt3 transcribe --format`: the same notes as MIDI, JSON or CSV files.

The model is replaced by a fixed answer: how audio becomes notes is tested elsewhere; here it
is which file gets written, in which format.
"""

import json

import numpy as np
import pytest
import soundfile
from note_seq.protobuf import music_pb2

from cli_support import FileByFile

from keras_mt3 import note_export
from keras_mt3.cli import common
from keras_mt3.cli.main import main
from keras_mt3.midi_io import load_midi

pytestmark = pytest.mark.backend_independent


class FixedTranscriber(FileByFile):
    def __init__(self):
        self.sequence = music_pb2.NoteSequence()
        self.sequence.notes.add(pitch=60, start_time=0.0, end_time=0.5, velocity=100, program=0)
        self.sequence.notes.add(
            pitch=38, start_time=0.25, end_time=0.26, velocity=127, is_drum=True
        )
        self.sequence.total_time = 0.5

    def transcribe(self, audio, *, progress=None, progress_callback=None):
        return self.sequence


@pytest.fixture
def model(monkeypatch):
    fixed = FixedTranscriber()
    monkeypatch.setattr(common, "load_transcriber", lambda args: fixed)
    return fixed


@pytest.fixture
def clips(tmp_path):
    paths = [tmp_path / "a.wav", tmp_path / "b.flac"]
    for path in paths:
        soundfile.write(path, np.zeros(1600, "float32"), 16000)
    return paths


def test_output_extension_picks_the_format(model, clips, tmp_path):
    for name in ("a.json", "a.csv", "a.mid"):
        assert main(["transcribe", str(clips[0]), "-o", str(tmp_path / name), "--no-progress"]) == 0
    assert json.loads((tmp_path / "a.json").read_text()) == note_export.notes_to_dict(
        model.sequence
    )
    assert (tmp_path / "a.csv").read_text() == note_export.notes_to_csv(model.sequence)
    assert len(load_midi(tmp_path / "a.mid").notes) == 2


def test_format_flag_names_files_in_a_folder(model, clips, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["transcribe", *map(str, clips), "-o", str(out), "--format", "csv"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "b.csv"]
    assert "2 notes" in capsys.readouterr().out


def test_format_flag_contradicting_the_extension_is_an_error(model, clips, tmp_path, capsys):
    out = tmp_path / "notes.mid"
    assert main(["transcribe", str(clips[0]), "-o", str(out), "--format", "json"]) == 2
    assert "names a mid file but --format is json" in capsys.readouterr().err
    assert not out.exists()
