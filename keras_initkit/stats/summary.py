"""Per-tensor summary statistics, computed with `keras.ops` in float32.

One function, `summarize`, reduces an activation tensor to a few floats: the numbers the
classic lessons print per layer (mean, std, fraction of zeros, fraction saturated) plus
min, max and NaN/Inf counts. Non-finite values are counted, not propagated: the other
statistics cover the finite values only.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

# Where an activation saturates: values within `1 - threshold` of a bound count as
# saturated (|tanh| > 0.99 means the unit passes almost no gradient).
SATURATION_BOUNDS: dict[str, tuple[float, float]] = {
    "tanh": (-1.0, 1.0),
    "softsign": (-1.0, 1.0),
    "hard_tanh": (-1.0, 1.0),
    "sigmoid": (0.0, 1.0),
    "hard_sigmoid": (0.0, 1.0),
    "sparse_sigmoid": (0.0, 1.0),
}


def saturation_bounds(activation: Any) -> tuple[float, float] | None:
    """The `(low, high)` bounds of a bounded activation, or `None` for unbounded ones.

    Args:
        activation: an activation function or its name.

    Example:
    >>> keras_initkit.stats.saturation_bounds("tanh")
    (-1.0, 1.0)

    Reference:
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html) (saturation)
    """
    if activation is None:
        return None
    name = getattr(activation, "__name__", activation)
    if not isinstance(name, str):
        return None
    return SATURATION_BOUNDS.get(name)


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
        A dict with `count`, `mean`, `std`, `min`, `max`, `zero_fraction`,
        `saturated_fraction`, `nan_count` and `inf_count`.

    Example:
    >>> stats = keras_initkit.stats.summarize(np.array([0.0, 1.0, -1.0, np.nan]))
    >>> stats["mean"], stats["zero_fraction"], stats["nan_count"]
    (0.0, 0.3333333432674408, 1.0)

    Reference:
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html) (per-layer
      activation statistics and saturation)
    """
    x = ops.reshape(ops.cast(ops.convert_to_tensor(values), "float32"), (-1,))
    nan = ops.isnan(x)
    inf = ops.isinf(x)
    finite = ops.logical_not(ops.logical_or(nan, inf))
    mask = ops.cast(finite, "float32")
    safe = ops.where(finite, x, ops.zeros_like(x))
    count = ops.sum(mask)
    n = ops.maximum(count, 1.0)
    mean = ops.sum(safe) / n
    variance = ops.sum(mask * ops.square(safe - mean)) / n
    big = 3.0e38
    result = {
        "count": count,
        "mean": mean,
        "std": ops.sqrt(variance),
        "min": ops.min(ops.where(finite, x, big)),
        "max": ops.max(ops.where(finite, x, -big)),
        "zero_fraction": ops.sum(mask * ops.cast(ops.equal(safe, 0.0), "float32")) / n,
        "nan_count": ops.sum(ops.cast(nan, "float32")),
        "inf_count": ops.sum(ops.cast(inf, "float32")),
    }
    if bounds is not None:
        low, high = bounds
        margin = (1.0 - threshold) * (high - low) / 2.0
        saturated = ops.logical_or(safe <= low + margin, safe >= high - margin)
        result["saturated_fraction"] = ops.sum(mask * ops.cast(saturated, "float32")) / n
    out = {k: float(keras.ops.convert_to_numpy(v)) for k, v in result.items()}
    if bounds is None:
        out["saturated_fraction"] = float("nan")
    if out["count"] == 0:
        for key in ("mean", "std", "min", "max", "zero_fraction"):
            out[key] = float("nan")
    return out
