"""`keras-mt3 train`: options from defaults, a JSON file and flags, in that order; one real run
that prints what it did; bad options explained before anything loads."""

import json

import keras
import numpy as np
import pytest
import soundfile

from keras_mt3.cli import train_command
from keras_mt3.cli.main import build_parser, main
from keras_mt3.data.synthetic import synthetic_pairs
from keras_mt3.midi_io import save_midi
from keras_mt3.models.mt3_transcriber import MT3Transcriber
from keras_mt3.training import TrainingConfig


def resolved(*arguments):
    return train_command.resolve_options(build_parser().parse_args(["train", *arguments]))


@pytest.mark.backend_independent
def test_flags_win_over_the_config_file_and_the_file_over_the_defaults(tmp_path):
    config_path = tmp_path / "train.json"
    config_path.write_text(json.dumps({"data": "songs", "steps": 50, "batch_size": 4}))
    config = resolved("--config", str(config_path), "--steps", "7", "-o", str(tmp_path))
    assert config.steps == 7 and config.batch_size == 4 and config.data == ["songs"]
    assert config.steps_per_epoch == TrainingConfig().steps_per_epoch
    assert config.output == str(tmp_path)


@pytest.mark.backend_independent
def test_help_shows_the_library_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    defaults = TrainingConfig()
    assert f"examples per step ({defaults.batch_size})" in text
    assert f"total training steps ({defaults.steps})" in text
    assert f"target tokens per example ({defaults.target_length})" in text
    assert f"size of a new model ({defaults.model_size})" in text


@pytest.mark.slow
def test_train_command_writes_checkpoints_history_and_a_loadable_preset(tmp_path, capsys):
    data = tmp_path / "data"  # a folder of x.wav + x.mid pairs
    data.mkdir()
    for pair in synthetic_pairs(2, 2.0, seed=0, programs=(0, 33)):
        soundfile.write(data / f"{pair.name}.wav", pair.audio, 16000)
        save_midi(pair.notes, data / f"{pair.name}.mid")
    config = {"data": str(data), "model_size": "tiny", "target_length": 64, "window_frames": 64}
    config_path = tmp_path / "train.json"
    config_path.write_text(json.dumps(config))
    output = tmp_path / "run"
    status = main(
        [
            "train", "-o", str(output), "--config", str(config_path), "--steps", "2",
            "--steps-per-epoch", "1", "--batch-size", "2", "--seed", "0", "--verbose", "0",
            "--no-jit-compile",
        ]
    )
    assert status == 0
    assert sorted(p.name for p in (output / "checkpoints").iterdir()) == [
        "epoch_0001.random_state.json", "epoch_0001.weights.h5",
        "epoch_0002.random_state.json", "epoch_0002.weights.h5",
    ]
    history = (output / "history.csv").read_text().strip().splitlines()
    assert len(history) == 3 and all(np.isfinite(float(row.split(",")[1])) for row in history[1:])
    recorded = json.loads((output / "train_config.json").read_text())
    assert recorded["model_size"] == "tiny" and recorded["steps"] == 2
    # The defaults: T5X Adafactor, dropout 0.1 (shared across time), explicit jit_compile.
    assert recorded["optimizer"] == "adafactor" and recorded["dropout"] == 0.1
    assert recorded["jit_compile"] is False
    model = MT3Transcriber.from_preset(str(output / "preset"), max_decode_length=32)
    assert model.backbone.hidden_dim == 128 and model.vocabulary.name == "mt3"
    # Trained on 64-frame windows, it still takes full 256-frame segments at inference.
    model.transcribe(np.zeros(3 * 16000, np.float32), sample_rate=16000, progress=False)
    captured = capsys.readouterr()
    assert "saved the trained model" in captured.out
    assert "on 2 pairs" in captured.err and "no pairs skipped" in captured.err


def test_train_command_explains_bad_options(tmp_path, capsys):
    assert main(["train", "-o", str(tmp_path)]) == 2
    assert "no training data" in capsys.readouterr().err
    config_path = tmp_path / "bad.json"
    config_path.write_text(json.dumps({"learning_rat": 1e-3}))
    arguments = ["train", "--config", str(config_path), "--synthetic", "1", "-o", str(tmp_path)]
    assert main(arguments) == 2
    assert "unknown options learning_rat" in capsys.readouterr().err
    config_path.write_text(json.dumps({"model_size": "huge"}))
    assert main(arguments) == 2
    assert "model_size 'huge' is unknown; use one of mt3, small, tiny" in capsys.readouterr().err


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="the torch message")
def test_data_parallel_under_torch_says_what_to_do_instead(tmp_path, capsys):
    status = main(["train", "-o", str(tmp_path), "--synthetic", "1", "--data-parallel"])
    assert status == 2 and "torch.distributed" in capsys.readouterr().err

