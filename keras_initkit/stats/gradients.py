"""The in-step fold of gradient, weight and update statistics, in one float32 vector.

The vector is laid out as

    [tick, fold_from, fold_until, steps, histogram, unfolded_0, unfolded_1, ...,
     block_0, block_1, ...]

with one `unfolded` count and one block per watched trainable variable (`histogram`: 1
when the window counts histograms, 0 when it leaves them empty). `unfolded_i`
counts the NaN/Inf gradient values of variable `i` on the steps outside the folded range
(only when the step checks them: `count_nonfinite`, for `on_nan="stop"`); each block is

    [grad_norm, grad_sumsq, grad_sum, grad_max_abs, grad_nonfinite, grad_zeros,
     weight_norm, weight_sumsq, update_norm, update_sumsq, histogram (bins + 2)]

Sums run over the folded applications of the optimizer in a window (`steps` of them:
one per training step, unless a step applies the optimizer several times, as a WGAN's
critic does; the step counter `tick` advances once per training step). `fold` uses `keras.ops`
only, so it runs inside the compiled training step on every backend. The histogram bins
`log10 |g|` evenly between `log10(low)` and `log10(high)`; the first bin below holds
exact zeros and values under `low`, the last one values over `high` and infinities.
NaN gradients are counted in `grad_nonfinite` and left out of the histogram.

Which gradient: the gradient of the training loss with respect to the variable (the
*weight* gradient, dL/dW), as the trainer hands it to the optimizer, divided by the loss
scale under mixed precision, before clipping. It is not the back-propagated gradient
dL/da of a layer's output (Glorot & Bengio, 2010, show the two can behave differently).
The update is the change of the variable over the step, as the optimizer applied it
(after momentum or Adam, clipping, weight decay and constraints). Weight statistics are
of the values before the step.
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
from keras import ops

TICK, FOLD_FROM, FOLD_UNTIL, STEPS, HISTOGRAM = range(5)
HEAD = 5
FIELDS = (
    "grad_norm", "grad_sumsq", "grad_sum", "grad_max_abs", "grad_nonfinite", "grad_zeros",
    "weight_norm", "weight_sumsq", "update_norm", "update_sumsq",
)  # fmt: skip
_F = {name: i for i, name in enumerate(FIELDS)}

# The scalar statistics of a record, in the order tables and files list them.
STATISTICS = (
    "gradient_norm",
    "gradient_rms",
    "gradient_mean",
    "gradient_max_abs",
    "gradient_nonfinite",
    "gradient_zero_fraction",
    "weight_norm",
    "weight_rms",
    "update_norm",
    "update_rms",
    "update_ratio",
    "size",
    "ndim",
    "steps",
)


@dataclasses.dataclass(frozen=True)
class GradientLayout:
    """What the vector holds: the watched variables' sizes and the histogram bins.

    Attributes:
        sizes: the number of elements of each watched variable, in order.
        ndims: their numbers of dimensions (2 or more: a weight matrix).
        bins: histogram bins between `low` and `high` (plus under- and overflow bins).
        low: the smallest |g| of the first bin (> 0).
        high: the largest |g| of the last bin.
    """

    sizes: tuple[int, ...]
    ndims: tuple[int, ...] = ()
    bins: int = 44
    low: float = 1e-10
    high: float = 10.0

    @property
    def block(self) -> int:
        return len(FIELDS) + self.bins + 2

    @property
    def head(self) -> int:
        """Where the first block starts (after the counters and `unfolded` counts)."""
        return HEAD + len(self.sizes)

    @property
    def size(self) -> int:
        return self.head + self.block * len(self.sizes)

    def start(self, index: int) -> int:
        """Where the block of variable `index` starts."""
        return self.head + index * self.block

    @property
    def edges(self) -> np.ndarray:
        """The `bins + 1` bin edges in |g| (log-spaced)."""
        return np.logspace(math.log10(self.low), math.log10(self.high), self.bins + 1)

    def empty(
        self, fold_from: float = 0.0, fold_until: float = 0.0, histogram: bool = True
    ) -> np.ndarray:
        """The vector of a new window folding ticks `fold_from <= tick < fold_until`, with
        histograms if `histogram`."""
        vector = np.zeros(self.size, dtype="float32")
        vector[FOLD_FROM], vector[FOLD_UNTIL] = fold_from, fold_until
        vector[HISTOGRAM] = float(histogram)
        return vector


def should_fold(state):
    """Whether the step about to run is in the window's folded range (a boolean tensor)."""
    tick = state[TICK]
    return ops.logical_and(tick >= state[FOLD_FROM], tick < state[FOLD_UNTIL])


