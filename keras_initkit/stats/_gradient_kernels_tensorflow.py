"""The sums of squares of the gradient fold in one TensorFlow kernel each, for graph mode.

Imported only on the TensorFlow backend when the step is not compiled by XLA
(`gradients.fold(..., bincount=True)` imports it lazily), so the package imports without
TensorFlow under JAX and torch. In graph mode every op is its own kernel and one pass over
the tensor: `keras.ops.sum(keras.ops.square(x))` writes the squares and reads them back,
while `tf.nn.l2_loss` squares and sums in one pass (`sum(x ** 2) / 2`; the halving and
doubling are exact). `tests/stats/test_gradient_stats.py` checks that the fold with it gives
the vector of the `keras.ops` fold bit for bit.

Measured and left out (slower inside the fold's graph than the `keras.ops` forms, though
faster alone): the `ClipByValue` kernel for the histogram's clip, and `DenseBincount` sized
directly instead of `tf.math.bincount`.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf


def sum_of_squares(x: Any) -> Any:
    """`sum(x ** 2)` of a float32 tensor, in one pass."""
    return tf.nn.l2_loss(x) * 2.0
