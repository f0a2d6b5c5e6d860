"""`keras-mt3 evaluate`: the table and files report exactly what transcription_metrics computes."""

import csv
import json
import shutil

import numpy as np
import pytest
import soundfile

from keras_mt3.cli.main import main
from keras_mt3.evaluation import table_columns
from keras_mt3.metrics import transcription_metrics
from keras_mt3.midi_io import load_midi, save_midi
from keras_mt3.preprocessing.audio_io import load_audio
from note_seq.protobuf import music_pb2

# The command is the same code under every backend; running it once keeps the suite short.
pytestmark = pytest.mark.backend_independent

CLIPS = ("multi_band", "piano_chorale")


@pytest.fixture
def estimates(tmp_path, reference_dir):
    """The original MT3's transcriptions, named as evaluate expects (<name>.mid)."""
    folder = tmp_path / "estimates"
    folder.mkdir()
    for name in CLIPS:
        shutil.copy(reference_dir / f"{name}.mt3.mid", folder / f"{name}.mid")
    return folder


def expected_metrics(reference_dir, name):
    return transcription_metrics(
        load_midi(reference_dir / f"{name}.mt3.mid"), load_midi(reference_dir / f"{name}.mid")
    )


def table_rows(printed):
    """{first cell: [the other cells]} of the printed table."""
    rows = {}
    for line in printed.splitlines():
        cells = line.split()
        if cells and not set(line) <= {"-", " "}:
            rows[cells[0]] = cells[1:]
    return rows


def test_table_json_and_csv_equal_the_api_metrics(estimates, reference_dir, tmp_path, capsys):
    out_json, out_csv = tmp_path / "out" / "scores.json", tmp_path / "scores.csv"
    code = main(
        ["evaluate", "--estimates", str(estimates), "--reference", str(reference_dir),
         "--json", str(out_json), "--csv", str(out_csv), "--no-progress"]
    )
    printed = capsys.readouterr().out
    assert code == 0
    rows = table_rows(printed)
    expected = {name: expected_metrics(reference_dir, name) for name in CLIPS}
    prefixes = [prefix for _, prefix in table_columns()]
    for name in CLIPS:
        cells = rows[name]
        for prefix, cell in zip(prefixes, cells):
            if prefix == "drum_onset" and name == "piano_chorale":
                assert cell == "n/a"  # no drums on either side
            else:
                assert cell == f"{expected[name][prefix + '_f1']:.3f}"
    # Drums are scored only in multi_band, so the drum mean is that file's score.
    mean = {k: np.mean([expected[n][k] for n in CLIPS]) for k in expected["multi_band"]}
    mean_cells = rows["mean"][2:]  # after "mean (2 files)"
    assert mean_cells[0] == f"{mean['onset_f1']:.3f}"
    assert mean_cells[-1] == f"{expected['multi_band']['drum_onset_f1']:.3f}"

    written = json.loads(out_json.read_text())
    assert written["num_failed"] == 0
    by_name = {entry["name"]: entry for entry in written["files"]}
    for name in CLIPS:
        assert by_name[name]["metrics"] == pytest.approx(expected[name], abs=1e-12)
        assert "onset_precision" in by_name[name]["metrics"]
    assert written["mean"]["frame_recall"] == pytest.approx(mean["frame_recall"])

    with open(out_csv, newline="") as handle:
        csv_rows = {row["file"]: row for row in csv.DictReader(handle)}
    assert float(csv_rows["piano_chorale"]["onset_offset_f1"]) == pytest.approx(
        expected["piano_chorale"]["onset_offset_f1"]
    )
    assert set(csv_rows) == {*CLIPS, "mean"}


def test_granularity_picks_the_program_column(estimates, reference_dir, capsys):
    main(["evaluate", "--estimates", str(estimates), "--reference", str(reference_dir),
          "--granularity", "flat", "--no-progress"])
    printed = capsys.readouterr().out
    assert "program (flat) F1" in printed
    expected = expected_metrics(reference_dir, "multi_band")["program_flat_f1"]
    assert table_rows(printed)["multi_band"][3] == f"{expected:.3f}"


def test_inputs_select_which_estimates_are_scored(estimates, reference_dir, capsys):
    code = main(["evaluate", str(reference_dir / "piano_chorale.wav"), "--estimates",
                 str(estimates), "--reference", str(reference_dir), "--no-progress"])
    rows = table_rows(capsys.readouterr().out)
    assert code == 0
    assert "multi_band" not in rows
    expected = expected_metrics(reference_dir, "piano_chorale")
    assert rows["piano_chorale"][2] == f"{expected['frame_f1']:.3f}"


