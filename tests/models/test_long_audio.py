"""An hour of audio from disk: every segment is transcribed, in bounded memory."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

# The Keras backend does not change how audio is streamed, so this runs once.
pytestmark = pytest.mark.backend_independent

HOUR_SECONDS = 3600
SAMPLE_RATE = 16000

CHILD = r"""
import json, resource, sys
import keras
from keras_mt3.codec.vocabulary import MT3_VOCABULARY
from keras_mt3.models.mt3_backbone import MT3Backbone
from keras_mt3.models.mt3_transcriber import MT3Transcriber
import numpy as np

keras.utils.set_random_seed(0)
backbone = MT3Backbone(
    vocabulary_size=MT3_VOCABULARY.num_embeddings, hidden_dim=16, num_heads=2, head_dim=8,
    intermediate_dim=32, num_encoder_layers=1, num_decoder_layers=1, max_decoder_length=8,
)
model = MT3Transcriber(backbone, decode_batch_size=8, max_decode_length=8)
# Warm up every batch shape the hour needs, so compiled programs are not counted as growth.
for count in (8, 2):
    model.transcribe(np.zeros(count * 32768, "float32"), sample_rate=16000, progress=False)
before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
_, details = model.transcribe(sys.argv[1], progress=False, return_details=True)
after_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps(dict(details, before_mb=before_mb, after_mb=after_mb)))
"""


def write_hour_of_audio(path):
    rng = np.random.default_rng(0)
    with soundfile.SoundFile(path, "w", SAMPLE_RATE, 1, subtype="PCM_16") as sound_file:
        for _ in range(HOUR_SECONDS // 60):
            sound_file.write((0.1 * rng.standard_normal(60 * SAMPLE_RATE)).astype("float32"))


@pytest.mark.slow
def test_an_hour_long_file_is_transcribed_in_bounded_memory(tmp_path):
    path = tmp_path / "hour.wav"
    write_hour_of_audio(path)
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        timeout=900,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert completed.returncode == 0 and lines, completed.stderr[-3000:]
    details = json.loads(lines[-1][len("RESULT ") :])
    assert details["num_segments"] == int(np.ceil(HOUR_SECONDS * SAMPLE_RATE / 32768))
    # Held whole, the hour would take 230 MB as float32 samples and 920 MB as log-mel inputs.
    assert details["after_mb"] - details["before_mb"] < 200, details
