"""The in-graph accumulator: running activation statistics packed in one float32 vector.

A layer's accumulator is a 1-D float32 vector laid out as

    [count, mean, m2, min, max, zeros, saturated, nan, inf, batches, nonfinite_calls,
     histogram (bins + 2: under, bins..., over), fired (one per unit), unit spread (one,
     when there are units)]

`fold` merges one activation tensor into it with `keras.ops` only, so it runs inside the
compiled training step on every backend (like BatchNormalization's moving mean).
`fold_for` picks the fold a training step runs: a faster one where the backend has one
(`_fold_tensorflow`, `_fold_torch`, `_fold_finite`, imported lazily), else `fold`. Moments
merge with Chan et al.'s parallel formula, which stays accurate where the naive
sum-of-squares cancels. `finalize` turns a vector into statistics on the host, and
`merge` combines per-replica vectors exactly (used under `tf.distribute`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

COUNT, MEAN, M2, MIN, MAX, ZEROS, SATURATED, NAN, INF, BATCHES, NONFINITE_CALLS = range(11)
HEAD = 11
_BIG = 3.0e38


@dataclasses.dataclass(frozen=True)
class Layout:
    """What one layer's accumulator holds, fixed when the callback instruments the layer.

    Attributes:
        bins: histogram bins between `low` and `high` (plus one under- and one overflow bin).
        low: left edge of the histogram.
        high: right edge of the histogram.
        units: size of the unit axis (for dead units), or 0 to skip that statistic.
        unit_axis: the axis holding units (-1 for channels-last outputs).
        saturation: `(low, high)` bounds outside whose margin values count as saturated,
            or None when the activation is unbounded.
        saturation_threshold: the margin, as a fraction of the half-range (0.99: within 1%).
        max_rows: fold only the first `max_rows` rows of each batch (None: all).
        histogram: whether a fold counts the histogram; when False it leaves the
            histogram slots as they are (a window without a histogram, cheaper).
    """

    bins: int
    low: float
    high: float
    units: int = 0
    unit_axis: int = -1
    saturation: tuple[float, float] | None = None
    saturation_threshold: float = 0.99
    max_rows: int | None = None
    histogram: bool = True

    @property
    def size(self) -> int:
        return HEAD + self.bins + 2 + self.units + (1 if self.units > 0 else 0)

    @functools.cached_property
    def edges(self) -> np.ndarray:
        """The `bins + 1` histogram edges (one array, shared by every record)."""
        return np.linspace(self.low, self.high, self.bins + 1)

    def empty(self) -> np.ndarray:
        """The accumulator of an empty window."""
        vector = np.zeros(self.size, dtype="float32")
        vector[MIN] = _BIG
        vector[MAX] = -_BIG
        return vector


def fold(state, x, layout: Layout, histogram=None):
    """Returns `state` with the tensor `x` folded in (all statistics in float32).

    About 30 elementwise passes over `x` (issue 18; the first version made about 45):
    the histogram is one bucketize and one count that also counts the NaNs, and the
    moments, extremes and saturation share the finite mask. Results are bit-for-bit those of
    the first version (`tests/stats/test_fold_reference.py`).

    `histogram`: None to count the histogram as `layout.histogram` says, or a boolean
    tensor deciding it in the step (one `ops.cond` around the count alone, so a compiled
    step holds one fold, not two).
    """
    flat, units_view = views(x, layout)
    return fold_views(state, flat, units_view, layout, histogram)


fold.takes_histogram = True  # type: ignore[attr-defined]  # (`instrument` asks)


def views(x, layout: Layout):
    """`x` as float32, flat, and as `(rows, units)` (None without units): what a fold reads.

    Any shape in, two fixed ranks out: a fold written on these views serves every layer
    whose layout differs only in shapes (`_fold_tensorflow` traces it once for them all).
    """
    x = ops.cast(ops.stop_gradient(x), "float32")
    if layout.max_rows is not None and len(x.shape) > 0:
        x = x[: layout.max_rows]
    return ops.reshape(x, (-1,)), (_units_view(x, layout) if layout.units else None)


def fold_views(state, flat, units_view, layout: Layout, histogram=None):
    """`fold` on the `views` of a tensor (its shape and `layout.units` are not used)."""
    start = HEAD + layout.bins + 2
    if histogram is not None:
        counts = ops.cond(
            histogram, lambda: _histogram(flat, layout), lambda: _nan_count_only(flat, layout)
        )
    elif layout.histogram:
        counts = _histogram(flat, layout)
    else:
        counts = _nan_count_only(flat, layout)
    parts = [_head(state, flat, counts[-1], layout), state[HEAD:start] + counts[:-1]]
    if units_view is not None:  # [..., fired (one per unit), spread (the last slot)]
        parts.append(_unit_peaks(state[start:-1], units_view))
        parts.append(ops.maximum(state[-1:], unit_spread(units_view)))
    return ops.concatenate(parts)


NATIVE_FOLD = True  # False: every step folds with `fold` (keras.ops), as the tests compare
FOLD_ENV = "KERAS_INITKIT_FOLD"  # "keras_ops" forces `fold` too; "native" (default) does not


def fold_for(jit_compile: bool = False) -> Callable[..., Any]:
    """The fold a training step runs on this backend, for a step compiled with `jit_compile`.

    The TensorFlow graph-mode step and the eager torch step get a fold written in the
    backend's own ops, JAX one with a cheaper branch for finite tensors (same vector;
    `tests/stats/test_native_fold.py`); an XLA-compiled TensorFlow step
    (`jit_compile=True`), `torch.compile` and any other backend get `fold`, which XLA
    fuses. `NATIVE_FOLD = False` or the environment variable
    `KERAS_INITKIT_FOLD=keras_ops` forces `fold` everywhere.
    """
    choice = os.environ.get(FOLD_ENV, "native")
    if choice not in ("native", "keras_ops"):
        raise ValueError(f"{FOLD_ENV} must be 'native' or 'keras_ops'; got {choice!r}")
    if not NATIVE_FOLD or choice == "keras_ops":
        return fold
    backend = keras.backend.backend()
    if backend == "jax":  # XLA compiles it, `jit_compile` or not
        from keras_initkit.stats import _fold_finite

        return _fold_finite.fold
    if jit_compile:
        return fold
    if backend == "tensorflow":
        from keras_initkit.stats import _fold_tensorflow

        return _fold_tensorflow.fold
    if backend == "torch":
        from keras_initkit.stats import _fold_torch

        return _fold_torch.fold
    return fold


def _histogram(flat, layout: Layout):
    """The `bins + 3` counts `[under, bins..., over, NaN]` of a flat tensor, in float32.

    One bin index per value (scaled, clipped: -inf and values below `low` go to the
    underflow bin, +inf and values from `high` on to the overflow bin; NaN, whose integer
    cast is undefined, to a last bin) and one count per index.
    """
    bins = layout.bins
    scaled = (flat - layout.low) * (bins / (layout.high - layout.low))
    clipped = ops.where(ops.isnan(flat), bins + 1.0, ops.clip(scaled, -1.0, float(bins)))
    index = ops.cast(ops.floor(clipped) + 1.0, "int32")
    return _count(index, bins + 3)


def _nan_count_only(flat, layout: Layout):
    """`_histogram`'s `bins + 3` counts with only the last, the NaN count, counted."""
    nan_count = ops.sum(ops.cast(ops.isnan(flat), "float32"))
    return ops.concatenate([ops.zeros((layout.bins + 2,), "float32"), ops.reshape(nan_count, (1,))])


