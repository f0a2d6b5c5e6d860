import pytest
from helpers import note_sequence


@pytest.fixture(scope="session")
def make_sequence():
    return note_sequence
