"""Argument checks for the initializers: the shared ones plus shapes, axes and dtypes."""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any

import keras
import numpy as np

from keras_initkit._checks import check_choice, check_int, check_number, check_positive

__all__ = [
    "FLOAT_DTYPES",
    "check_axes",
    "check_choice",
    "check_dtype",
    "check_int",
    "check_number",
    "check_positive",
    "check_shape",
    "dtype_max",
]

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
_DTYPE_MAX = {"float16": 65504.0, "bfloat16": 3.3895e38, "float32": 3.4028e38, "float64": 1.79e308}


def check_axes(argument: str, axes: Any) -> list[int] | None:
    """Normalizes an axes argument (`None` or ints) to `None` or a list of ints."""
    if axes is None:
        return None
    if isinstance(axes, (int, np.integer)) and not isinstance(axes, bool):
        return [int(axes)]
    if isinstance(axes, Iterable) and not isinstance(axes, (str, bytes, dict)):
        axes = list(axes)
        if all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axes):
            return [int(a) for a in axes]
    raise ValueError(f"{argument} must be None or a list of ints; got {axes!r}")


def check_shape(shape: Any, allow_empty: bool = False) -> tuple[int, ...]:
    """Returns `shape` as a tuple of ints >= 1 (>= 0 with `allow_empty`), or raises."""
    low = 0 if allow_empty else 1
    need = "non-negative ints" if allow_empty else "positive ints (every dimension >= 1)"
    if isinstance(shape, (str, bytes, dict)):
        raise ValueError(f"shape must be a tuple of {need}; got {shape!r}")
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(f"shape must be a tuple of {need}; got {shape!r}") from None
    for dim in dims:
        # `__index__` admits Python and NumPy integers, not floats, strings or None.
        if isinstance(dim, bool) or not hasattr(dim, "__index__") or operator.index(dim) < low:
            raise ValueError(f"shape must be a tuple of {need}; got {shape!r}")
    return tuple(operator.index(d) for d in dims)


def check_dtype(dtype: Any) -> str:
    """Returns the standardized float dtype; `None` means `keras.config.floatx()`."""
    try:
        name = keras.backend.standardize_dtype(dtype or keras.config.floatx())
    except (ValueError, TypeError, AttributeError):
        name = None
    if name not in FLOAT_DTYPES:
        choices = ", ".join(FLOAT_DTYPES)
        raise ValueError(
            f"dtype must be a floating-point dtype ({choices}); got {dtype!r}. "
            "Initializers draw real-valued weights; cast afterwards if you need integers."
        )
    return name


def dtype_max(dtype: str) -> float:
    """The largest finite value of a float dtype (rounded down)."""
    return _DTYPE_MAX[dtype]
