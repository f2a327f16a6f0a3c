"""The activation fold in JAX ops, for JAX's compiled training step (issue 18, lever 2).

Imported only on the JAX backend (`accumulator.fold_for` imports it lazily), so the
package imports without JAX under TensorFlow and torch. It returns the vector of
`accumulator.fold` (`tests/stats/test_native_fold.py` checks it). XLA fuses the
`keras.ops` fold's elementwise work, but not its many reductions into one loop, and every
one of them reads through a finite mask and a `where`. Here a batch whose values are all
finite (its sum is finite; the usual case) takes a `lax.cond` branch with no mask:

- each unit's extremes give the tensor's extremes and each unit's largest magnitude,
  and each row's extremes the unit spread (rounding is monotonic, so a row's largest
  `u_j - u_0` is its largest `u_j` minus `u_0`, exactly);
- the histogram has no NaN bin to fill.

A batch with NaN or Inf (or whose sum overflows) takes `accumulator.fold_views` itself.
On finite values the two branches do the same arithmetic, so they agree bit for bit.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from keras_initkit.stats import accumulator
from keras_initkit.stats.accumulator import (
    BATCHES,
    COUNT,
    HEAD,
    INF,
    M2,
    MAX,
    MEAN,
    MIN,
    NAN,
    NONFINITE_CALLS,
    SATURATED,
    ZEROS,
    Layout,
)


def fold(state: Any, x: Any, layout: Layout) -> Any:
    """`accumulator.fold(state, x, layout)`, computed with JAX kernels."""
    flat, units = accumulator.views(x, layout)
    total = jnp.sum(flat)
    return jax.lax.cond(
        jnp.isfinite(total),
        lambda: _finite_fold(state, flat, units, total, layout),
        lambda: accumulator.fold_views(state, flat, units, layout),
    )


def _finite_fold(state: Any, flat: Any, units: Any, total: Any, layout: Layout) -> Any:
    """The fold of a tensor whose values are all finite (`total` is their sum)."""
    n0, mean0, m2_0 = state[COUNT], state[MEAN], state[M2]
    n1 = jnp.float32(flat.size)
    mean1 = total / jnp.maximum(n1, 1.0)
    m2_1 = jnp.sum(jnp.square(flat - mean1))
    n = n0 + n1
    delta = mean1 - mean0
    share = n1 / jnp.maximum(n, 1.0)
    zero = jnp.zeros((), jnp.float32)
    if units is None:
        low, high = jnp.min(flat), jnp.max(flat)
    else:
        unit_low, unit_high = jnp.min(units, axis=0), jnp.max(units, axis=0)
        low, high = jnp.min(unit_low), jnp.max(unit_high)
    head = jnp.stack(
        [
            n,
            mean0 + delta * share,
            m2_0 + m2_1 + jnp.square(delta) * n0 * share,
            jnp.minimum(state[MIN], low),
            jnp.maximum(state[MAX], high),
            state[ZEROS] + jnp.sum((flat == 0.0).astype(jnp.float32)),
            state[SATURATED] + _saturated(flat, layout),
            state[NAN] + zero,
            state[INF] + zero,
            state[BATCHES] + 1.0,
            state[NONFINITE_CALLS] + zero,
        ]
    )
    start = HEAD + layout.bins + 2
    parts = [head, state[HEAD:start] + _histogram(flat, layout)]
    if units is not None:  # [..., fired (one per unit), spread (the last slot)]
        parts.append(jnp.maximum(state[start:-1], jnp.maximum(unit_high, -unit_low)))
        parts.append(jnp.maximum(state[-1:], jnp.reshape(_spread(units), (1,))))
    return jnp.concatenate(parts)


def _spread(units: Any) -> Any:
    """`accumulator.unit_spread` of finite units: the largest finite `|u_j - u_0|`."""
    first = units[:, 0]
    gaps = jnp.maximum(jnp.max(units, axis=1) - first, first - jnp.min(units, axis=1))
    spread = jnp.max(gaps)
    return jax.lax.cond(  # a gap between finite values can overflow: the finite gaps only
        jnp.isfinite(spread),
        lambda: spread,
        lambda: accumulator.unit_spread(units)[0],
    )


def _histogram(flat: Any, layout: Layout) -> Any:
    """The `bins + 2` counts `[under, bins..., over]` of finite values."""
    bins = layout.bins
    scaled = (flat - layout.low) * np.float32(bins / (layout.high - layout.low))
    index = (jnp.floor(jnp.clip(scaled, -1.0, float(bins))) + 1.0).astype(jnp.int32)
    ones = jnp.ones(index.shape, jnp.int32)
    counts = jax.ops.segment_sum(ones, index, num_segments=bins + 2)
    return counts.astype(jnp.float32)


def _saturated(flat: Any, layout: Layout) -> Any:
    if layout.saturation is None:
        return jnp.zeros((), jnp.float32)
    low, high = layout.saturation
    margin = (1.0 - layout.saturation_threshold) * (high - low) / 2.0
    hit = jnp.logical_or(flat <= np.float32(low + margin), flat >= np.float32(high - margin))
    return jnp.sum(hit.astype(jnp.float32))
