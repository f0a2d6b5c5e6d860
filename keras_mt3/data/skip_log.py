"""Counting and logging the training pairs that had to be skipped, so long runs never crash."""

import collections
import logging
import threading

LOGGER = logging.getLogger("keras_mt3.data")


class SkipLog:
    """Thread-safe record of skipped pairs: one warning per pair, counts per reason.

    The data pipeline loads pairs from several threads; each unusable pair is reported once
    (with its reason and details) and never retried.
    """

    def __init__(self, logger=LOGGER):
        self._logger = logger
        self._lock = threading.Lock()
        self._reasons = {}  # pair name -> reason
        self._details = {}  # pair name -> details

    def record(self, name, reason, details=""):
        """Notes that pair `name` is skipped; returns False if it was already recorded."""
        with self._lock:
            if name in self._reasons:
                return False
            self._reasons[name] = reason
            self._details[name] = details
        self._logger.warning("skipping %s: %s%s", name, reason, f" ({details})" if details else "")
        return True

    def __contains__(self, name):
        with self._lock:
            return name in self._reasons

    def __len__(self):
        with self._lock:
            return len(self._reasons)

    def counts(self):
        """`{reason: number of pairs}`, most frequent first."""
        with self._lock:
            return dict(collections.Counter(self._reasons.values()).most_common())

    def skipped(self):
        """`{pair name: (reason, details)}` of every skipped pair."""
        with self._lock:
            return {name: (reason, self._details[name]) for name, reason in self._reasons.items()}

    def summary(self):
        counts = self.counts()
        if not counts:
            return "no pairs skipped"
        parts = ", ".join(f"{count} {reason}" for reason, count in counts.items())
        return f"{len(self)} pairs skipped: {parts}"
