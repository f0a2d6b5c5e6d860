"""Without the test data, data-dependent tests skip, or fail where the run requires the data."""

import os
import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.backend_independent

TESTS_DIR = pathlib.Path(__file__).resolve().parent
NEEDS_DATA = '''
def test_needs_the_reference_outputs(reference_dir):
    pass


def test_needs_the_checkpoint(checkpoint_dir):
    pass
'''


def run_without_test_data(tmp_path, **environment):
    """Runs two tests on the fixtures of tests/conftest.py with the data dir pointed nowhere."""
    (tmp_path / "test_needs_data.py").write_text(NEEDS_DATA)
    env = {key: value for key, value in os.environ.items() if not key.startswith("KERAS_MT3_")}
    env.update(
        KERAS_MT3_TEST_DATA=str(tmp_path / "absent"), PYTHONPATH=str(TESTS_DIR), **environment
    )
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
               "-p", "conftest", "test_needs_data.py"]
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )


def test_missing_test_data_skips_with_a_reason_by_default(tmp_path):
    completed = run_without_test_data(tmp_path)
    assert completed.returncode == 0, completed.stdout[-2000:]
    assert "2 skipped" in completed.stdout
    assert "MT3 reference outputs not found" in completed.stdout
    assert "official MT3 checkpoint not found" in completed.stdout


def test_missing_test_data_is_an_error_when_required(tmp_path):
    completed = run_without_test_data(tmp_path, KERAS_MT3_REQUIRE_TEST_DATA="1")
    assert completed.returncode == 1, completed.stdout[-2000:]
    assert "2 errors" in completed.stdout and "skipped" not in completed.stdout
    assert "KERAS_MT3_REQUIRE_TEST_DATA is set, so this is an error" in completed.stdout
    assert "MT3 reference outputs not found" in completed.stdout
