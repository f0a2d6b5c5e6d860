import pytest

from keras_mt3.codec.event_codec import Codec, Event, EventRange
from keras_mt3.errors import KerasMT3Error

pytestmark = pytest.mark.backend_independent


@pytest.fixture
def codec():
    return Codec(
        max_shift_steps=10,
        steps_per_second=100,
        event_ranges=[EventRange("pitch", 21, 23), EventRange("tie", 0, 0)],
    )


def test_shifts_come_first_then_ranges_in_order(codec):
    assert codec.num_classes == 11 + 3 + 1
    assert codec.event_type_range("shift") == (0, 10)
    assert codec.event_type_range("pitch") == (11, 13)
    assert codec.event_type_range("tie") == (14, 14)
    assert codec.encode_event(Event("shift", 7)) == 7
    assert codec.encode_event(Event("pitch", 22)) == 12  # offset 11 + (22 - 21)


def test_every_index_decodes_and_encodes_back(codec):
    for index in range(codec.num_classes):
        assert codec.encode_event(codec.decode_event_index(index)) == index


def test_is_shift_event_index(codec):
    assert [codec.is_shift_event_index(i) for i in (-1, 0, 10, 11)] == [False, True, True, False]


@pytest.mark.parametrize("event", [Event("pitch", 20), Event("pitch", 24), Event("drum", 1)])
def test_unencodable_events_raise(codec, event):
    with pytest.raises(KerasMT3Error):
        codec.encode_event(event)


@pytest.mark.parametrize("index", [-1, 15, 10**12])
def test_out_of_range_indices_raise_on_decode(codec, index):
    assert not codec.is_valid_index(index)
    with pytest.raises(KerasMT3Error):
        codec.decode_event_index(index)


def test_duplicate_event_types_are_rejected():
    with pytest.raises(KerasMT3Error, match="unique"):
        Codec(10, 100, [EventRange("shift", 0, 1)])
