import pytest

from keras_mt3.metrics import MatchCounts

pytestmark = pytest.mark.backend_independent


def test_scores_follow_from_counts():
    counts = MatchCounts(matched=3, estimated=4, reference=6)
    assert counts.precision == 0.75
    assert counts.recall == 0.5
    assert counts.f1 == pytest.approx(2 * 0.75 * 0.5 / 1.25)
    assert counts.scores("onset") == {
        "onset_precision": 0.75,
        "onset_recall": 0.5,
        "onset_f1": pytest.approx(0.6),
    }


@pytest.mark.parametrize(
    "counts", [MatchCounts(), MatchCounts(0, 5, 0), MatchCounts(0, 0, 5), MatchCounts(0, 5, 5)]
)
def test_zero_denominators_and_no_matches_score_zero(counts):
    assert (counts.precision, counts.recall, counts.f1) == (0.0, 0.0, 0.0)


def test_adding_counts_is_a_micro_average():
    piano, drums = MatchCounts(8, 10, 16), MatchCounts(1, 10, 4)
    total = piano + drums
    assert total == MatchCounts(9, 20, 20)
    weighted_precision = (piano.precision * 10 + drums.precision * 10) / 20
    weighted_recall = (piano.recall * 16 + drums.recall * 4) / 20
    assert total.precision == pytest.approx(weighted_precision)
    assert total.recall == pytest.approx(weighted_recall)
