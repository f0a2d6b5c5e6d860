"""`keras-mt3 convert T5X_DIR OUT_DIR`: a T5X checkpoint in, a Keras preset folder out."""

import numpy as np
import pytest

from keras_mt3.cli.main import main
from keras_mt3.preset_io import read_metadata

# The command is the same code under every backend; running it once keeps the suite short.
pytestmark = pytest.mark.backend_independent


@pytest.mark.checkpoint
def test_converts_the_official_checkpoint_into_a_preset_folder(checkpoint_dir, tmp_path, capsys):
    from keras_mt3.models.mt3_transcriber import MT3Transcriber

    output = tmp_path / "mt3"
    assert main(["convert", str(checkpoint_dir), str(output), "--no-progress"]) == 0
    metadata = read_metadata(output)
    assert capsys.readouterr().out == (
        f"wrote preset {output} (keras_mt3>MT3Transcriber, {metadata['parameter_count']:,} "
        "parameters, from the official mt3 checkpoint)\n"
    )
    assert 45e6 < metadata["parameter_count"] < 46e6
    converted = MT3Transcriber.from_preset(str(output))
    official = MT3Transcriber.from_preset("mt3", checkpoint_dir=checkpoint_dir)
    for weight, expected in zip(converted.get_weights(), official.get_weights(), strict=True):
        np.testing.assert_array_equal(weight, expected)

    # An existing preset is only replaced with --overwrite.
    assert main(["convert", str(checkpoint_dir), str(output), "--no-progress"]) == 2
    assert "already holds a preset" in capsys.readouterr().err
    assert main(["convert", str(checkpoint_dir), str(output), "--overwrite", "--no-progress"]) == 0


def test_refuses_what_it_cannot_convert_and_writes_nothing(tmp_path, t5x_checkpoint_writer, capsys):
    not_mt3 = t5x_checkpoint_writer(tmp_path / "t5x", {"encoder/x/kernel": np.ones((2, 3))})
    output = tmp_path / "out"
    assert main(["convert", str(not_mt3), str(output), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "keras-mt3 convert: error: the checkpoint lacks 'decoder/token_embedder/embedding'" in (
        error
    )
    assert "Traceback" not in error and not output.exists()
    assert main(["convert", str(tmp_path / "missing"), str(output)]) == 2
    assert "does not exist" in capsys.readouterr().err
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    assert main(["convert", str(not_mt3), str(occupied), "--overwrite"]) == 2
    assert "holds no preset" in capsys.readouterr().err
    assert [p.name for p in occupied.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["occupied", "t5x"]
