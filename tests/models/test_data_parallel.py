"""Data-parallel training over two virtual CPU devices: every batch is split between them and
the losses and weights after a few steps equal one device's with the same global batch
(JAX `DataParallel`, TensorFlow `MirroredStrategy`)."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from weights_files import stored_arrays

# Each backend runs in a child process of its own (the devices must exist before it starts).
pytestmark = [pytest.mark.backend_independent, pytest.mark.slow]

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
RUNNER = pathlib.Path(__file__).with_name("data_parallel_run.py")


def losses(run_dir):
    rows = (run_dir / "history.csv").read_text().strip().splitlines()[1:]
    return [float(row.split(",")[1]) for row in rows]


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_data_parallel_training_equals_single_device_training(backend, tmp_path):
    environment = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    completed = subprocess.run(
        [sys.executable, str(RUNNER), backend, str(tmp_path)],
        env=environment, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == {"single": 0, "parallel": 0}
    assert "data parallel over 2 devices" in completed.stderr

    # Every input array of the batches of 4 went out as two halves on two different devices.
    assert report["shards"]
    for (first_shape, first_device), (second_shape, second_device) in report["shards"]:
        assert first_shape[0] == second_shape[0] == 2 and first_device != second_device

    single, parallel = tmp_path / "single", tmp_path / "parallel"
    assert len(losses(single)) == 3
    np.testing.assert_allclose(losses(parallel), losses(single), rtol=1e-5)
    expected = stored_arrays(single / "checkpoints" / "epoch_0003.weights.h5")
    actual = stored_arrays(parallel / "checkpoints" / "epoch_0003.weights.h5")
    assert sorted(actual) == sorted(expected)  # weights and optimizer state (step 3)
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, rtol=1e-4, atol=1e-6, err_msg=name)