def tick(state):
    """`state` with the step counter advanced (a step that does not fold)."""
    return ops.concatenate([ops.expand_dims(state[TICK] + 1.0, 0), state[1:]])


def fold(
    state, grads, before, after, layout: GradientLayout, scale=None, bincount=False,
    histogram=True, ticks=True,
):
    """`state` with one step's gradients, weights and updates folded in.

    Args:
        state: the current vector.
        grads: one gradient per watched variable (`None`: no gradient, counted as zeros).
        before: the variables' values before the step.
        after: their values after the step.
        layout: the `GradientLayout` of `state`.
        scale: the loss scale the gradients carry (divided out), or `None`.
        bincount: TensorFlow's graph mode, not XLA: count the histogram with
            `ops.bincount` (a counting kernel; the alternative is a float scatter-add;
            XLA cannot compile it), and square and sum in one kernel
            (`_gradient_kernels_tensorflow`; same results).
        histogram: whether to count the histograms: `True`, `False` (the histogram slots
            stay as they are), or `None`: as the state's `histogram` slot says (an
            `ops.cond` per variable; not on torch, whose host knows).
        ticks: whether this application also advances the step counter (`False` when
            the training step advances it once, however often the optimizer is applied).
    """
    increment = [1.0 if ticks else 0.0, 0.0, 0.0, 1.0, 0.0]
    head = state[:HEAD] + ops.convert_to_tensor(increment, "float32")
    blocks = [head, state[HEAD : layout.head]]
    kernels = _Kernels(bincount)
    if histogram is None:
        histogram = state[HISTOGRAM] > 0.0
    for index, (g, w0, w1) in enumerate(zip(grads, before, after, strict=True)):
        start = layout.start(index)
        old = state[start : start + layout.block]
        w0 = ops.reshape(ops.cast(w0, "float32"), (-1,))
        w1 = ops.reshape(ops.cast(w1, "float32"), (-1,))
        g = ops.zeros_like(w0) if g is None else ops.reshape(ops.cast(g, "float32"), (-1,))
        if scale is not None:
            g = g / ops.cast(scale, "float32")
        size = float(layout.sizes[index])
        blocks.append(
            _fold_one(old, ops.stop_gradient(g), w0, w1, layout, size, kernels, histogram)
        )
    return ops.concatenate(blocks)


def count_nonfinite(state, grads, layout: GradientLayout, ticks=True):
    """`state` ticked (if `ticks`), with each gradient's NaN/Inf values added to its
    `unfolded` count.

    For the steps outside the folded range when `on_nan="stop"` checks every step.
    """
    if not grads:
        return tick(state) if ticks else state
    counts = [
        ops.zeros((), "float32")
        if g is None
        else float(size) - ops.sum(ops.cast(ops.isfinite(ops.cast(g, "float32")), "float32"))
        for g, size in zip(grads, layout.sizes, strict=True)
    ]
    unfolded = state[HEAD : layout.head] + ops.stack(counts)
    counter = state[TICK] + 1.0 if ticks else state[TICK]
    return ops.concatenate(
        [ops.expand_dims(counter, 0), state[1:HEAD], unfolded, state[layout.head :]]
    )


def nonfinite_counts(vector: np.ndarray, layout: GradientLayout) -> np.ndarray:
    """Per variable, its NaN/Inf gradient values in the window so far (folded or not)."""
    vector = np.asarray(vector, dtype="float64")
    folded = [vector[layout.start(i) + _F["grad_nonfinite"]] for i in range(len(layout.sizes))]
    return vector[HEAD : layout.head] + np.asarray(folded, dtype="float64")


