"""Counts of matched items, from which precision, recall and F1 follow."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class MatchCounts:
    """How many estimated and reference items (notes or piano-roll cells) there are and match.

    mir_eval's precision is `matched / estimated` and its recall `matched / reference`, so counts
    carry everything a score needs; adding counts is MT3's micro-average over instrument tracks.
    A score whose denominator is zero is 0.0 (nothing estimated, or nothing to find).
    """

    matched: int = 0
    estimated: int = 0
    reference: int = 0

    def __add__(self, other):
        return MatchCounts(
            self.matched + other.matched,
            self.estimated + other.estimated,
            self.reference + other.reference,
        )

    @property
    def precision(self):
        return self.matched / self.estimated if self.estimated else 0.0

    @property
    def recall(self):
        return self.matched / self.reference if self.reference else 0.0

    @property
    def f1(self):
        precision, recall = self.precision, self.recall
        if precision + recall == 0:
            return 0.0
        return 2 * precision * recall / (precision + recall)

    def scores(self, prefix):
        """`{prefix}_precision`, `{prefix}_recall` and `{prefix}_f1` as floats."""
        return {
            f"{prefix}_precision": float(self.precision),
            f"{prefix}_recall": float(self.recall),
            f"{prefix}_f1": float(self.f1),
        }
