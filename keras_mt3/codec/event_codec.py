"""Events and the codec that numbers them.

A codec is an ordered list of event ranges. Each range gets a contiguous block of integer
"codec indices"; the time-shift range always comes first, so shift(k) has index k.
"""

import bisect
import dataclasses

from keras_mt3.errors import KerasMT3Error

SHIFT = "shift"


@dataclasses.dataclass(frozen=True)
class EventRange:
    """An event type and its inclusive range of values."""

    type: str
    min_value: int
    max_value: int

    @property
    def size(self):
        return self.max_value - self.min_value + 1


@dataclasses.dataclass(frozen=True)
class Event:
    type: str
    value: int


class Codec:
    """Maps `Event`s to codec indices and back.

    Args:
        max_shift_steps: largest single time shift, in steps.
        steps_per_second: time resolution of shifts.
        event_ranges: the non-shift event ranges, in index order.
    """

    def __init__(self, max_shift_steps, steps_per_second, event_ranges):
        self.max_shift_steps = int(max_shift_steps)
        self.steps_per_second = int(steps_per_second)
        self.event_ranges = (EventRange(SHIFT, 0, self.max_shift_steps),) + tuple(event_ranges)
        types = [event_range.type for event_range in self.event_ranges]
        if len(set(types)) != len(types):
            raise KerasMT3Error(f"event types must be unique, got {types}")
        self._first_indices = []
        self._ranges_by_type = {}
        next_index = 0
        for event_range in self.event_ranges:
            self._first_indices.append(next_index)
            self._ranges_by_type[event_range.type] = (next_index, event_range)
            next_index += event_range.size
        self.num_classes = next_index

    def encode_event(self, event):
        """Codec index of `event`; raises `KerasMT3Error` for an unknown type or value."""
        if event.type not in self._ranges_by_type:
            raise KerasMT3Error(
                f"unknown event type {event.type!r}; this codec knows "
                f"{[event_range.type for event_range in self.event_ranges]}"
            )
        first_index, event_range = self._ranges_by_type[event.type]
        if not event_range.min_value <= event.value <= event_range.max_value:
            raise KerasMT3Error(
                f"{event.type} value {event.value} is outside "
                f"[{event_range.min_value}, {event_range.max_value}]"
            )
        return first_index + event.value - event_range.min_value

    def event_type_range(self, event_type):
        """Inclusive `(first_index, last_index)` of the codec indices of `event_type`."""
        if event_type not in self._ranges_by_type:
            raise KerasMT3Error(f"unknown event type {event_type!r}")
        first_index, event_range = self._ranges_by_type[event_type]
        return first_index, first_index + event_range.size - 1

    def is_valid_index(self, index):
        return 0 <= index < self.num_classes

    def decode_event_index(self, index):
        """The `Event` numbered `index`; raises `KerasMT3Error` outside `[0, num_classes)`."""
        if not self.is_valid_index(index):
            raise KerasMT3Error(f"codec index {index} is outside [0, {self.num_classes})")
        position = bisect.bisect_right(self._first_indices, index) - 1
        event_range = self.event_ranges[position]
        offset = index - self._first_indices[position]
        return Event(event_range.type, event_range.min_value + offset)

    def is_shift_event_index(self, index):
        return 0 <= index <= self.max_shift_steps
