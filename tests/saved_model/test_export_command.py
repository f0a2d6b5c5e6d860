"""`keras-mt3 export OUT_DIR --preset ...` writes a SavedModel (checked without running it)."""

import pytest
from export_support import build_tiny_backbone
from saved_model_inspection import signature_specs, xla_requirements

from keras_mt3.cli.main import main
from keras_mt3.saved_model import signatures as names


@pytest.fixture(scope="module")
def preset_dir(tensorflow_backend, tmp_path_factory):
    from keras_mt3.checkpoints.convert_t5x import save_preset

    directory = tmp_path_factory.mktemp("preset") / "tiny"
    save_preset(build_tiny_backbone(max_decoder_length=1024), directory, vocabulary="mt3")
    return directory


def test_export_command_replaces_a_version_folder_atomically(preset_dir, tmp_path, capsys):
    output = tmp_path / "1"
    output.mkdir()
    (output / "stale.txt").write_text("old")
    code = main(["export", str(output), "--preset", str(preset_dir), "--max-audio-seconds", "5",
                 "--request-batch-size", "2", "--no-xla", "--overwrite", "--no-progress"])
    assert code == 0
    assert f"wrote SavedModel {output}" in capsys.readouterr().out
    assert not (output / "stale.txt").exists()
    assert [path.name for path in tmp_path.iterdir()] == ["1"]  # no temporary folders left
    assert xla_requirements(output) == {names.SERVING_DEFAULT: [], names.DECODE_TOKENS: []}
    specs = signature_specs(output)
    assert specs[names.SERVING_DEFAULT]["inputs"][names.WAVEFORM] == ("DT_FLOAT", (2, -1))
    frames = specs[names.DECODE_TOKENS]["inputs"][names.ENCODER_INPUTS]
    assert frames == ("DT_FLOAT", (2, 256, 512))


def test_export_command_reports_an_existing_folder(preset_dir, tmp_path, capsys):
    (tmp_path / "1").mkdir()
    code = main(["export", str(tmp_path / "1"), "--preset", str(preset_dir), "--no-progress"])
    assert code == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.backend_independent
def test_export_is_a_lazy_top_level_function(tmp_path):
    import keras_mt3
    from keras_mt3.errors import KerasMT3Error

    assert keras_mt3.export is keras_mt3.saved_model.export
    with pytest.raises(KerasMT3Error, match="MT3Transcriber or MT3Backbone"):
        keras_mt3.export(object(), tmp_path / "model")
    assert not (tmp_path / "model").exists()