class _Kernels:
    """`keras.ops` forms, or (`native`: TensorFlow's graph mode) faster equivalents."""

    def __init__(self, native: bool = False) -> None:
        self.bincount = native
        self.native = native and keras.backend.backend() == "tensorflow"
        if self.native:
            from keras_initkit.stats import _gradient_kernels_tensorflow as tf_kernels

            self.tf = tf_kernels

    def sum_of_squares(self, x):
        return self.tf.sum_of_squares(x) if self.native else ops.sum(ops.square(x))

    def count(self, index, length: int):
        """How many of `index` (int32, in `0..length-1`) equal each of `0..length-1`."""
        if self.bincount:  # exactly `length` counts (the shape made static)
            counts = ops.reshape(ops.bincount(index, minlength=length), (length,))
            return ops.cast(counts, "float32")
        return _count(index, length)


def _fold_one(
    old, g, w0, w1, layout: GradientLayout, size: float, kernels: _Kernels, histogram=True
):
    g_sumsq = kernels.sum_of_squares(g)
    w_sumsq = kernels.sum_of_squares(w0)
    u = w1 - w0
    u_sumsq = kernels.sum_of_squares(u)
    absolute = ops.abs(g)
    # A finite sum of squares means every value is finite (the usual case): no NaN/Inf
    # to count and no NaN to keep out of the histogram. Else (a NaN or Inf, or a sum
    # overflowing) the exact count and mask. Both give the same counts.
    finite = ops.isfinite(g_sumsq)
    nonfinite = _unless(
        finite, lambda: size - ops.sum(ops.cast(ops.isfinite(g), "float32"))
    )
    if histogram is True:
        counts, zeros = _counts_and_zeros(g, absolute, finite, layout, kernels)
    elif histogram is False:
        counts, zeros = _no_counts_and_zeros(g, absolute, layout)
    else:
        counts, zeros = ops.cond(
            histogram,
            lambda: _counts_and_zeros(g, absolute, finite, layout, kernels),
            lambda: _no_counts_and_zeros(g, absolute, layout),
        )
    fields = ops.stack(
        [
            ops.sqrt(g_sumsq),
            g_sumsq,
            ops.sum(g),
            ops.max(absolute),
            nonfinite,
            zeros,
            ops.sqrt(w_sumsq),
            w_sumsq,
            ops.sqrt(u_sumsq),
            u_sumsq,
        ]
    )
    n, m = len(FIELDS), _F["grad_max_abs"]  # sums, except the running maximum
    head = ops.concatenate(
        [old[:m] + fields[:m], ops.maximum(old[m : m + 1], fields[m : m + 1]),
         old[m + 1 : n] + fields[m + 1 :]]
    )
    return ops.concatenate([head, old[n:] + counts])


def _counts_and_zeros(g, absolute, finite, layout: GradientLayout, kernels: _Kernels):
    """The histogram's `bins + 2` counts and the number of exact zeros."""
    if keras.backend.backend() == "jax":  # XLA fuses the mask into the bin computation
        counts = _histogram(absolute, ops.isnan(g), layout, kernels)
    else:
        counts = _cond(
            finite,
            lambda: _histogram(absolute, None, layout, kernels),
            lambda: _histogram(absolute, ops.isnan(g), layout, kernels),
        )
    # Exact zeros land in the first bin: counted only when that bin holds anything.
    zeros = _unless(
        ops.equal(counts[0], 0.0), lambda: ops.sum(ops.cast(ops.equal(g, 0.0), "float32"))
    )
    return counts, zeros


def _no_counts_and_zeros(g, absolute, layout: GradientLayout):
    """No counts (a window without histograms), and the number of exact zeros: counted
    only when the smallest `|g|` is not positive (it is 0, or NaN)."""
    zeros = _unless(
        ops.min(absolute) > 0.0, lambda: ops.sum(ops.cast(ops.equal(g, 0.0), "float32"))
    )
    return ops.zeros((layout.bins + 2,), "float32"), zeros


