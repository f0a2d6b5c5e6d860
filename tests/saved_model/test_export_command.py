"""`keras-mt3 export OUT_DIR --preset ...` writes a SavedModel (checked without running it)."""

import os
import shutil

import pytest
from export_support import build_tiny_backbone
from saved_model_inspection import signature_specs, xla_requirements

from keras_mt3.cli.main import main
from keras_mt3.saved_model import signatures as names


@pytest.fixture(scope="module")
def preset_dir(tensorflow_backend, tmp_path_factory):
    from keras_mt3.models.mt3_transcriber import MT3Transcriber

    directory = tmp_path_factory.mktemp("preset") / "tiny"
    backbone = build_tiny_backbone(max_decoder_length=1024)
    MT3Transcriber(backbone, vocabulary="mt3").save_to_preset(directory)
    return directory


def test_export_command_replaces_its_own_export_atomically_with_normal_permissions(
    preset_dir, tiny_saved_model, tmp_path, capsys
):
    output = tmp_path / "1"
    shutil.copytree(tiny_saved_model, output)
    (output / "stale.txt").write_text("old")
    mask = os.umask(0o022)
    try:
        code = main(["export", str(output), "--preset", str(preset_dir), "--max-audio-seconds",
                     "5", "--request-batch-size", "2", "--no-xla", "--overwrite", "--no-progress"])
    finally:
        os.umask(mask)
    assert code == 0
    assert f"wrote SavedModel {output}" in capsys.readouterr().out
    assert not (output / "stale.txt").exists()
    assert [path.name for path in tmp_path.iterdir()] == ["1"]  # no temporary folders left
    assert xla_requirements(output) == {names.SERVING_DEFAULT: [], names.DECODE_TOKENS: []}
    specs = signature_specs(output)
    assert specs[names.SERVING_DEFAULT]["inputs"][names.WAVEFORM] == ("DT_FLOAT", (2, -1))
    frames = specs[names.DECODE_TOKENS]["inputs"][names.ENCODER_INPUTS]
    assert frames == ("DT_FLOAT", (2, 256, 512))
    # A TF Serving account that is neither owner nor group can read every part of it.
    modes = {str(path.relative_to(output)): path.stat().st_mode & 0o777
             for path in [output, *output.rglob("*")]}
    assert modes["."] == 0o755 and modes["saved_model.pb"] == 0o644
    assert {mode for path, mode in modes.items() if (output / path).is_dir()} == {0o755}
    assert {mode for path, mode in modes.items() if (output / path).is_file()} == {0o644}


@pytest.mark.backend_independent
@pytest.mark.parametrize("contents", ["notes", "foreign SavedModel"])
def test_overwrite_refuses_a_folder_it_did_not_export(contents, tmp_path, capsys):
    output = tmp_path / "1"
    output.mkdir()
    if contents == "notes":
        (output / "thesis.txt").write_text("years of work")
    else:  # a SavedModel from elsewhere: no keras-mt3 manifest
        (output / "saved_model.pb").write_bytes(b"\x08\x01")
        (output / "variables").mkdir()
    before = {str(path): path.read_bytes() for path in output.rglob("*") if path.is_file()}
    # The preset does not exist: the refusal comes before anything is loaded.
    code = main(["export", str(output), "--preset", str(tmp_path / "no_preset"), "--overwrite",
                 "--no-progress"])
    assert code == 2
    assert "is not a SavedModel written by keras-mt3" in capsys.readouterr().err
    assert {str(path): path.read_bytes() for path in output.rglob("*") if path.is_file()} == before
    assert (output / "variables").is_dir() or contents == "notes"


@pytest.mark.backend_independent
def test_export_under_a_file_is_refused_before_loading(tmp_path, capsys):
    (tmp_path / "models").write_text("a file")
    code = main(["export", str(tmp_path / "models" / "1"), "--preset", str(tmp_path / "none")])
    assert code == 2
    assert f"{tmp_path / 'models'} is a file, not a folder" in capsys.readouterr().err


@pytest.mark.backend_independent
@pytest.mark.parametrize(
    "option, value",
    [("--max-audio-seconds", "nan"), ("--max-audio-seconds", "0"), ("--request-batch-size", "0"),
     ("--decode-batch-size", "-1")],
)
def test_bad_export_options_are_usage_errors(option, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["export", str(tmp_path / "1"), option, value])
    assert stopped.value.code == 2
    assert f"{option}: must be" in capsys.readouterr().err
    assert not (tmp_path / "1").exists()


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
