"""examples/finetune_ensemble.py fine-tunes the official model for a few steps under the suite's
backend and writes a preset that loads and transcribes."""

import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_mt3.models.mt3_transcriber import MT3Transcriber
from keras_mt3.preprocessing.audio_io import SAMPLE_RATE, load_audio

# The example is backend-neutral Keras code; training under each backend is tested elsewhere
# (tests/models/test_fine_tuning.py), so one backend is enough here.
pytestmark = [pytest.mark.slow, pytest.mark.checkpoint, pytest.mark.backend_independent]

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "examples" / "finetune_ensemble.py"


def test_finetune_ensemble_trains_the_decoder_and_saves_a_loadable_preset(
    tmp_path, checkpoint_dir, real_dir
):
    output = tmp_path / "run"
    # Two short steps, no before/after scoring: this checks the plumbing, not the accuracy
    # (docs/training.md has the measured default run).
    command = [
        sys.executable, str(SCRIPT), "--steps", "2", "--steps-per-epoch", "1", "--batch-size",
        "1", "--target-length", "64", "--no-evaluate", "--verbose", "2",
        "--real-dir", str(real_dir), "--checkpoint-dir", str(checkpoint_dir),
        "--output", str(output),
    ]
    completed = subprocess.run(
        command, env=dict(os.environ), capture_output=True, text=True, timeout=900
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "fine-tuning 26.8M of 45.9M parameters (decoder)" in completed.stderr
    assert "trained 2 steps" in completed.stdout

    history = (output / "history.csv").read_text().strip().splitlines()
    assert len(history) == 3  # header + one line per 1-step epoch
    losses = [float(line.split(",")[1]) for line in history[1:]]
    assert all(np.isfinite(losses))

    official = MT3Transcriber.from_preset("mt3", checkpoint_dir=checkpoint_dir)
    model = MT3Transcriber.from_preset(str(output / "preset"))
    # The encoder was frozen, the decoder trained.
    def kernel(transcriber, layer):
        return keras.ops.convert_to_numpy(layer(transcriber.backbone).weights[0])

    def first_encoder_layer(backbone):
        return backbone.encoder_layers[0]

    def logits(backbone):
        return backbone.logits_dense

    assert np.array_equal(kernel(model, first_encoder_layer), kernel(official, first_encoder_layer))
    assert not np.array_equal(kernel(model, logits), kernel(official, logits))
    audio = load_audio(real_dir / "03-ChristederdubistTagundLicht.wav")[: 4 * SAMPLE_RATE]
    notes = model.transcribe(audio, sample_rate=SAMPLE_RATE, progress=False).notes
    assert len(notes) > 4
    assert all(0 <= note.start_time < note.end_time <= 4.2 for note in notes)
