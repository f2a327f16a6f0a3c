"""The activation fold in torch ops, for eager torch (issue 18, lever 2).

Imported only on the torch backend (`accumulator.fold_for` imports it lazily), so the
package imports without torch under TensorFlow and JAX. It returns the vector of
`accumulator.fold` (`tests/stats/test_native_fold.py` checks it), calling torch directly:
each `keras.ops` call on torch converts and checks its arguments in Python, which on an
eager step costs as much as the kernel for a few hundred thousand values. Here:

- on a CPU tensor whose values are all finite (its sum is finite; the usual case), one
  branch with no finite mask: each unit's extremes for the tensor's extremes and each
  unit's largest magnitude, one subtraction squared in place for the moments, one
  bucketize (`clamp_`, `floor_` in place) and one `bincount` for the histogram.
  Deciding the branch reads one scalar on the host, which on a CPU tensor is not a
  device synchronization;
- otherwise (NaN or Inf, an overflowing sum, or a GPU tensor, where reading the scalar
  would stall the stream) the masked fold, as `accumulator.fold` computes it.

The two branches do the same arithmetic on finite values, so they agree bit for bit.
Not used under `torch.compile` (`jit_compile=True`), which compiles `accumulator.fold`.
"""

from __future__ import annotations

from typing import Any

import torch

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


def fold(state: Any, x: Any, layout: Layout) -> Any:
    """`accumulator.fold(state, x, layout)`, computed with torch kernels."""
    with torch.no_grad():
        values = x.detach().to(torch.float32)
        if layout.max_rows is not None and values.dim() > 0:
            values = values[: layout.max_rows]
        flat = values.reshape(-1)
        total = flat.sum()
        finite = flat.device.type == "cpu" and bool(torch.isfinite(total))
        units = _units_view(values, layout) if layout.units else None
        start = HEAD + layout.bins + 2
        if finite:
            # Each unit's extremes give the tensor's and each unit's largest |value|.
            extremes = None if units is None else _unit_extremes(units)
            head, counts = _finite(state, flat, total, layout, extremes)
            if extremes is not None:
                peaks, spread = torch.maximum(extremes[1], -extremes[0]), _spread(units)
        else:
            head, counts = _masked(state, flat, layout)
            if units is not None:
                magnitude = torch.where(torch.isfinite(units), units.abs(), 1.0)
                peaks, spread = magnitude.amax(dim=0), _spread(units)
        parts = [head, state[HEAD:start] + counts]
        if units is not None:
            fired = start + layout.units
            parts.append(torch.maximum(state[start:fired], peaks))
            parts.append(torch.maximum(state[fired:], spread.reshape(1)))
        return torch.cat(parts)


def _unit_extremes(units: Any) -> tuple[Any, Any]:
    """Each unit's smallest and largest value (`amin`/`amax` over the rows).

    torch reduces over the rows slowly when there are few units (a stride of 16 floats:
    about 10x a contiguous reduction): those are transposed to contiguous rows first.
    (`torch.aminmax` with `dim` is slower than the two reductions.)
    """
    if units.shape[1] < 32:
        units = units.t().contiguous()
        return units.amin(dim=1), units.amax(dim=1)
    return units.amin(dim=0), units.amax(dim=0)


def _spread(units: Any) -> Any:
    """`accumulator.unit_spread`: the largest finite `|u_j - u_0|`."""
    gaps = (units - units[:, :1]).abs_()
    spread = gaps.amax()
    if units.device.type == "cpu" and bool(torch.isfinite(spread)):  # a gap can overflow
        return spread
    return torch.where(torch.isfinite(gaps), gaps, 0.0).amax()


