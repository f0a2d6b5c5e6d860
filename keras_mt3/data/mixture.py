"""Temperature-weighted dataset mixtures: dataset i is drawn with probability ∝ n_i ** (1 / T).

MT3 trains on six datasets at once with T = 10/3 (exponent 0.3), which shifts the mixture from
the big datasets (Slakh, MAESTRO) towards the small ones (GuitarSet, URMP) without letting the
small ones dominate. T = 1 samples in proportion to size; T -> infinity samples uniformly.
"""

import numpy as np

from keras_mt3.errors import KerasMT3Error

MT3_MIXING_TEMPERATURE = 10.0 / 3.0


def mixture_rates(sizes, temperature=MT3_MIXING_TEMPERATURE):
    """Sampling probabilities (float64, summing to 1) for datasets of the given sizes.

    `sizes` is a sequence or a `{name: size}` dict (then a dict with the same keys is returned).
    Sizes are what the datasets are measured in, e.g. number of examples or hours of audio.
    """
    names = list(sizes) if isinstance(sizes, dict) else None
    values = np.asarray(list(sizes.values()) if names is not None else sizes, np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise KerasMT3Error("mixture_rates needs the size of at least one dataset")
    if np.any(values < 0) or not np.all(np.isfinite(values)) or not np.any(values > 0):
        raise KerasMT3Error(
            f"dataset sizes must be finite, >= 0 and not all 0; got {values.tolist()}"
        )
    if not temperature > 0:
        raise KerasMT3Error(f"the mixing temperature must be positive, got {temperature}")
    weights = values ** (1.0 / temperature)
    rates = weights / weights.sum()
    return dict(zip(names, rates.tolist())) if names is not None else rates
