"""The activation fold in torch ops, for eager torch (issue 18, lever 2).

Imported only on the torch backend (`accumulator.fold_for` imports it lazily), so the
package imports without torch under TensorFlow and JAX. It returns the vector of
`accumulator.fold` (`tests/stats/test_native_fold.py` checks it), calling torch directly:
each `keras.ops` call on torch converts and checks its arguments in Python, which on an
eager step costs as much as the kernel for a few hundred thousand values. Here:

- on a CPU tensor whose values are all finite (its sum is finite; the usual case), one
  branch with no finite mask and no bool tensor (a comparison writes 0/1 floats into a
  scratch buffer, which sum as the reference's cast mask does): each unit's extremes,
  which give the tensor's extremes and each unit's largest magnitude, then only the
  passes those extremes leave necessary (no zero count when no value can be zero, no
  saturation count when none can be saturated, no clamp or floor in the bucketize when
  no value is out of range or below it), and one `bincount` of int16 indices over four
  interleaved copies of the histogram. The head and the merges are computed on the host
  in float32, as are the decisions, which read a few scalars: on a CPU tensor, not a
  device synchronization;
- otherwise (NaN or Inf, an overflowing sum, or a GPU tensor, where reading a scalar
  would stall the stream) the masked fold, as `accumulator.fold` computes it.

The two branches do the same float32 arithmetic on finite values, so they agree bit for
bit. Not used under `torch.compile` (`jit_compile=True`), which compiles
`accumulator.fold`.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
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

# torch reduces over rows slowly when a row is short (16 floats: 5 ms for 800k values,
# 40x a sum): `_unit_extremes` reduces blocks of rows at least this many floats wide.
_BLOCK = 1024
# `bincount` adds one to a counter per value; runs of one bin (a ReLU's zeros) wait on
# the previous add. Four copies of the histogram, taken in turn, halve its time.
_COPIES = 4
_PATTERN = 256  # values per repetition of the copies' offsets (a multiple of _COPIES)


def fold(state: Any, x: Any, layout: Layout) -> Any:
    """`accumulator.fold(state, x, layout)`, computed with torch kernels."""
    with torch.no_grad():
        values = x.detach().to(torch.float32)
        if layout.max_rows is not None and values.dim() > 0:
            values = values[: layout.max_rows]
        flat = values.reshape(-1)
        total = flat.sum()
        units = _units_view(values, layout) if layout.units else None
        if flat.device.type == "cpu" and state.device.type == "cpu":
            total_value = total.item()
            if math.isfinite(total_value):
                return _finite(state, flat, units, total_value, layout)
        head, counts = _masked(state, flat, layout)
        start = HEAD + layout.bins + 2
        parts = [head, state[HEAD:start] + counts]
        if units is not None:
            magnitude = torch.where(torch.isfinite(units), units.abs(), 1.0)
            fired = start + layout.units
            parts.append(torch.maximum(state[start:fired], magnitude.amax(dim=0)))
            spread = _finite_max(units - units[:, :1]).reshape(1)
            parts.append(torch.maximum(state[fired:], spread))
        return torch.cat(parts)


def _finite(state: Any, flat: Any, units: Any, total: float, layout: Layout) -> Any:
    """The folded vector of a CPU `state` and a CPU tensor whose values are all finite
    (`total`: their sum), its head and merges computed on the host in float32 (NumPy's
    float32 scalars round as torch's 0-d tensors do)."""
    f32 = np.float32
    work, spare = torch.empty_like(flat), torch.empty_like(flat)
    vector = state.detach().numpy().copy()
    start = HEAD + layout.bins + 2
    if units is None:
        low, high = (f32(v.item()) for v in torch.aminmax(flat))
    else:
        unit_low, unit_high = (v.numpy() for v in _unit_extremes(units))
        low, high = unit_low.min(), unit_high.max()
        fired = start + layout.units
        peaks = np.maximum(np.abs(unit_low), np.abs(unit_high))  # each unit's max |value|
        np.maximum(vector[start:fired], peaks, out=vector[start:fired])
        gaps = torch.sub(units, units[:, :1], out=work.view(units.shape)).abs_()
        spread = gaps.amax()
        if not math.isfinite(spread.item()):  # a gap overflowed
            spread = _finite_max(gaps)
        vector[fired] = np.maximum(vector[fired], f32(spread.item()))
    n0, mean0, m2_0 = vector[COUNT], vector[MEAN], vector[M2]
    n1 = f32(flat.numel())
    mean1 = f32(total) / max(n1, f32(1.0))
    m2_1 = f32(torch.sub(flat, float(mean1), out=work).square_().sum().item())
    with np.errstate(over="ignore", invalid="ignore"):  # overflows as torch's do
        n = n0 + n1
        delta = mean1 - mean0
        share = n1 / max(n, f32(1.0))
        vector[COUNT] = n
        vector[MEAN] = mean0 + delta * share
        vector[M2] = m2_0 + m2_1 + delta * delta * n0 * share
    vector[MIN] = np.minimum(vector[MIN], low)
    vector[MAX] = np.maximum(vector[MAX], high)
    if low <= 0.0 <= high:  # else no value is zero
        vector[ZEROS] += f32(torch.eq(flat, 0.0, out=work).sum().item())
    if layout.saturation is not None:
        below, above = _saturation_edges(layout)
        if low <= below or high >= above:  # else no value lies within a margin
            vector[SATURATED] += f32(_saturated(flat, layout, work, spare).item())
    vector[BATCHES] += f32(1.0)
    if layout.histogram:
        extremes = torch.tensor([low, high], dtype=torch.float32)
        counts = _histogram(flat, layout, work, spare, extremes)
        vector[HEAD:start] += counts.numpy().astype(np.float32)
    return torch.from_numpy(vector)


def _unit_extremes(units: Any) -> tuple[Any, Any]:
    """Each unit's smallest and largest value (`amin`/`amax` over the rows).

    Short rows are reduced as blocks of `k` rows (a `(rows / k, k * units)` view, no
    copy), then over the `k` copies of each unit; the rows left over, on their own.
    """
    rows, width = units.shape
    k = _block_rows(rows, width)
    whole = rows - rows % k
    if k < 2 or whole == 0:
        return units.amin(dim=0), units.amax(dim=0)
    blocks = units[:whole].reshape(-1, k * width)
    low = blocks.amin(dim=0).view(k, width).amin(dim=0)
    high = blocks.amax(dim=0).view(k, width).amax(dim=0)
    if whole < rows:
        low = torch.minimum(low, units[whole:].amin(dim=0))
        high = torch.maximum(high, units[whole:].amax(dim=0))
    return low, high


@functools.lru_cache(maxsize=256)
def _block_rows(rows: int, width: int) -> int:
    """Rows per block of `_unit_extremes`: at least `_BLOCK` floats, dividing `rows` if a
    block less than twice that size does (then no rows are left over)."""
    least = -(-_BLOCK // width)
    for k in range(least, min(2 * least, rows + 1)):
        if rows % k == 0:
            return k
    return least


def _finite_max(gaps: Any) -> Any:
    """`accumulator.unit_spread` of the gaps `u - u_0`: their largest finite `|gap|`."""
    magnitude = gaps.abs()
    return torch.where(torch.isfinite(magnitude), magnitude, 0.0).amax()


def _histogram(flat: Any, layout: Layout, work: Any, spare: Any, extremes: Any) -> Any:
    """The `bins + 2` counts of finite `flat`, in int64 (`work`, `spare`: float32 scratch
    of `flat`'s size; `extremes`: its smallest and largest value, a float32 tensor).

    `accumulator._histogram`'s bucketize, with the `+ 1` that makes the indices
    non-negative also picking one of `_COPIES` histograms in turn (the last
    `size % _PATTERN` values all go to the first). Scaling is monotonic, so the scaled
    extremes tell whether any value needs the clamp, and whether any is negative: if
    none is, the integer cast (which truncates) is the floor. The indices are int16
    where they fit (`bincount` reads them faster), else int32.
    """
    bins = layout.bins
    scaled = _scaled(flat, layout, out=work)
    first, last = sorted(_scaled(extremes, layout).tolist())
    if first < -1.0 or last > bins:
        scaled.clamp_(-1.0, float(bins))
    if first < 0.0:
        scaled.floor_()
    length = _COPIES * (bins + 2)
    dtype = torch.int16 if length <= torch.iinfo(torch.int16).max else torch.int32
    index = spare.view(dtype)[: flat.numel()]
    index.copy_(scaled)
    whole = flat.numel() - flat.numel() % _PATTERN
    if whole:
        index[:whole].view(-1, _PATTERN).add_(_offsets(bins + 2, dtype))
    index[whole:].add_(1)
    counts = torch.bincount(index, minlength=length)
    return counts.view(_COPIES, bins + 2).sum(dim=0)


def _scaled(values: Any, layout: Layout, out: Any = None) -> Any:
    """`(values - low) * (bins / (high - low))`, as `accumulator._histogram` scales
    (`low` 0 subtracts nothing: `x - 0.0` is `x`)."""
    scale = layout.bins / (layout.high - layout.low)
    if layout.low == 0.0:
        return torch.mul(values, scale, out=out)
    return torch.sub(values, layout.low, out=out).mul_(scale)


@functools.cache
def _offsets(length: int, dtype: Any) -> Any:
    """`1 + (i % _COPIES) * length` for `i < _PATTERN`, in the indices' `dtype`."""
    return (1 + torch.arange(_PATTERN) % _COPIES * length).to(dtype)


def _masked(state: Any, flat: Any, layout: Layout) -> tuple[Any, Any]:
    """The head and histogram of any tensor (NaN and Inf counted, kept out of the moments)."""
    finite = torch.isfinite(flat)
    mask = finite.to(torch.float32)
    safe = torch.where(finite, flat, 0.0)
    work = torch.empty_like(flat)
    n0, mean0, m2_0 = state[COUNT], state[MEAN], state[M2]
    n1 = mask.sum()
    mean1 = safe.sum() / torch.clamp(n1, min=1.0)
    m2_1 = (mask * (safe - mean1).square_()).sum()
    n = n0 + n1
    delta = mean1 - mean0
    share = n1 / torch.clamp(n, min=1.0)
    nonfinite = float(flat.numel()) - n1
    bins = layout.bins
    if layout.histogram:
        scaled = (flat - layout.low).mul_(bins / (layout.high - layout.low))
        clipped = torch.where(torch.isnan(flat), bins + 1.0, scaled.clamp_(-1.0, float(bins)))
        index = clipped.floor_().add_(1.0).to(torch.int32)
        counts = torch.bincount(index, minlength=bins + 3).to(torch.float32)
    else:  # the histogram slots stay as they are
        counts = flat.new_zeros(bins + 3)
        counts[-1] = torch.isnan(flat).sum()
    nan_count = counts[-1]
    saturated = _saturated(safe, layout, work, torch.empty_like(flat))
    if layout.saturation is not None and _zero_saturates(layout):
        saturated = saturated - nonfinite
    head = torch.stack(
        [
            n,
            mean0 + delta * share,
            m2_0 + m2_1 + delta.square() * n0 * share,
            torch.minimum(state[MIN], torch.where(finite, flat, _BIG).amin()),
            torch.maximum(state[MAX], torch.where(finite, flat, -_BIG).amax()),
            state[ZEROS] + torch.eq(flat, 0.0, out=work).sum(),
            state[SATURATED] + saturated,
            state[NAN] + nan_count,
            state[INF] + nonfinite - nan_count,
            state[BATCHES] + 1.0,
            state[NONFINITE_CALLS] + (nonfinite > 0).to(torch.float32),
        ]
    )
    return head, counts[:-1]


def _saturated(values: Any, layout: Layout, work: Any, spare: Any) -> Any:
    """How many `values` lie within the saturation margin of a bound, as a float32 tensor
    (`work`, `spare`: float32 scratch of their size; a comparison writes 0/1 floats,
    which sum as `accumulator._saturated` sums its cast mask)."""
    if layout.saturation is None:
        return values.new_zeros(())  # on the activation's device
    below, above = _saturation_edges(layout)
    if below == -above:  # symmetric margins (tanh's): x <= -a or x >= a is |x| >= a
        return torch.abs(values, out=work).ge_(above).sum()
    hit = torch.le(values, below, out=work)
    return torch.maximum(hit, torch.ge(values, above, out=spare), out=hit).sum()


@functools.cache
def _saturation_edges(layout: Layout) -> tuple[float, float]:
    """The values at or below, and at or above, which a value is saturated, rounded to
    float32 as torch rounds a Python float it compares a float32 tensor with."""
    assert layout.saturation is not None
    low, high = layout.saturation
    margin = (1.0 - layout.saturation_threshold) * (high - low) / 2.0
    return float(np.float32(low + margin)), float(np.float32(high - margin))


def _zero_saturates(layout: Layout) -> bool:
    """Whether 0 lies within the saturation margin (then masked-out zeros are taken back)."""
    below, above = _saturation_edges(layout)
    return below >= 0.0 or above <= 0.0


def _units_view(values: Any, layout: Layout) -> Any:
    """`values` as `(rows, units)`, as `accumulator._units_view`."""
    if layout.unit_axis not in (-1, values.dim() - 1):
        values = torch.movedim(values, layout.unit_axis, -1)
    return values.reshape(-1, layout.units)
