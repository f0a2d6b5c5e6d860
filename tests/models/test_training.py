"""Training under the current backend: a tiny model learns 8 rendered clips by heart, T5X
Adafactor matches its reference, and `keras-mt3 train` runs fit on the tf.data pipeline."""

import json

import helpers
import keras
import numpy as np
import pytest
import soundfile
from weights_files import stored_arrays

from keras_mt3.cli.main import main as cli_main
from keras_mt3.data.pipeline import TrainingDataConfig, evaluation_dataset
from keras_mt3.data.synthetic import synthetic_pairs
from keras_mt3.midi_io import save_midi
from keras_mt3.models.losses import MT3Loss
from keras_mt3.models.mt3_transcriber import MT3Transcriber
from keras_mt3.models.optimizers import T5XAdafactor, factored_shape, make_optimizer

JIT_COMPILE = keras.backend.backend() != "torch"  # explicit: XLA under jax/tensorflow


def learning_transcriber(frames, target_length, dropout=0.0):
    """Wider than the helpers' tiny model and two layers deep: enough to learn 8 clips."""
    layers = dict(num_encoder_layers=2, num_decoder_layers=2)
    return helpers.tiny_transcriber(
        batch_size=8, hidden_dim=64, head_dim=32, intermediate_dim=128, **layers,
        max_encoder_length=frames, max_decoder_length=target_length, dropout=dropout,
    )


def test_tiny_model_memorizes_eight_rendered_clips_until_greedy_decoding_is_exact():
    keras.utils.set_random_seed(0)
    # 0.5 s clips are 63 frames: one 64-frame window each, so the 8 examples are fixed.
    pairs = synthetic_pairs(8, 0.5, seed=3, programs=(0,), notes_per_second=4)
    config = TrainingDataConfig(window_frames=64, target_length=24, batch_size=8)
    ((x, y),) = list(evaluation_dataset(pairs, config).as_numpy_iterator())
    assert x["encoder_inputs"].shape == (8, 64, 512) and np.all((y > 0).sum(1) >= 6)

    model = learning_transcriber(64, 24)
    model.compile(
        optimizer=make_optimizer("adamw", 3e-3, weight_decay=0.0),
        loss=MT3Loss(),
        jit_compile=JIT_COMPILE,
    )
    initial_loss = model.evaluate(x, y, verbose=0)
    for _ in range(4):
        history = model.fit(x, y, batch_size=8, epochs=40, verbose=0, shuffle=False)
        tokens = model.generate(x["encoder_inputs"])
        if np.array_equal(tokens, y):
            break
    final_loss = history.history["loss"][-1]
    assert final_loss <= 0.05 * initial_loss, (initial_loss, final_loss)
    np.testing.assert_array_equal(tokens, y)


def numpy_t5x_adafactor(params, gradients, steps, lr=1e-3):
    """t5x/adafactor.py (beta1=None, factored, parameter scale, clipping 1.0), in NumPy."""
    params = params.astype(np.float64)
    shape = factored_shape(params.shape)
    row = col = full = None
    for step, gradient in enumerate(gradients, start=1):
        decay = 1.0 - step**-0.8
        squared = gradient.astype(np.float64) ** 2 + 1e-30
        if shape is None:
            full = (1 - decay) * squared if full is None else decay * full + (1 - decay) * squared
            update = gradient / np.sqrt(full)
        else:
            squared = squared.reshape(shape)
            new_row, new_col = squared.mean(1), squared.mean(0)
            row = (1 - decay) * new_row if row is None else decay * row + (1 - decay) * new_row
            col = (1 - decay) * new_col if col is None else decay * col + (1 - decay) * new_col
            update = gradient.reshape(shape) / np.sqrt(row / row.mean())[:, None] / np.sqrt(col)
            update = update.reshape(params.shape)
        update /= max(1.0, np.sqrt(np.mean(update**2)))
        params = params - lr * max(np.sqrt(np.mean(params**2)), 1e-3) * update
    return params


@pytest.mark.parametrize("shape", [(128, 256), (256, 2, 64), (2, 64, 256), (64, 32), (16,)])
def test_t5x_adafactor_matches_the_t5x_update_rule(shape):
    rng = np.random.default_rng(0)
    initial = rng.standard_normal(shape).astype(np.float32) * 0.05
    gradients = [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]
    if len(shape) == 2:
        gradients[1][: shape[0] // 2] = 0.0  # rows without gradient (unused embeddings)
    variable = keras.Variable(initial)
    optimizer = T5XAdafactor(learning_rate=1e-3)
    for gradient in gradients:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(gradient), variable)])
    actual = keras.ops.convert_to_numpy(variable.value)
    expected = numpy_t5x_adafactor(initial, gradients, 3)
    assert np.all(np.isfinite(actual))
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-7)


def test_factoring_follows_t5x_matrix_layouts():
    assert factored_shape((512, 6, 64)) == (512, 384)
    assert factored_shape((6, 64, 512)) == (384, 512)
    assert factored_shape((1536, 512)) == (1536, 512)
    assert factored_shape((512,)) is None and factored_shape((64, 512)) is None


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
    status = cli_main(
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
    assert cli_main(["train", "-o", str(tmp_path)]) == 2
    assert "no training data" in capsys.readouterr().err
    config_path = tmp_path / "bad.json"
    config_path.write_text(json.dumps({"learning_rat": 1e-3}))
    arguments = ["train", "--config", str(config_path), "--synthetic", "1", "-o", str(tmp_path)]
    assert cli_main(arguments) == 2
    assert "unknown options learning_rat" in capsys.readouterr().err


# The tiny model on two rendered clips, one step per epoch (a checkpoint after every step).
TINY_RUN = [
    "train", "--synthetic", "2", "--model-size", "tiny", "--steps-per-epoch", "1",
    "--batch-size", "2", "--target-length", "32", "--window-frames", "32", "--seed", "0",
    "--verbose", "0", "--no-jit-compile",
]


@pytest.mark.slow
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, capsys):
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert cli_main([*TINY_RUN, "--steps", "3", "-o", str(whole)]) == 0
    assert cli_main([*TINY_RUN, "--steps", "2", "-o", str(split)]) == 0  # stopped after step 2
    capsys.readouterr()
    assert cli_main([*TINY_RUN, "--steps", "3", "-o", str(split), "--resume"]) == 0
    assert "epoch_0002.weights.h5 at step 2" in capsys.readouterr().err
    # Weights, optimizer state and its step count (dropout is on: its random state too).
    expected = stored_arrays(whole / "checkpoints" / "epoch_0003.weights.h5")
    actual = stored_arrays(split / "checkpoints" / "epoch_0003.weights.h5")
    assert sorted(actual) == sorted(expected) and any("optimizer" in name for name in expected)
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, rtol=1e-5, atol=1e-7, err_msg=name)
    history = (split / "history.csv").read_text()
    assert history == (whole / "history.csv").read_text()

    # A checkpoint from other options is refused with the reason, not half loaded.
    status = cli_main([*TINY_RUN, "--steps", "4", "-o", str(split), "--resume", "--optimizer",
                       "adamw"])
    assert status == 2 and "--optimizer the run started with" in capsys.readouterr().err


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="the torch message")
def test_data_parallel_under_torch_says_what_to_do_instead(tmp_path, capsys):
    status = cli_main(["train", "-o", str(tmp_path), "--synthetic", "1", "--data-parallel"])
    assert status == 2 and "torch.distributed" in capsys.readouterr().err