def test_bad_files_are_reported_and_the_others_still_scored(
    estimates, reference_dir, tmp_path, capsys
):
    references = tmp_path / "references"
    references.mkdir()
    shutil.copy(reference_dir / "piano_chorale.mid", references / "piano_chorale.mid")
    # multi_band has no reference; these have one each but are broken or suspicious.
    (estimates / "corrupt.mid").write_bytes(b"MThd\x00\x00 truncated")
    shutil.copy(reference_dir / "piano_chorale.mid", references / "corrupt.mid")
    save_midi(music_pb2.NoteSequence(), estimates / "empty.mid")
    shutil.copy(reference_dir / "piano_chorale.mid", references / "empty.mid")
    short = load_midi(reference_dir / "piano_chorale.mt3.mid")
    kept = [note for note in short.notes if note.end_time < 3.0]
    del short.notes[:]
    short.notes.extend(kept)
    save_midi(short, estimates / "short.mid")
    shutil.copy(reference_dir / "piano_chorale.mid", references / "short.mid")

    code = main(["evaluate", "--estimates", str(estimates), "--reference", str(references),
                 "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert "multi_band.mid: error: no reference MIDI" in captured.err
    assert "corrupt.mid: error:" in captured.err and "not a valid MIDI file" in captured.err
    assert "empty.mid: warning: the transcription has no notes" in captured.err
    assert "short.mid: warning: the transcription ends at" in captured.err
    assert "2 of 5 files failed" in captured.err
    rows = table_rows(captured.out)
    assert rows["multi_band"][0] == "failed" and rows["corrupt"][0] == "failed"
    assert rows["empty"][:3] == ["0.000", "0.000", "0.000"]
    expected = expected_metrics(reference_dir, "piano_chorale")
    assert rows["piano_chorale"][0] == f"{expected['onset_f1']:.3f}"
    assert rows["mean"][:2] == ["(3", "files)"]


def test_missing_reference_folder_is_a_clear_error(estimates, tmp_path, capsys):
    code = main(["evaluate", "--estimates", str(estimates), "--reference", str(tmp_path / "nope")])
    assert code == 2
    assert "is not a folder" in capsys.readouterr().err


@pytest.mark.checkpoint
def test_transcribes_audio_with_the_model(reference_dir, checkpoint_dir, tmp_path, capsys):
    audio = tmp_path / "audio"
    audio.mkdir()
    chorale = load_audio(reference_dir / "piano_chorale.wav")[: 16000 * 4]
    soundfile.write(audio / "chorale.wav", chorale, 16000)
    (audio / "broken.wav").write_bytes(b"RIFF not really")
    references = tmp_path / "references"
    references.mkdir()
    ground_truth = load_midi(reference_dir / "piano_chorale.mid")
    kept = [note for note in ground_truth.notes if note.start_time < 4.0]
    del ground_truth.notes[:]
    ground_truth.notes.extend(kept)
    for name in ("chorale", "broken"):
        save_midi(ground_truth, references / f"{name}.mid")
    out_json = tmp_path / "scores.json"

    code = main(["evaluate", str(audio), "--reference", str(references), "--json", str(out_json),
                 "--checkpoint-dir", str(checkpoint_dir), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert "broken.wav: error:" in captured.err
    files = json.loads(out_json.read_text())["files"]
    chorale_scores = next(entry for entry in files if entry["name"] == "chorale")
    assert chorale_scores["metrics"]["onset_f1"] > 0.8
    assert table_rows(captured.out)["chorale"][0] == f"{chorale_scores['metrics']['onset_f1']:.3f}"


@pytest.mark.parametrize("option", ["--json", "--csv"])
def test_an_unwritable_scores_file_is_refused_before_scoring(
    option, estimates, reference_dir, tmp_path, capsys
):
    (tmp_path / "taken").write_text("a file, not a folder")
    code = main(["evaluate", "--estimates", str(estimates), "--reference", str(reference_dir),
                 option, str(tmp_path / "taken" / "scores"), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 2
    assert f"cannot write {tmp_path / 'taken' / 'scores'}: {tmp_path / 'taken'} is a file" in (
        captured.err
    )
    assert "Traceback" not in captured.err and "mean" not in captured.out  # nothing scored
    assert (tmp_path / "taken").read_text() == "a file, not a folder"


def test_scores_file_that_cannot_be_written_at_the_end_is_reported(
    estimates, reference_dir, tmp_path, monkeypatch, capsys
):
    """An obstacle that appears while scoring: reported, the other file still written."""
    from keras_mt3 import evaluation

    out_json, out_csv = tmp_path / "scores.json", tmp_path / "scores.csv"
    scoring = evaluation.evaluate_files

    def score_then_block(*args, **kwargs):
        results = scoring(*args, **kwargs)
        out_json.mkdir()
        return results

    monkeypatch.setattr(evaluation, "evaluate_files", score_then_block)
    code = main(["evaluate", "--estimates", str(estimates), "--reference", str(reference_dir),
                 "--json", str(out_json), "--csv", str(out_csv), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert f"error: cannot write {out_json}: it is a folder" in captured.err
    assert "Traceback" not in captured.err
    assert not any(out_json.iterdir())  # no half-written temporary file
    with open(out_csv, newline="") as handle:
        assert {row["file"] for row in csv.DictReader(handle)} == {*CLIPS, "mean"}


def test_references_without_a_transcription_are_reported(estimates, reference_dir, tmp_path, capsys):
    references = tmp_path / "references"
    references.mkdir()
    for name in (*CLIPS, "unheard", "also_unheard"):
        shutil.copy(reference_dir / "piano_chorale.mid", references / f"{name}.mid")
    code = main(["evaluate", "--estimates", str(estimates), "--reference", str(references),
                 "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0
    assert (
        f"warning: 2 reference file(s) in {references} have no transcription to score and are "
        "left out: also_unheard.mid, unheard.mid"
    ) in captured.err
    assert set(table_rows(captured.out)) >= set(CLIPS)


def test_audio_that_cannot_be_scored_loads_no_model(reference_dir, tmp_path, no_model_load, capsys):
    references = tmp_path / "references"
    references.mkdir()
    shutil.copy(reference_dir / "piano_chorale.mid", references / "gone.mid")
    code = main(["evaluate", str(tmp_path / "gone.wav"), "--reference", str(references),
                 "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert "gone.wav: error: audio file" in captured.err and "does not exist" in captured.err
    assert table_rows(captured.out)["gone"][0] == "failed"


def test_a_bad_batch_size_is_a_usage_error(estimates, reference_dir, no_model_load, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["evaluate", "--estimates", str(estimates), "--reference", str(reference_dir),
              "--decode-batch-size", "0"])
    assert stopped.value.code == 2
    assert "--decode-batch-size: must be a whole number >= 1, got '0'" in capsys.readouterr().err
