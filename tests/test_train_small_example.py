"""examples/train_small.py runs end to end (a few steps) and reports its held-out scores."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

from keras_mt3.models.mt3_transcriber import MT3Transcriber

# The script is plain Keras code; one backend (jax, in a child process) covers it.
pytestmark = [pytest.mark.backend_independent, pytest.mark.slow]

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "examples" / "train_small.py"


def test_train_small_trains_saves_and_scores_held_out_clips(tmp_path):
    output = tmp_path / "run"
    command = [
        sys.executable, str(SCRIPT), "--steps", "4", "--steps-per-epoch", "2",
        "--warmup-steps", "2", "--train-clips", "3", "--eval-clips", "2", "--clip-seconds", "3",
        "--target-length", "64", "--output", str(output),
    ]
    environment = dict(os.environ, KERAS_BACKEND="jax")
    completed = subprocess.run(
        command, env=environment, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-3000:]

    assert "trained 4 steps" in completed.stdout
    assert "held-out clips: 2 x 3 s" in completed.stdout
    scores = dict(re.findall(r"^\s+(onset_f1|onset_offset_f1|frame_f1)\s+([0-9.]+)$",
                             completed.stdout, flags=re.M))
    assert sorted(scores) == ["frame_f1", "onset_f1", "onset_offset_f1"]
    assert all(0.0 <= float(value) <= 1.0 for value in scores.values())
    history = (output / "history.csv").read_text().strip().splitlines()
    assert len(history) == 3  # header + one line per 2-step epoch
    model = MT3Transcriber.from_preset(str(output / "preset"))
    assert model.backbone.hidden_dim == 128 and model.backbone.num_encoder_layers == 2