def _finite(
    state: Any, flat: Any, total: Any, layout: Layout, extremes: Any = None
) -> tuple[Any, Any]:
    """The head and histogram of a tensor whose values are all finite (`total`: their sum;
    `extremes`: each unit's smallest and largest values, if computed)."""
    n0, mean0, m2_0 = state[COUNT], state[MEAN], state[M2]
    n1 = flat.new_tensor(float(flat.numel()))
    mean1 = total / torch.clamp(n1, min=1.0)
    m2_1 = (flat - mean1).square_().sum()
    if extremes is None:
        low, high = torch.aminmax(flat)
    else:
        low, high = extremes[0].amin(), extremes[1].amax()
    zeros = (flat == 0.0).sum(dtype=torch.float32)
    saturated = _saturated(flat, layout)
    n = n0 + n1
    delta = mean1 - mean0
    share = n1 / torch.clamp(n, min=1.0)
    head = torch.stack(
        [
            n,
            mean0 + delta * share,
            m2_0 + m2_1 + delta.square() * n0 * share,
            torch.minimum(state[MIN], low),
            torch.maximum(state[MAX], high),
            state[ZEROS] + zeros,
            state[SATURATED] + saturated,
            state[NAN],
            state[INF],
            state[BATCHES] + 1.0,
            state[NONFINITE_CALLS],
        ]
    )
    bins = layout.bins
    scaled = (flat - layout.low).mul_(bins / (layout.high - layout.low))
    index = scaled.clamp_(-1.0, float(bins)).floor_().add_(1.0).to(torch.int64)
    counts = torch.bincount(index, minlength=bins + 2).to(torch.float32)
    return head, counts


def _masked(state: Any, flat: Any, layout: Layout) -> tuple[Any, Any]:
    """The head and histogram of any tensor (NaN and Inf counted, kept out of the moments)."""
    finite = torch.isfinite(flat)
    mask = finite.to(torch.float32)
    safe = torch.where(finite, flat, 0.0)
    n0, mean0, m2_0 = state[COUNT], state[MEAN], state[M2]
    n1 = mask.sum()
    mean1 = safe.sum() / torch.clamp(n1, min=1.0)
    m2_1 = (mask * (safe - mean1).square_()).sum()
    n = n0 + n1
    delta = mean1 - mean0
    share = n1 / torch.clamp(n, min=1.0)
    nonfinite = float(flat.numel()) - n1
    bins = layout.bins
    scaled = (flat - layout.low).mul_(bins / (layout.high - layout.low))
    clipped = torch.where(torch.isnan(flat), bins + 1.0, scaled.clamp_(-1.0, float(bins)))
    index = clipped.floor_().add_(1.0).to(torch.int64)
    counts = torch.bincount(index, minlength=bins + 3).to(torch.float32)
    nan_count = counts[-1]
    saturated = _saturated(safe, layout)
    if layout.saturation is not None and _zero_saturates(layout):
        saturated = saturated - nonfinite
    head = torch.stack(
        [
            n,
            mean0 + delta * share,
            m2_0 + m2_1 + delta.square() * n0 * share,
            torch.minimum(state[MIN], torch.where(finite, flat, _BIG).amin()),
            torch.maximum(state[MAX], torch.where(finite, flat, -_BIG).amax()),
            state[ZEROS] + (flat == 0.0).sum(dtype=torch.float32),
            state[SATURATED] + saturated,
            state[NAN] + nan_count,
            state[INF] + nonfinite - nan_count,
            state[BATCHES] + 1.0,
            state[NONFINITE_CALLS] + (nonfinite > 0).to(torch.float32),
        ]
    )
    return head, counts[:-1]


def _saturated(values: Any, layout: Layout) -> Any:
    if layout.saturation is None:
        return values.new_zeros(())  # on the activation's device
    low, high = layout.saturation
    margin = (1.0 - layout.saturation_threshold) * (high - low) / 2.0
    hit = (values <= low + margin).logical_or_(values >= high - margin)
    return hit.sum(dtype=torch.float32)


def _zero_saturates(layout: Layout) -> bool:
    """Whether 0 lies within the saturation margin (then masked-out zeros are taken back)."""
    import numpy as np

    assert layout.saturation is not None
    low, high = layout.saturation
    margin = (1.0 - layout.saturation_threshold) * (high - low) / 2.0
    return bool(np.float32(low + margin) >= 0.0 or np.float32(high - margin) <= 0.0)


def _units_view(values: Any, layout: Layout) -> Any:
    """`values` as `(rows, units)`, as `accumulator._units_view`."""
    if layout.unit_axis not in (-1, values.dim() - 1):
        values = torch.movedim(values, layout.unit_axis, -1)
    return values.reshape(-1, layout.units)
