"""Turning one read of per-layer statistics into findings stated in words.

The conditions are the classic lessons: activations that vanish or explode with depth
(weights too small or too large for the depth), saturated tanh/sigmoid units (gradients
through them vanish), dead ReLU units (never fire, never learn), and NaN/Inf values.
"""

from __future__ import annotations

import dataclasses
import math

from keras_initkit.stats.record import ActivationRecord


@dataclasses.dataclass(frozen=True)
class Finding:
    """One diagnosed condition: `condition` is one of `CONDITIONS`."""

    condition: str
    layer: str
    message: str


CONDITIONS = ("nonfinite", "vanishing", "exploding", "saturated", "dead")


def _g(value: float) -> str:
    return f"{value:.3g}"


def diagnose(
    records: list[ActivationRecord],
    *,
    dead_threshold: float = 0.5,
    saturated_threshold: float = 0.5,
    std_ratio: float = 100.0,
) -> list[Finding]:
    """Findings for one read: `records` holds one record per layer, in forward order.

    Args:
        records: the records of one read (same step), shallowest layer first.
        dead_threshold: report a layer when more than this fraction of its units never
            fired (were exactly zero on every recorded row).
        saturated_threshold: report a bounded activation (tanh, sigmoid, ...) when more
            than this fraction of its values sit at a bound.
        std_ratio: report vanishing (exploding) activations when a layer's std falls
            below 1/`std_ratio` (rises above `std_ratio`) times the first layer's.

    Returns:
        A list of `Finding`, at most one per condition and layer.

    Example:
    >>> import numpy as np
    >>> from keras_initkit.stats.record import ActivationRecord
    >>> def rec(name, std):
    ...     stats = {"std": std, "nan_count": 0.0, "inf_count": 0.0}
    ...     return ActivationRecord(0, 0, 9, 10, name, "tanh", stats, np.zeros(2), np.zeros(3))
    >>> findings = diagnose([rec("dense", 0.2), rec("dense_1", 0.01), rec("dense_2", 1e-4)])
    >>> [(f.condition, f.layer) for f in findings]
    [('vanishing', 'dense_2')]

    Reference:
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html)
    - [He et al., 2015](https://arxiv.org/abs/1502.01852)
    """
    findings: list[Finding] = []
    first_nonfinite = True
    for record in records:
        s = record.stats
        bad = s.get("nan_count", 0.0) + s.get("inf_count", 0.0)
        if bad > 0:
            which = "the first layer in forward order to do so" if first_nonfinite else "after"
            first_nonfinite = False
            findings.append(
                Finding(
                    "nonfinite",
                    record.layer,
                    f"{record.layer!r} ({record.activation}) produced {int(s['nan_count'])} NaN "
                    f"and {int(s['inf_count'])} Inf values by step {record.step} "
                    f"({which}).",
                )
            )
    stds = [(r, r.stats.get("std", math.nan)) for r in records]
    reference = next(((r, v) for r, v in stds if math.isfinite(v) and v > 0), None)
    if reference is not None:
        first, base = reference
        last, last_std = stds[-1]
        low = next(((r, v) for r, v in stds if math.isfinite(v) and v < base / std_ratio), None)
        high = next(((r, v) for r, v in stds if math.isfinite(v) and v > base * std_ratio), None)
        if low is not None:
            findings.append(
                Finding(
                    "vanishing",
                    low[0].layer,
                    f"activations vanish with depth: std falls from {_g(base)} at "
                    f"{first.layer!r} to {_g(low[1])} at {low[0].layer!r}"
                    + (f" and {_g(last_std)} at {last.layer!r}" if last is not low[0] else "")
                    + f" (below 1/{_g(std_ratio)} of the first layer's). The weights are "
                    "too small for this depth: use the initializer the activation calls for "
                    "(keras_initkit.initializer_for) or keras_initkit.reinitialize(model).",
                )
            )
        if high is not None:
            findings.append(
                Finding(
                    "exploding",
                    high[0].layer,
                    f"activations explode with depth: std grows from {_g(base)} at "
                    f"{first.layer!r} to {_g(high[1])} at {high[0].layer!r} (above "
                    f"{_g(std_ratio)} times the first layer's). The weights are too large "
                    "for this depth: use keras_initkit.initializer_for or reinitialize(model).",
                )
            )
    for record in records:
        s = record.stats
        saturated = s.get("saturated_fraction", math.nan)
        if math.isfinite(saturated) and saturated > saturated_threshold:
            findings.append(
                Finding(
                    "saturated",
                    record.layer,
                    f"{record.layer!r} ({record.activation}) is saturated: {saturated:.0%} of "
                    "its values sit at a bound, where the gradient is almost zero. The "
                    "weights are too large for it (Glorot/Xavier suits tanh and sigmoid).",
                )
            )
        dead, units = s.get("dead_units", math.nan), s.get("units", math.nan)
        known = math.isfinite(dead) and math.isfinite(units) and units > 0
        if known and dead / units > dead_threshold:
            findings.append(
                Finding(
                    "dead",
                    record.layer,
                    f"{record.layer!r} ({record.activation}) has {int(dead)} of "
                    f"{int(units)} units dead ({dead / units:.0%}): exactly zero on "
                    "every recorded row, so they get no gradient. Check the "
                    "initialization (He suits ReLU) and the learning rate.",
                )
            )
    return findings
