"""The in-step fold as it was before issue 18: about 45 elementwise passes per layer,
per-statistic masks and a segment-sum histogram.

Kept verbatim as the reference that `keras_initkit.stats.accumulator.fold` must equal
(`tests/stats/test_fold_reference.py`) and as the "before" configuration of
`stats_overhead.py` (`every batch (first fold)`), measured in the same rounds as the
current fold.
"""

from keras import ops

from keras_initkit.stats.accumulator import (
    _BIG,
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


def reference_fold(state, x, layout: Layout):
    """The fold as it was before issue 18 (about 45 elementwise passes): the reference."""
    x = ops.cast(ops.stop_gradient(x), "float32")
    if layout.max_rows is not None and len(x.shape) > 0:
        x = x[: layout.max_rows]
    units_view = None
    if layout.units:
        moved = x if layout.unit_axis in (-1, len(x.shape) - 1) else ops.moveaxis(
            x, layout.unit_axis, -1
        )
        units_view = ops.reshape(moved, (-1, layout.units))
    x = ops.reshape(x, (-1,))
    finite = ops.isfinite(x)
    is_nan = ops.isnan(x)
    mask = ops.cast(finite, "float32")
    safe = ops.where(finite, x, ops.zeros_like(x))

    n0, mean0, m2_0 = state[COUNT], state[MEAN], state[M2]
    n1 = ops.sum(mask)
    mean1 = ops.sum(safe) / ops.maximum(n1, 1.0)
    m2_1 = ops.sum(mask * ops.square(safe - mean1))
    n = n0 + n1
    delta = mean1 - mean0
    share = n1 / ops.maximum(n, 1.0)
    nan_count = ops.sum(ops.cast(is_nan, "float32"))
    total = ops.cast(ops.size(x), "float32")
    if layout.saturation is not None:
        low, high = layout.saturation
        margin = (1.0 - layout.saturation_threshold) * (high - low) / 2.0
        saturated = ops.logical_or(safe <= low + margin, safe >= high - margin)
        saturated_count = ops.sum(mask * ops.cast(saturated, "float32"))
    else:
        saturated_count = ops.zeros((), "float32")
    nonfinite = total - n1
    head = ops.stack(
        [
            n,
            mean0 + delta * share,
            m2_0 + m2_1 + ops.square(delta) * n0 * share,
            ops.minimum(state[MIN], ops.min(ops.where(finite, x, _BIG))),
            ops.maximum(state[MAX], ops.max(ops.where(finite, x, -_BIG))),
            state[ZEROS] + ops.sum(ops.cast(ops.equal(x, 0.0), "float32")),
            state[SATURATED] + saturated_count,
            state[NAN] + nan_count,
            state[INF] + nonfinite - nan_count,
            state[BATCHES] + 1.0,
            state[NONFINITE_CALLS] + ops.cast(nonfinite > 0, "float32"),
        ]
    )
    # Histogram: a clipped bin index and a segment sum (jittable everywhere, keeps
    # out-of-range values in the under/overflow bins); NaN goes to a dropped segment.
    bins = layout.bins
    scaled = (safe - layout.low) * (bins / (layout.high - layout.low))
    scaled = ops.where(ops.isinf(x), ops.sign(x) * (bins + 1.0), scaled)
    index = ops.floor(ops.clip(scaled, -1.0, float(bins))) + 1.0
    index = ops.cast(ops.where(is_nan, bins + 2.0, index), "int32")
    counts = ops.segment_sum(ops.ones_like(x), index, num_segments=bins + 3)[: bins + 2]
    start = HEAD + bins + 2
    parts = [head, state[HEAD:start] + counts]
    if units_view is not None:
        magnitude = ops.where(ops.isfinite(units_view), ops.abs(units_view), 1.0)
        parts.append(ops.maximum(state[start:], ops.max(magnitude, axis=0)))
    return ops.concatenate(parts)
