"""Argument checks shared by the initializers: one clear `ValueError` per mistake."""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Sequence
from typing import Any

import keras

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def check_choice(argument: str, value: Any, allowed: Sequence[str]) -> str:
    """Returns `value` if it is one of `allowed`, else raises a `ValueError` naming both."""
    if not isinstance(value, str) or value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{argument} must be one of {choices}; got {value!r}")
    return value


def check_positive(argument: str, value: Any) -> float:
    """Returns `value` as a float if it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{argument} must be a positive number; got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{argument} must be a positive number; got {value!r}")
    return float(value)


def check_axes(argument: str, axes: Any) -> list[int] | None:
    """Normalizes an axes argument (`None` or ints) to `None` or a list of ints."""
    if axes is None:
        return None
    if isinstance(axes, int) and not isinstance(axes, bool):
        return [axes]
    if isinstance(axes, Iterable) and not isinstance(axes, (str, bytes)):
        axes = list(axes)
        if all(isinstance(a, int) and not isinstance(a, bool) for a in axes):
            return axes
    raise ValueError(f"{argument} must be None or a list of ints; got {axes!r}")


def check_shape(shape: Any) -> tuple[int, ...]:
    """Returns `shape` as a tuple of positive ints, or raises naming the bad entry."""
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(f"shape must be a tuple of positive ints; got {shape!r}") from None
    for dim in dims:
        # `__index__` admits Python and NumPy integers, not floats, strings or None.
        if isinstance(dim, bool) or not hasattr(dim, "__index__") or operator.index(dim) <= 0:
            raise ValueError(
                "shape must be a tuple of positive ints (every dimension >= 1); "
                f"got {shape!r}"
            )
    return tuple(operator.index(d) for d in dims)


def check_dtype(dtype: Any) -> str:
    """Returns the standardized float dtype; `None` means `keras.config.floatx()`."""
    name = keras.backend.standardize_dtype(dtype or keras.config.floatx())
    if name not in FLOAT_DTYPES:
        choices = ", ".join(FLOAT_DTYPES)
        raise ValueError(
            f"dtype must be a floating-point dtype ({choices}); got {name!r}. "
            "Initializers draw real-valued weights; cast afterwards if you need integers."
        )
    return name