def _histogram(absolute, nan, layout: GradientLayout, kernels: _Kernels):
    """The `bins + 2` counts of `absolute` (NaN values, where `nan`, left out)."""
    nb = layout.bins
    position = _position(absolute, layout)
    if nan is None and kernels.native:  # finite: one counting kernel takes the rest
        return kernels.tf.histogram_of_floor(ops.floor(position), nb)
    index = ops.floor(ops.clip(position, -1.0, float(nb))) + 1.0
    if nan is not None:
        index = ops.where(nan, nb + 2.0, index)
    # indices are 0..nb+2 (NaN last), so exactly nb+3 counts
    return kernels.count(ops.cast(index, "int32"), nb + 3)[: nb + 2]


def _position(absolute, layout: GradientLayout):
    """Each `|g|`'s place on the bins, `(log10 |g| - log10 low) / bin width`, as one natural
    logarithm, one product and one difference (the bin `floor(position) + 1`, clipped)."""
    low, high = math.log10(layout.low), math.log10(layout.high)
    per_decade = layout.bins / (high - low)
    return ops.log(absolute) * (per_decade / math.log(10.0)) - low * per_decade


def _cond(pred, true_fn, false_fn):
    """`ops.cond`, except on torch: a host branch would break `torch.compile`'s graph."""
    if keras.backend.backend() == "torch":
        return false_fn()  # exact whatever `pred` is
    return ops.cond(pred, true_fn, false_fn)


def _unless(skip, value_fn):
    """0.0 where the boolean `skip` holds (`value_fn()` is 0 then), else `value_fn()`."""
    return _cond(skip, lambda: ops.zeros((), "float32"), value_fn)


def _count(index, length: int):
    """How many of `index` (int32, in `0..length-1`) equal each of `0..length-1`."""
    if keras.backend.backend() == "torch":
        # Keras's torch segment_sum has a data-dependent shape (torch.compile rejects it);
        # index_put_ with accumulation, which scatter_update(reduction="add") uses, has not.
        ones = ops.ones(ops.shape(index), "float32")
        zeros = ops.zeros((length,), "float32")
        return ops.scatter_update(zeros, ops.expand_dims(index, -1), ones, reduction="add")
    # int32 ones: an integer scatter-add, faster than a float one (and exact).
    ones = ops.ones(ops.shape(index), "int32")
    return ops.cast(ops.segment_sum(ones, index, num_segments=length), "float32")


def finalize(vector: np.ndarray, layout: GradientLayout) -> list[tuple[dict, np.ndarray]]:
    """Per variable: its statistics (see `STATISTICS`) and histogram counts (`bins + 2`).

    Empty when no step was folded.
    """
    vector = np.asarray(vector, dtype="float64")
    steps = vector[STEPS]
    if steps <= 0 or not layout.sizes:
        return []
    blocks = vector[layout.head :].reshape(len(layout.sizes), layout.block)
    f = {name: blocks[:, i] for i, name in enumerate(FIELDS)}
    sizes = np.asarray(layout.sizes, dtype="float64")
    elements = np.maximum(sizes, 1.0) * steps
    weight_norm = f["weight_norm"] / steps
    update_norm = f["update_norm"] / steps
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(weight_norm > 0, update_norm / weight_norm, math.nan)
        columns = [
            f["grad_norm"] / steps,
            _root(f["grad_sumsq"] / elements),
            f["grad_sum"] / elements,
            f["grad_max_abs"],
            f["grad_nonfinite"],
            f["grad_zeros"] / elements,
            weight_norm,
            _root(f["weight_sumsq"] / elements),
            update_norm,
            _root(f["update_sumsq"] / elements),
            ratio,
            sizes,
            np.asarray(layout.ndims, "float64") if layout.ndims else np.full(len(sizes), math.nan),
            np.full(len(sizes), steps),
        ]
    table = np.stack(columns, axis=1).tolist()  # one row of Python floats per variable
    counts = blocks[:, len(FIELDS) :]
    return [(dict(zip(STATISTICS, row, strict=True)), counts[i].copy())
            for i, row in enumerate(table)]  # fmt: skip


def _root(x: np.ndarray) -> np.ndarray:
    """`sqrt(x)`, NaN where `x` is negative or NaN."""
    return np.where(x >= 0, np.sqrt(np.maximum(x, 0.0)), math.nan)
