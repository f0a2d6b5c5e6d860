"""An hour of audio from disk: every segment is transcribed, in bounded memory."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from keras_mt3.constants import DEFAULT_FRAMES_PER_SEGMENT, HOP_LENGTH, SAMPLE_RATE

# The Keras backend does not change how audio is streamed, so this runs once.
pytestmark = pytest.mark.backend_independent

HOUR_SECONDS = 3600
TESTS_DIR = pathlib.Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys
sys.path.insert(0, sys.argv[2])
from helpers import tiny_transcriber
from keras_mt3.constants import HOP_LENGTH, SAMPLE_RATE
import numpy as np

model = tiny_transcriber(decode_batch_size=8, max_decoder_length=8)
segment_samples = model.frames_per_segment * HOP_LENGTH
# Warm up every batch shape the hour needs, so compiled programs are not counted as growth.
for count in (8, 2):
    model.transcribe(np.zeros(count * segment_samples, "float32"), sample_rate=SAMPLE_RATE,
                     progress=False)
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
        [sys.executable, "-c", CHILD, str(path), str(TESTS_DIR)],
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        timeout=900,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert completed.returncode == 0 and lines, completed.stderr[-3000:]
    details = json.loads(lines[-1][len("RESULT ") :])
    assert details["num_segments"] == int(np.ceil(HOUR_SECONDS * SAMPLE_RATE / (DEFAULT_FRAMES_PER_SEGMENT * HOP_LENGTH)))
    # Held whole, the hour would take 230 MB as float32 samples and 920 MB as log-mel inputs.
    assert details["after_mb"] - details["before_mb"] < 200, details
