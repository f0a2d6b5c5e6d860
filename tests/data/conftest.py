import pytest
from data_helpers import note_sequence


@pytest.fixture(scope="session")
def make_sequence():
    return note_sequence