def _count(index, length: int):
    """How often each of `0..length-1` occurs in the int32 tensor `index`, in float32.

    torch: one `bincount` kernel (Keras's torch `segment_sum` is a scatter over an int64
    copy of the indices). TensorFlow and JAX: a segment sum of ones, which XLA compiles
    (TF's `bincount` sizes its output from the data, which `jit_compile=True` rejects).
    """
    if keras.backend.backend() == "torch":
        return ops.cast(ops.bincount(index, minlength=length), "float32")
    return ops.segment_sum(ops.ones_like(index, "float32"), index, num_segments=length)


def _head(state, flat, nan_count, layout: Layout):
    """The `HEAD` slots: Chan's merge of the moments, the extremes and the counts."""
    finite = ops.isfinite(flat)
    mask = ops.cast(finite, "float32")
    safe = ops.where(finite, flat, 0.0)
    n0, mean0, m2_0 = state[COUNT], state[MEAN], state[M2]
    n1 = ops.sum(mask)
    mean1 = ops.sum(safe) / ops.maximum(n1, 1.0)
    m2_1 = ops.sum(mask * ops.square(safe - mean1))
    n = n0 + n1
    delta = mean1 - mean0
    share = n1 / ops.maximum(n, 1.0)
    total = ops.cast(ops.size(flat), "float32")
    nonfinite = total - n1
    # Not `count_nonzero`: on torch, Keras's version warns (`Tensor.T` on a 0-D tensor).
    zeros = ops.sum(ops.cast(ops.equal(flat, 0.0), "float32"))
    return ops.stack(
        [
            n,
            mean0 + delta * share,
            m2_0 + m2_1 + ops.square(delta) * n0 * share,
            ops.minimum(state[MIN], ops.min(ops.where(finite, flat, _BIG))),
            ops.maximum(state[MAX], ops.max(ops.where(finite, flat, -_BIG))),
            state[ZEROS] + zeros,
            state[SATURATED] + _saturated(safe, nonfinite, layout),
            state[NAN] + nan_count,
            state[INF] + nonfinite - nan_count,
            state[BATCHES] + 1.0,
            state[NONFINITE_CALLS] + ops.cast(nonfinite > 0, "float32"),
        ]
    )


