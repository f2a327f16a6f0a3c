"""The activation fold in TensorFlow ops, for TensorFlow's graph mode (issue 18, lever 2).

Imported only on the TensorFlow backend (`accumulator.fold_for` imports it lazily), so the
package imports without TensorFlow under JAX and torch. It returns the vector of
`accumulator.fold` (`tests/stats/test_native_fold.py` checks it) with fewer, cheaper
kernels; in graph mode every op is its own unfused kernel, one pass over the tensor each:

- a batch whose values are all finite (its sum is finite; the usual case) takes the
  finite branch `_fold_finite.finite_fold`, which needs no finite mask: no `where` (a slow
  kernel in TensorFlow: a select with broadcasting, costing about three elementwise
  passes) and no mask products;
- each unit's extremes give the tensor's extremes and the units' largest magnitudes,
  and each row's extremes the unit spread (two reductions, not five passes);
- that branch's costly pieces are TensorFlow kernels (`KERNELS`): the histogram is one
  `histogram_fixed_width` of the floored, scaled values (an index and a count in one
  kernel) instead of a clip, a cast and a segment sum of ones; the squared deviations
  one `squared_difference`; a symmetric saturation margin one test of `|x|`.

A batch with NaN or Inf (or whose sum overflows) takes `accumulator.fold` itself. On
finite values the two branches do the same arithmetic, so they agree bit for bit.

The fold is traced once per activation kind, not once per layer: it works on the tensor's
flat and `(rows, units)` views (`accumulator.views`), whose shapes the `tf.function`
leaves unknown, and the graph optimizer keeps it as one function called by each layer
(`_noinline`) instead of inlining a copy per layer. That took DenseNet121's first `fit`
from 5.4x plain `fit`'s CPU time to 1.6x (`benchmarks/trace_cost.py`).

It is not used when the training step itself is compiled by XLA (`jit_compile=True`):
there XLA fuses `accumulator.fold` already, and `bincount` cannot be compiled.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tensorflow as tf

from keras_initkit.stats import _fold_finite, accumulator
from keras_initkit.stats.accumulator import Layout


def fold(state: Any, x: Any, layout: Layout) -> Any:
    """`accumulator.fold(state, x, layout)`, computed with TensorFlow kernels."""
    flat, units = accumulator.views(x, layout)
    key = _shape_free(layout)
    function = TRACED.get(key)
    if function is None:
        function = TRACED[key] = _traced(key)
    return function(state, flat) if units is None else function(state, flat, units)


def _shape_free(layout: Layout) -> Layout:
    """`layout` without what only shapes the views: the key of one traced fold."""
    return dataclasses.replace(layout, units=min(layout.units, 1), unit_axis=-1, max_rows=None)


TRACED: dict[Layout, Any] = {}  # shape-free layout -> its traced fold, for every model


def _traced(layout: Layout) -> Any:
    """The fold on a tensor's views, as one `tf.function` for every shape.

    A training step calls it once per watched layer; traced once per distinct `layout`
    (the histogram range and saturation bounds of an activation kind), it puts one call
    op in the step's graph instead of the fold's hundred-odd ops (half of them for the
    non-finite fallback). A model with 120 watched layers traced for minutes before.
    """
    signature = [tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.float32)]
    if layout.units:
        signature.append(tf.TensorSpec([None, None], tf.float32))

    def fold_views(state: Any, flat: Any, units: Any = None) -> Any:
        total = tf.reduce_sum(flat)
        return tf.cond(
            tf.math.is_finite(total),
            lambda: _fold_finite.finite_fold(state, flat, units, total, layout, KERNELS),
            lambda: accumulator.fold_views(state, flat, units, layout),
        )

    return tf.function(
        fold_views, input_signature=signature, autograph=False,
        experimental_attributes={"_noinline": True},
    )


def _spread(units: Any) -> Any:
    """`accumulator.unit_spread` of finite units: the largest finite `|u_j - u_0|`.

    From each row's extremes: rounding is monotonic, so the largest `u_j - u_0` of a row
    is its largest `u_j` minus `u_0`, exactly (two reductions instead of three passes).
    """
    first = units[:, 0]
    gaps = tf.maximum(tf.reduce_max(units, axis=1) - first, first - tf.reduce_min(units, axis=1))
    spread = tf.reduce_max(gaps)
    return tf.cond(  # a gap between finite values can overflow: the finite gaps only
        tf.math.is_finite(spread),
        lambda: spread,
        lambda: _finite_spread(units),
    )


def _finite_spread(units: Any) -> Any:
    gaps = tf.abs(units - units[:, :1])
    return tf.reduce_max(tf.where(tf.math.is_finite(gaps), gaps, 0.0))


def _histogram(flat: Any, layout: Layout) -> Any:
    """The `bins + 2` counts `[under, bins..., over]` of finite values.

    The reference's index is `floor(clip(scaled, -1, bins)) + 1`, that is
    `clip(floor(scaled), -1, bins) + 1`. On the integers `floor(scaled)`,
    `histogram_fixed_width` with `bins + 2` unit-wide bins over `[-1, bins + 1]` computes
    exactly that (its shift by 1 and division by a step of 1.0 are exact there; it
    clamps before casting to int32), and counts it in the same kernel: one pass and a
    count instead of six passes and a `bincount`.
    """
    bins = layout.bins
    shifted = flat if layout.low == 0.0 else flat - layout.low  # x - 0.0 is x, bit for bit
    floors = tf.floor(shifted * (bins / (layout.high - layout.low)))
    counts = tf.histogram_fixed_width(floors, [-1.0, bins + 1.0], nbins=bins + 2)
    return tf.cast(counts, tf.float32)


def _saturated(flat: Any, layout: Layout) -> Any:
    if layout.saturation is None:
        return tf.zeros((), tf.float32)
    low, high = layout.saturation
    margin = (1.0 - layout.saturation_threshold) * (high - low) / 2.0
    below, above = np.float32(low + margin), np.float32(high - margin)
    if below == -above and above > 0:  # symmetric (tanh, softsign): one test of |x|
        hit = tf.abs(flat) >= above
    else:
        hit = tf.logical_or(flat <= below, flat >= above)
    return tf.reduce_sum(tf.cast(hit, tf.float32))


def _squared_deviations(flat: Any, mean: Any) -> Any:
    return tf.reduce_sum(tf.math.squared_difference(flat, mean))


# The finite branch's costly pieces in TensorFlow kernels (`_fold_finite.finite_fold`).
KERNELS = _fold_finite.FiniteKernels(_squared_deviations, _histogram, _saturated, _spread)
