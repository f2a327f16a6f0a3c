"""Per-tensor summary statistics, computed with `keras.ops` in float32.

One function, `summarize`, reduces an activation tensor to a few floats: the numbers the
classic lessons print per layer (mean, std, fraction of zeros, fraction saturated) plus
min, max and NaN/Inf counts. It is `finalize(fold(empty, x))` of the accumulator the
`ActivationStats` callback folds inside the training step, so every statistic means the
same in `inspect`, `keras-initkit study` and the callback. Non-finite values are counted,
not propagated: the other statistics cover the finite values only.
"""

from __future__ import annotations

from typing import Any

from keras import ops

from keras_initkit.initializers import nonlinearities
from keras_initkit.stats.accumulator import Layout, finalize, fold
from keras_initkit.stats.record import ActivationRecord

SUMMARY = ("count", "mean", "std", "min", "max", "zero_fraction", "saturated_fraction",
           "nan_count", "inf_count")

# Where an activation saturates (from the activation table): values within
# `1 - threshold` of a bound count as saturated (|tanh| > 0.99 passes almost no gradient).
SATURATION_BOUNDS: dict[str, tuple[float, float]] = {
    entry.name: entry.saturation_bounds
    for entry in nonlinearities.NONLINEARITIES.values()
    if entry.saturation_bounds is not None
}


def saturation_bounds(activation: Any) -> tuple[float, float] | None:
    """The `(low, high)` bounds of a saturating activation, or `None` for the others.

    Read from the activation table (`keras_initkit.initializers.nonlinearity_names()`).

    Args:
        activation: an activation function or its name (aliases included). `None` is
            linear.

    Returns:
        The bounds, or None when the activation does not saturate.

    Raises:
        ValueError: for a name (or a function's name) the table does not know: whether
            it saturates is then unknown, not "no".

    Example:
    >>> keras_initkit.stats.saturation_bounds("tanh")
    (-1.0, 1.0)
    >>> keras_initkit.stats.saturation_bounds("relu") is None
    True

    Reference:
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html) (saturation)
    """
    if activation is None:
        return None
    name = getattr(activation, "__name__", activation)
    if not isinstance(name, str):
        raise ValueError(
            f"activation must be an activation function or its name; got {activation!r}")
    return nonlinearities.lookup(name).saturation_bounds


def summarize(
    values: Any, bounds: tuple[float, float] | None = None, threshold: float = 0.99
) -> dict[str, float]:
    """Reduces a tensor to its summary statistics (as Python floats).

    Args:
        values: any tensor (any backend, any float dtype; computed in float32).
        bounds: `(low, high)` of a bounded activation, for the saturated fraction;
            `None` reports it as NaN (not applicable).
        threshold: how close to a bound counts as saturated, as a fraction of the
            half-range. Defaults to `0.99`.

    Returns:
        A dict with `count` (finite values), `mean`, `std`, `min`, `max`,
        `zero_fraction`, `saturated_fraction` (over the finite values), `nan_count` and
        `inf_count`.

    Example:
    >>> stats = keras_initkit.stats.summarize(np.array([0.0, 1.0, -1.0, np.nan]))
    >>> stats["mean"], stats["zero_fraction"], stats["nan_count"]
    (0.0, 0.3333333333333333, 1.0)

    Reference:
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html) (per-layer
      activation statistics and saturation)
    """
    layout = Layout(bins=1, low=-1.0, high=1.0, saturation=bounds,
                    saturation_threshold=threshold)
    state = ops.convert_to_tensor(layout.empty())
    values = ops.convert_to_tensor(values)
    stats, _ = finalize(ops.convert_to_numpy(fold(state, values, layout)), layout)
    return {name: stats[name] for name in SUMMARY}


def activation_facts(activation: str) -> tuple[tuple[float, float], tuple[float, float] | None]:
    """`(histogram range, saturation bounds)` for the activation named `activation`.

    A name the activation table does not know (a custom activation function's) gets
    `DEFAULT_HISTOGRAM_RANGE` and no saturation bounds: its saturated fraction is then
    reported as NaN (not applicable), never as a made-up 0.
    """
    entry = nonlinearities.find(activation)
    if entry is None:
        return nonlinearities.DEFAULT_HISTOGRAM_RANGE, None
    return entry.histogram, entry.saturation_bounds


def layer_record(values: Any, layer: str, activation: str, *, bins: int = 50,
                 threshold: float = 0.99, unit_axis: int = -1,
                 histogram_range: tuple[float, float] | None = None) -> ActivationRecord:
    """The `ActivationRecord` of one output tensor: what `ActivationStats` records for
    the same values in one window (the same fold, the same finalize, dead units over its
    rows), used by `inspect` and `keras-initkit study`. The histogram spans
    `histogram_range`, by default the activation's (as the callback's)."""
    values = ops.convert_to_tensor(values)
    shape = tuple(values.shape)
    units = int(shape[unit_axis]) if len(shape) >= 2 and shape[unit_axis] else 0
    (low, high), bounds = activation_facts(activation)
    if histogram_range is not None:
        low, high = histogram_range
    layout = Layout(bins=bins, low=low, high=high, units=units, unit_axis=unit_axis,
                    saturation=bounds,
                    saturation_threshold=threshold)
    state = ops.convert_to_tensor(layout.empty())
    stats, counts = finalize(ops.convert_to_numpy(fold(state, values, layout)), layout)
    stats.pop("nonfinite_batches")
    return ActivationRecord(0, 0, 0, 0, layer, activation, stats, layout.edges, counts)
