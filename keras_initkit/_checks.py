"""Argument checks shared by the whole package: one clear `ValueError` per mistake.

Each check names the argument, says what is allowed and shows the value given, and raises
before any work is done. Numbers are real Python or NumPy scalars (never `bool`), finite,
and inside the stated range, so that an absurd value (`10**400`, `1e308`) is refused
here instead of overflowing deep inside NumPy or a backend.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

# The largest finite float16: a parameter that multiplies activations must stay finite
# when cast to the lowest precision a layer may run in.
FLOAT16_MAX = 65504.0


def _describe(low: float | None, high: float | None, low_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}]"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"<= {high:g}"
    return "finite"


def check_number(
    argument: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    need: str | None = None,
) -> float:
    """Returns `value` as a float if it is a finite real number in the range, else raises."""
    if need is None:
        need = f"a finite number {_describe(low, high, low_open)}"
        need = need.replace("finite finite", "finite")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{argument} must be {need}; got {_short(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{argument} must be {need}; got {_short(value)}") from None
    if (
        not math.isfinite(number)
        or (low is not None and (number <= low if low_open else number < low))
        or (high is not None and number > high)
    ):
        raise ValueError(f"{argument} must be {need}; got {_short(value)}")
    return number


def check_positive(argument: str, value: Any, high: float | None = None) -> float:
    """Returns `value` as a float if it is a finite number > 0 (and <= `high`)."""
    need = "a positive number" + (f" <= {high:g}" if high is not None else "")
    return check_number(argument, value, low=0, high=high, low_open=True, need=need)


def check_int(argument: str, value: Any, low: int, high: int | None = None) -> int:
    """Returns `value` as an int if it is an integer (not a bool) in `[low, high]`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        value_ok = False
    else:
        value_ok = int(value) >= low and (high is None or int(value) <= high)
    if not value_ok:
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{argument} must be an int {bound}; got {_short(value)}")
    return int(value)


def check_bool(argument: str, value: Any) -> bool:
    """Returns `value` if it is `True` or `False` (no truthy strings such as `"no"`)."""
    if not isinstance(value, bool):
        raise ValueError(f"{argument} must be True or False; got {value!r}")
    return value


def check_choice(argument: str, value: Any, allowed: Sequence[str]) -> str:
    """Returns `value` if it is one of `allowed`, else raises a `ValueError` naming both."""
    if not isinstance(value, str) or value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{argument} must be one of {choices}; got {_short(value)}")
    return value


def check_seed(argument: str, value: Any) -> int | None:
    """Returns an int seed in `[0, 2**32)` or `None` (the range every backend accepts)."""
    if value is None:
        return None
    return check_int(argument, value, 0, 2**32 - 1)


def _short(value: Any) -> str:
    """`repr(value)`, shortened for huge ints and long texts."""
    try:
        text = repr(value)
    except ValueError:  # an int beyond Python's str conversion limit
        return f"an int of about {value.bit_length() * 0.30103:.0f} digits"
    return text if len(text) <= 80 else f"{text[:40]}...{text[-20:]} ({len(text)} characters)"
