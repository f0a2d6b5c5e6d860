import numpy as np
import pytest

from keras_mt3.data.mixture import mixture_rates
from keras_mt3.errors import KerasMT3Error

pytestmark = pytest.mark.backend_independent


def test_rates_follow_size_to_the_power_0_3():
    rates = mixture_rates({"big": 1000, "small": 10})
    assert sum(rates.values()) == pytest.approx(1.0)
    assert rates["big"] / rates["small"] == pytest.approx(100**0.3)


def test_temperature_one_is_proportional_and_a_huge_one_is_uniform():
    np.testing.assert_allclose(mixture_rates([1, 3], temperature=1.0), [0.25, 0.75])
    np.testing.assert_allclose(mixture_rates([1, 1000], temperature=1e9), [0.5, 0.5], atol=1e-6)


@pytest.mark.parametrize("sizes", [[], [0, 0], [-1, 2], [float("nan"), 1]])
def test_bad_sizes_are_rejected(sizes):
    with pytest.raises(KerasMT3Error):
        mixture_rates(sizes)
