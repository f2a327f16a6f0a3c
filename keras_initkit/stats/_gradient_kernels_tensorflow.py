"""The sums of squares and the histogram count of the gradient fold in one TensorFlow
kernel each, for graph mode.

Imported only on the TensorFlow backend when the step is not compiled by XLA
(`gradients.fold(..., bincount=True)` imports it lazily), so the package imports without
TensorFlow under JAX and torch. In graph mode every op is its own kernel and one pass over
the tensor: `keras.ops.sum(keras.ops.square(x))` writes the squares and reads them back,
while `tf.nn.l2_loss` squares and sums in one pass (`sum(x ** 2 / 2)`, doubled after).
The halving is exact except where a square is so small that half of it underflows
(TensorFlow flushes subnormal floats to zero: squares below 2**-125, |x| below about
1.5e-19); so when the sum is below `n * 2**-100` (a root mean square below about 1e-15,
where such squares could matter) the `keras.ops` form is taken instead. Both cases are
checked in `tests/stats/test_gradient_stats.py`: the fold gives the vector of the
`keras.ops` fold bit for bit.

The histogram of a finite gradient is one `histogram_fixed_width` of the floored positions
(`histogram_of_floor`): the index, clip and count in one kernel. With the position as one
natural logarithm, product and difference (`gradients._position`) the fold of the
2.5M-parameter MLP's gradients took 11.3 ms of CPU instead of 12.3 (one thread, loaded).

Measured and left out (slower inside the fold's graph than the `keras.ops` forms, though
faster alone): the `ClipByValue` kernel for the histogram's clip, and `DenseBincount` sized
directly instead of `tf.math.bincount`.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf


def sum_of_squares(x: Any) -> Any:
    """`sum(x ** 2)` of a float32 tensor, in one pass unless it is tiny (see above)."""
    fast = tf.nn.l2_loss(x) * 2.0
    size = x.shape.num_elements()
    floor = (tf.cast(tf.size(x), tf.float32) if size is None else float(size)) * 2.0**-100
    return tf.cond(fast >= floor, lambda: fast, lambda: tf.reduce_sum(tf.square(x)))


def histogram_of_floor(floored: Any, bins: int) -> Any:
    """The `bins + 2` counts of `floor(position)` (`[under, bins..., over]`, float32).

    One `histogram_fixed_width` over unit-wide bins from -1 to `bins + 1`: it clamps values
    below -1 (and -inf, from exact zeros) into the first bin and values from `bins` on into
    the last, exactly the reference's `floor(clip(position, -1, bins)) + 1` counted, in one
    kernel instead of a clip, an addition, a cast and a count. Finite positions only (or
    -inf): NaN takes the reference's masked count.
    """
    counts = tf.histogram_fixed_width(floored, [-1.0, bins + 1.0], nbins=bins + 2)
    return tf.cast(counts, tf.float32)
