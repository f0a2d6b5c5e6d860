"""`keras_mt3.evaluation` as a library: pairing files with references, scoring with any
`transcribe` callable, the mean where each metric applies, and the table and CSV summaries."""

import csv
import io
import shutil

import pytest
from note_seq.protobuf import music_pb2

from keras_mt3.errors import KerasMT3Error
from keras_mt3.evaluation import (
    evaluate_files,
    format_table,
    mean_metrics,
    pair_with_references,
    results_csv,
    results_json,
    unused_references,
)
from keras_mt3.metrics import transcription_metrics
from keras_mt3.midi_io import load_midi, save_midi

pytestmark = pytest.mark.backend_independent

CLIPS = ("multi_band", "piano_chorale")


@pytest.fixture
def folders(tmp_path, reference_dir):
    """`(estimates, references)`: the original MT3's transcriptions as <name>.mid beside a
    folder of the ground truth, which also holds a reference nothing is scored against."""
    estimates, references = tmp_path / "estimates", tmp_path / "references"
    estimates.mkdir()
    references.mkdir()
    for name in CLIPS:
        shutil.copy(reference_dir / f"{name}.mt3.mid", estimates / f"{name}.mid")
        shutil.copy(reference_dir / f"{name}.mid", references / f"{name}.mid")
    shutil.copy(reference_dir / "piano_chorale.mid", references / "unheard.midi")
    (references / "notes.txt").write_text("not MIDI")
    return estimates, references


def test_pairs_by_name_and_lists_the_references_left_out(folders):
    estimates, references = folders
    sources = [estimates / "piano_chorale.mid", estimates / "multi_band.mid", estimates / "x.mid"]
    pairs = pair_with_references(sources, references)
    assert pairs == [
        ("piano_chorale", sources[0], references / "piano_chorale.mid"),
        ("multi_band", sources[1], references / "multi_band.mid"),
        ("x", sources[2], None),
    ]
    assert unused_references(references, ["multi_band", "piano_chorale"]) == ["unheard.midi"]


def test_scores_equal_transcription_metrics_and_bad_files_do_not_stop_the_rest(folders):
    estimates, references = folders
    save_midi(music_pb2.NoteSequence(), estimates / "empty.mid")
    shutil.copy(references / "piano_chorale.mid", references / "empty.mid")
    names = [*CLIPS, "empty", "missing"]
    pairs = pair_with_references([estimates / f"{name}.mid" for name in names], references)

    def transcribe(path):
        if path.stem == "multi_band":
            raise KerasMT3Error("the model failed on this one")
        return load_midi(path)

    results = evaluate_files(pairs, transcribe, progress=False)
    assert [result.name for result in results] == names
    band, chorale, empty, missing = results
    assert band.failed and band.error == "the model failed on this one"
    assert missing.failed and "no reference MIDI" in missing.error
    expected = transcription_metrics(
        load_midi(estimates / "piano_chorale.mid"), load_midi(references / "piano_chorale.mid")
    )
    assert chorale.metrics == expected and chorale.not_applicable == ["drum_onset"]
    assert empty.metrics["onset_f1"] == 0.0 and "no notes" in empty.warnings[0]

    # Drums apply to neither scored file: their mean is None, the others average both.
    mean = mean_metrics(results)
    assert mean["drum_onset_f1"] is None
    assert mean["frame_f1"] == pytest.approx((chorale.metrics["frame_f1"] + 0.0) / 2)
    assert results_json(results)["num_failed"] == 2

    table = format_table(results).splitlines()
    chorale_row = next(line.split() for line in table if line.startswith("piano_chorale"))
    assert chorale_row[1:] == [
        f"{expected['onset_f1']:.3f}", f"{expected['onset_offset_f1']:.3f}",
        f"{expected['frame_f1']:.3f}", f"{expected['program_full_f1']:.3f}", "n/a",
    ]
    assert any(line.startswith("mean (2 files)") for line in table)

    rows = {row["file"]: row for row in csv.DictReader(io.StringIO(results_csv(results)))}
    assert rows["multi_band"]["error"] == "the model failed on this one"
    assert float(rows["mean"]["onset_f1"]) == pytest.approx(mean["onset_f1"])


def test_no_scored_file_has_no_mean():
    results = evaluate_files([("a", "a.wav", None)], load_midi, progress=False)
    assert results[0].failed and mean_metrics(results) is None
    assert "mean" not in format_table(results)
