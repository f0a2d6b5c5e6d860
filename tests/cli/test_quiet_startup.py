"""A `keras-mt3` process prints no dependency noise: no pydub ffmpeg warning (keras-mt3 never
uses pydub), no TensorFlow start-up lines below TF_CPP_MIN_LOG_LEVEL, nothing twice; real
errors still show. Runs the command in a fresh interpreter, under the current backend."""

import os
import pathlib
import subprocess
import sys

import pytest
from cli_support import write_tone

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def run_cli(*args, backend=None):
    environment = dict(os.environ)
    environment.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command's own default applies
    if backend:
        environment["KERAS_BACKEND"] = backend
    return subprocess.run(
        [sys.executable, "-m", "keras_mt3.cli.main", *map(str, args)],
        cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    """A one-layer model that ends every segment at once (EOS): the decoder layer adds
    nothing, every token embeds as ones, and only EOS gets a positive logit."""
    import numpy as np

    from helpers import tiny_mt3_backbone

    from keras_mt3.models.mt3_transcriber import MT3Transcriber

    from keras_mt3.constants import EOS_ID, MAX_DECODE_LENGTH

    backbone = tiny_mt3_backbone(max_decoder_length=MAX_DECODE_LENGTH, dropout=0.0)
    for weight in backbone.weights:
        if "decoder_layer" in weight.path:
            weight.assign(np.zeros(weight.shape, "float32"))
    backbone.token_embedder.embeddings.assign(np.ones(backbone.token_embedder.embeddings.shape))
    logits = np.zeros(backbone.logits_dense.kernel.shape, "float32")
    logits[:, EOS_ID] = 1.0
    backbone.logits_dense.kernel.assign(logits)
    directory = tmp_path_factory.mktemp("preset") / "tiny"
    MT3Transcriber(backbone, vocabulary="mt3").save_to_preset(directory)
    return directory


@pytest.mark.backend_independent
def test_help_prints_nothing_on_stderr():
    result = run_cli("--help")
    assert result.returncode == 0 and "transcribe" in result.stdout
    assert result.stderr == ""


def test_transcribe_prints_no_dependency_noise(tiny_preset, tmp_path):
    import keras

    clip = write_tone(tmp_path / "clip.wav", 0.5)
    result = run_cli("transcribe", clip, tmp_path / "missing.wav", "-o", tmp_path / "out",
                     "--preset", tiny_preset, "--no-progress", backend=keras.backend.backend())
    assert result.returncode == 1, result.stderr
    assert (tmp_path / "out" / "clip.mid").is_file()
    lines = result.stderr.splitlines()
    assert "missing.wav: error: audio file" in result.stderr  # real errors still show
    assert "ffmpeg" not in result.stderr
    assert "absl::InitializeLog" not in result.stderr
    assert not [line for line in lines if line[:1] in "IW" and line[1:5] == "0000"]
    assert len(lines) == len(set(lines)), result.stderr
