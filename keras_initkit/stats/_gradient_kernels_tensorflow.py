"""Three kernels of the gradient fold in TensorFlow ops, for TensorFlow's graph mode.

Imported only on the TensorFlow backend when the step is not compiled by XLA
(`gradients.fold(..., bincount=True)` imports it lazily), so the package imports without
TensorFlow under JAX and torch. In graph mode every op is its own kernel and one pass
over the tensor; each function here does in one kernel what `keras.ops` does in two,
with the same result:

- `sum_of_squares`: `tf.nn.l2_loss` (one fused square-and-sum pass, `sum(x**2) / 2`)
  times 2, instead of `square` then `sum`; the halving and doubling are exact;
- `clip`: the `ClipByValue` kernel, instead of `minimum` then `maximum`;
- `count`: the `DenseBincount` kernel with its size given, instead of
  `tf.math.bincount`, which first takes the maximum of the indices to size its output.

`tests/stats/test_gradient_stats.py` checks the fold with these kernels gives the vector
of the `keras.ops` fold.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf


def sum_of_squares(x: Any) -> Any:
    """`sum(x ** 2)` of a float32 tensor, in one pass."""
    return tf.nn.l2_loss(x) * 2.0


def clip(x: Any, low: float, high: float) -> Any:
    """`x` clipped to `[low, high]` (float32), in one pass."""
    return tf.raw_ops.ClipByValue(t=x, clip_value_min=low, clip_value_max=high)


def count(index: Any, length: int) -> Any:
    """How many of `index` (int32, in `0..length-1`) equal each of `0..length-1` (float32)."""
    empty = tf.constant([], tf.int32)
    counts = tf.raw_ops.DenseBincount(input=index, size=length, weights=empty)
    return tf.cast(tf.reshape(counts, (length,)), tf.float32)
