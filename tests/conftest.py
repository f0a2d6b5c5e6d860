"""Shared fixtures: where the test data lives and what happens without it.

Test data (the official checkpoint and the original MT3's reference outputs) is read from
``$KERAS_MT3_TEST_DATA`` (default: ``../shared`` beside the repository). Tests that need it skip
with a clear reason on a machine that lacks it, unless ``KERAS_MT3_REQUIRE_TEST_DATA=1``: then
missing data is an error, so a run that should check fidelity cannot pass without checking it
(CI sets it).
"""

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
TEST_DATA_DIR = pathlib.Path(os.environ.get("KERAS_MT3_TEST_DATA", REPO_ROOT.parent / "shared"))
REFERENCE_DIR = TEST_DATA_DIR / "reference" / "mt3"
CHECKPOINT_DIR = pathlib.Path(
    os.environ.get("KERAS_MT3_CHECKPOINT_DIR", TEST_DATA_DIR / "checkpoints" / "mt3")
)
REFERENCE_CLIPS = ("piano_chorale", "multi_band")
REQUIRE_TEST_DATA_ENV = "KERAS_MT3_REQUIRE_TEST_DATA"


def missing_test_data(reason):
    """Skips the test, or fails it when the run requires the test data."""
    if os.environ.get(REQUIRE_TEST_DATA_ENV, "") not in ("", "0"):
        pytest.fail(f"{reason}; {REQUIRE_TEST_DATA_ENV} is set, so this is an error",
                    pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def reference_dir():
    if not all((REFERENCE_DIR / f"{clip}.json").is_file() for clip in REFERENCE_CLIPS):
        missing_test_data(
            f"MT3 reference outputs not found in {REFERENCE_DIR} (set KERAS_MT3_TEST_DATA)"
        )
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def checkpoint_dir():
    if not (CHECKPOINT_DIR / "checkpoint").is_file():
        missing_test_data(
            f"official MT3 checkpoint not found in {CHECKPOINT_DIR} (set KERAS_MT3_CHECKPOINT_DIR)"
        )
    return CHECKPOINT_DIR
