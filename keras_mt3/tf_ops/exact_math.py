"""Float64 arithmetic that stays bit-identical to Python/NumPy inside optimized TF graphs.

Not a twin itself: the twins of this package (`segments`, `detokenize`) compute times with it.
"""

import tensorflow as tf


def exact_divide(numerator: tf.Tensor, denominator: float) -> tf.Tensor:
    """`numerator / denominator` (a nonzero Python number), correctly rounded like NumPy.

    Grappler's constant folding rewrites a division by a constant into a multiplication by its
    reciprocal, which is off by one ulp for many values (83 * 0.01 != 83 / 100). `DivNoNan` is
    not rewritten, and for a nonzero denominator it is exactly the IEEE division.
    """
    return tf.math.divide_no_nan(numerator, tf.constant(denominator, numerator.dtype))