def _saturated(safe, nonfinite, layout: Layout):
    """How many finite values lie within the saturation margin of a bound.

    `safe` holds 0 where the value was not finite; when 0 itself is within the margin
    (e.g. sigmoid's), those `nonfinite` zeros are taken back out.
    """
    if layout.saturation is None:
        return ops.zeros((), "float32")
    low, high = layout.saturation
    margin = (1.0 - layout.saturation_threshold) * (high - low) / 2.0
    hit = ops.logical_or(safe <= low + margin, safe >= high - margin)
    count = ops.sum(ops.cast(hit, "float32"))
    if np.float32(low + margin) >= 0.0 or np.float32(high - margin) <= 0.0:
        count = count - nonfinite
    return count


def _units_view(x, layout: Layout):
    """`x` as `(rows, units)`: the unit axis last, every other axis a row."""
    moved = x if layout.unit_axis in (-1, len(x.shape) - 1) else ops.moveaxis(
        x, layout.unit_axis, -1
    )
    return ops.reshape(moved, (-1, layout.units))


def _unit_peaks(peaks, units_view):
    """The running largest finite `|value|` of each unit (0 for a unit never active)."""
    magnitude = ops.where(ops.isfinite(units_view), ops.abs(units_view), 1.0)
    return ops.maximum(peaks, ops.max(magnitude, axis=0))


def unit_spread(units_view):
    """`max |u_j - u_0|` over rows and units (finite pairs only), as a shape-(1,) tensor.

    Zero when every unit column equals the first: the symmetry of a zero or constant
    initialization (`keras_initkit.stats.symmetry` counts the distinct columns on the
    host; this is its one-reduction in-step form, kept by `max` across windows).
    """
    spread = ops.abs(units_view - units_view[:, :1])
    spread = ops.where(ops.isfinite(spread), spread, ops.zeros_like(spread))
    return ops.reshape(ops.max(spread), (1,))


def count_nonfinite(state, x, layout: Layout):
    """Only counts non-finite values (and calls that had any): the cheap per-step check."""
    x = ops.reshape(ops.cast(ops.stop_gradient(x), "float32"), (-1,))
    nan_count = ops.sum(ops.cast(ops.isnan(x), "float32"))
    nonfinite = ops.sum(ops.cast(ops.logical_not(ops.isfinite(x)), "float32"))
    update = ops.zeros((layout.size,), "float32")
    update = ops.scatter_update(
        update,
        [[NAN], [INF], [NONFINITE_CALLS]],
        ops.stack([nan_count, nonfinite - nan_count, ops.cast(nonfinite > 0, "float32")]),
    )
    return state + update


def merge(vectors: list[np.ndarray], layout: Layout) -> np.ndarray:
    """Combines accumulators of disjoint data (e.g. one per replica) into one."""
    result = np.asarray(vectors[0], dtype="float64").copy()
    start = HEAD + layout.bins + 2
    for other in vectors[1:]:
        other = np.asarray(other, dtype="float64")
        n0, n1 = result[COUNT], other[COUNT]
        n = n0 + n1
        if n > 0:
            delta = other[MEAN] - result[MEAN]
            result[M2] = result[M2] + other[M2] + delta * delta * n0 * n1 / n
            result[MEAN] = result[MEAN] + delta * n1 / n
        result[COUNT] = n
        result[MIN] = min(result[MIN], other[MIN])
        result[MAX] = max(result[MAX], other[MAX])
        for slot in (ZEROS, SATURATED, NAN, INF, NONFINITE_CALLS):
            result[slot] += other[slot]
        result[BATCHES] = max(result[BATCHES], other[BATCHES])
        result[HEAD:start] += other[HEAD:start]
        result[start:] = np.maximum(result[start:], other[start:])
    return result


def finalize(vector: np.ndarray, layout: Layout) -> tuple[dict[str, float], np.ndarray]:
    """The statistics and the histogram counts (`bins + 2`) of an accumulator.

    One meaning for every name, wherever it is reported (`inspect`, `study`, the
    callback, the files): `count` is the number of finite values folded; `mean`, `std`,
    `min`, `max`, `zero_fraction` and `saturated_fraction` are over those finite values;
    `nan_count` and `inf_count` count the others. A layer with no finite value has NaN
    statistics but its NaN/Inf counts.
    """
    v = np.asarray(vector, dtype="float64")
    (n, mean, m2, low, high, zeros, saturated, nans, infs, batches, nonfinite_calls) = v[
        :HEAD
    ].tolist()  # Python floats: one conversion, not one per statistic
    total = n + nans + infs
    start = HEAD + layout.bins + 2
    nan = float("nan")
    units = layout.units
    stats = {
        "mean": mean if n else nan,
        "std": math.sqrt(max(m2, 0.0) / n) if n else nan,
        "min": low if n else nan,
        "max": high if n else nan,
        "zero_fraction": zeros / n if n else nan,
        "saturated_fraction": saturated / n if (n and layout.saturation is not None) else nan,
        "dead_units": (float(units - np.count_nonzero(v[start : start + units]))
                       if (units and total) else nan),
        "units": float(units) if units else nan,
        "unit_spread": float(v[start + units]) if (units and n) else nan,
        "nan_count": nans,
        "inf_count": infs,
        "count": n,
        "batches": batches,
        "nonfinite_batches": nonfinite_calls,
    }
    return stats, v[HEAD:start].copy()
