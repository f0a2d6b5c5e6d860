"""Shared fixtures: where the test data lives and how to skip without it.

Test data (the official checkpoint and the original MT3's reference outputs) is read from
``$KERAS_MT3_TEST_DATA`` (default: ``../shared`` beside the repository). Tests that need it skip
with a clear reason on a machine that lacks it.
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


@pytest.fixture(scope="session")
def reference_dir():
    if not (REFERENCE_DIR / "piano_chorale.json").is_file():
        pytest.skip(f"MT3 reference outputs not found in {REFERENCE_DIR} (set KERAS_MT3_TEST_DATA)")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def checkpoint_dir():
    if not (CHECKPOINT_DIR / "checkpoint").is_file():
        pytest.skip(
            f"official MT3 checkpoint not found in {CHECKPOINT_DIR} (set KERAS_MT3_CHECKPOINT_DIR)"
        )
    return CHECKPOINT_DIR


@pytest.fixture(scope="session")
def release_dist(tmp_path_factory):
    """The sdist and wheel of this checkout, built once per session outside it."""
    from release_helpers import build_release

    return build_release(tmp_path_factory.mktemp("dist"))


@pytest.fixture
def fresh_venv(tmp_path):
    """The python of a new virtual environment outside the checkout, without keras-mt3 of its
    own (see `release_helpers`)."""
    from release_helpers import make_venv

    return make_venv(tmp_path / "venv")
