"""Fixtures of the command tests that need no checkpoint: a stand-in for the model."""

import pytest
from cli_support import StandInTranscriber

from keras_mt3.cli import common


@pytest.fixture
def stand_in_model(monkeypatch):
    """The model `load_transcriber` returns; `.loads` counts how often it was loaded."""
    model = StandInTranscriber()
    model.loads = 0

    def load(args):
        model.loads += 1
        return model

    monkeypatch.setattr(common, "load_transcriber", load)
    return model


@pytest.fixture
def no_model_load(monkeypatch):
    """Fails the test if the command loads a model."""

    def load(args):
        pytest.fail("the command loaded the model although it should have stopped before")

    monkeypatch.setattr(common, "load_transcriber", load)
