"""Turning one read of per-layer statistics into findings stated in words.

The conditions are the classic lessons: symmetric units (zero or constant weights make every
unit of a layer compute the same function), activations that vanish or explode with depth
(weights too small or too large for the depth), saturated tanh/sigmoid units (gradients
through them vanish), dead ReLU units (never fire, never learn), and NaN/Inf values.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any


@dataclasses.dataclass(frozen=True)
class Finding:
    """One diagnosed condition: `condition` is one of `CONDITIONS`.

    Attributes:
        condition: what was found.
        layer: the layer it is reported at (the first one, where several are).
        message: a full sentence: what, where, and what to do.
        summary: a few words for tables (`"87% of values saturated"`).
        layers: every layer with the condition, in forward order.
    """

    condition: str
    layer: str
    message: str
    summary: str = ""
    layers: tuple[str, ...] = ()


CONDITIONS = ("nonfinite", "symmetric", "identical", "collapsed", "vanishing", "exploding",
              "saturated", "dead", "nonfinite_loss")

# Outputs whose std says nothing about depth: their scale is set by construction.
# `linear` covers layers without a nonlinearity (projections, LayerScale's deliberate
# 1e-6 start, normalization); softmax's std is set by the number of classes.
NOT_COMPARED = frozenset({"linear", "softmax", "log_softmax"})

# Units of a layer count as identical when every unit's output is within this fraction of
# the layer's largest |value| of the first unit's (float rounding of equal weights stays
# far below it; a collapsed but random layer's units differ by about their own size).
SYMMETRY_RTOL = 1e-5
# Outputs whose units may start identical harmlessly: a zero-initialized classifier head is
# common, and the targets break its symmetry.
SYMMETRY_EXEMPT = frozenset({"softmax", "log_softmax"})


def _g(value: float) -> str:
    return f"{value:.3g}"


def diagnose(
    records: list[Any],
    *,
    dead_threshold: float = 0.5,
    saturated_threshold: float = 0.5,
    std_ratio: float = 100.0,
    collapsed_std: float | None = None,
) -> list[Finding]:
    """Findings for one read of per-layer statistics, in words.

    The one diagnosis of the package: `ActivationStats`, `inspect`, `keras-initkit study`
    and `keras-initkit demo` all call it, with their thresholds.

    Like is compared with like: a layer's std is compared with the first layer *of the
    same activation* (hidden tanh layers with the first tanh layer, GELU with GELU), and
    outputs whose scale is set by construction are never compared (`NOT_COMPARED`:
    linear outputs such as LayerScale's deliberately tiny start, softmax outputs).

    Args:
        records: one item per layer, shallowest first, each with `.layer`, `.activation`
            and `.stats` (an `ActivationRecord`, or any object with those); `.step` is
            used in messages when present.
        dead_threshold: report a layer when more than this fraction of its units never
            fired (were exactly zero on every recorded row).
        saturated_threshold: report a bounded activation (tanh, sigmoid, ...) when more
            than this fraction of its values sit at a bound.
        std_ratio: report vanishing (exploding) activations when a layer's std falls
            below 1/`std_ratio` (rises above `std_ratio`) times the first comparable
            layer's.
        collapsed_std: if given, comparable layers whose std is below it are reported as
            `collapsed` (instead of `vanishing`); all-zero stds as `identical`.

    A record whose units are all identical (`symmetric_units`: its stats' `distinct_units`
    is 1, or its `unit_spread` is within `SYMMETRY_RTOL` of its scale) is reported as
    `symmetric`, except softmax outputs; that finding replaces `identical` and `dead` for
    the layer.

    Returns:
        A list of `Finding`, at most one per condition and layer.

    Example:
    >>> import numpy as np
    >>> from keras_initkit.stats.record import ActivationRecord
    >>> def rec(name, std, activation="tanh"):
    ...     stats = {"std": std, "nan_count": 0.0, "inf_count": 0.0}
    ...     return ActivationRecord(0, 0, 9, 10, name, activation, stats, np.zeros(2),
    ...                             np.zeros(3))
    >>> findings = diagnose([rec("dense", 0.2), rec("dense_1", 0.01), rec("dense_2", 1e-4),
    ...                      rec("output", 1e-6, "softmax")])
    >>> found = [(f.condition, f.layer) for f in findings]
    >>> found
    [('vanishing', 'dense_2')]

    Reference:
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html)
    - [He et al., 2015](https://arxiv.org/abs/1502.01852)
    """
    findings: list[Finding] = []
    first_nonfinite = True
    for record in records:
        s = record.stats
        nan, inf = s.get("nan_count", 0.0), s.get("inf_count", 0.0)
        if nan + inf > 0:
            which = "the first layer in forward order to do so" if first_nonfinite else "after"
            first_nonfinite = False
            step = getattr(record, "step", None)
            findings.append(Finding(
                "nonfinite", record.layer,
                f"{record.layer!r} ({record.activation}) produced {int(nan)} NaN and "
                f"{int(inf)} Inf values" + (f" by step {step}" if step else "")
                + f" ({which}).",
                f"{int(nan + inf)} non-finite values", (record.layer,)))
    groups: dict[str, list[Any]] = {}
    for record in records:
        if record.activation not in NOT_COMPARED:
            groups.setdefault(record.activation, []).append(record)
    for activation, group in groups.items():
        findings += _depth_findings(activation, group, std_ratio, collapsed_std)
    symmetric = _symmetry_findings(records)
    covered = {f.layer for f in symmetric}
    # `identical` (std 0 across a whole stack) says less than `symmetric` per layer.
    findings = symmetric + [f for f in findings
                            if f.condition != "identical" or not set(f.layers) <= covered]
    identical = {f.layer for f in findings if f.condition == "identical"}
    for record in records:
        s = record.stats
        saturated = s.get("saturated_fraction", math.nan)
        if math.isfinite(saturated) and saturated > saturated_threshold:
            findings.append(Finding(
                "saturated", record.layer,
                f"{record.layer!r} ({record.activation}) is saturated: {saturated:.0%} of "
                "its values sit at a bound, where the gradient is almost zero. The "
                "weights are too large for it (Glorot/Xavier suits tanh and sigmoid).",
                f"{saturated:.0%} of values saturated", (record.layer,)))
        dead, units = s.get("dead_units", math.nan), s.get("units", math.nan)
        known = math.isfinite(dead) and math.isfinite(units) and units > 0
        if (known and dead / units > dead_threshold and not identical
                and record.layer not in covered):  # all-zero symmetric layers: said
            findings.append(Finding(
                "dead", record.layer,
                f"{record.layer!r} ({record.activation}) has {int(dead)} of "
                f"{int(units)} units dead ({dead / units:.0%}): exactly zero on "
                "every recorded row, so they get no gradient. Check the "
                "initialization (He suits ReLU) and the learning rate.",
                f"{int(dead)} of {int(units)} units dead", (record.layer,)))
    order = {c: i for i, c in enumerate(CONDITIONS)}
    return sorted(findings, key=lambda f: order[f.condition])


def symmetric_units(stats: dict[str, float]) -> bool:
    """Whether the statistics say every unit of a layer computed the same function.

    Uses `distinct_units` (the exact count of `keras_initkit.stats.symmetry`, as `inspect`
    reports it) when present, else `unit_spread` (the in-step `max |u_j - u_0|` of
    `ActivationStats`) against `SYMMETRY_RTOL` times the layer's largest |value|. Layers
    with fewer than two units are never symmetric.
    """
    units = stats.get("units", math.nan)
    if not (math.isfinite(units) and units > 1):
        return False
    distinct = stats.get("distinct_units", math.nan)
    if math.isfinite(distinct):
        return distinct == 1
    spread = stats.get("unit_spread", math.nan)
    low, high = stats.get("min", math.nan), stats.get("max", math.nan)
    if not (math.isfinite(spread) and math.isfinite(low) and math.isfinite(high)):
        return False
    return spread <= SYMMETRY_RTOL * max(abs(low), abs(high))


def _symmetry_findings(records: list[Any]) -> list[Finding]:
    """One `symmetric` finding per layer whose units are all identical."""
    findings = []
    for record in records:
        if record.activation in SYMMETRY_EXEMPT or not symmetric_units(record.stats):
            continue
        units = int(record.stats["units"])
        zeros = record.stats.get("zero_fraction", math.nan) == 1.0
        findings.append(Finding(
            "symmetric", record.layer,
            f"symmetric: all {units} units of {record.layer!r} compute the same function"
            + (" (exactly 0 everywhere)" if zeros else "") + " — zero or constant "
            "initialization" + (" (or units that all died: then check the learning "
                                "rate)" if zeros else "")
            + "; with equal weights they also get equal gradients and stay identical, so "
            "the layer is in effect one unit wide. Use a random initializer "
            "(keras_initkit.initializer_for, or keras_initkit.reinitialize(model)).",
            f"all {units} units identical", (record.layer,)))
    return findings


def _depth_findings(
    activation: str, group: list[Any], std_ratio: float, collapsed_std: float | None
) -> list[Finding]:
    """Vanishing/exploding (and collapsed/identical) among layers of one activation."""
    stds = [(r, r.stats.get("std", math.nan)) for r in group]
    finite = [(r, v) for r, v in stds if math.isfinite(v)]
    if not finite:
        return []
    last, last_std = finite[-1]
    if collapsed_std is not None and all(v == 0 for _, v in finite):
        names = tuple(r.layer for r, _ in finite)
        return [Finding(
            "identical", names[0],
            f"every {activation} output is the same value (std 0 in all {len(names)} "
            "layers, e.g. a constant initialization): no unit can learn anything the "
            "others do not.", "std 0: all outputs identical", names)]
    if collapsed_std is not None:
        low = [(r, v) for r, v in finite if v < collapsed_std]
        if low:
            names = tuple(r.layer for r, _ in low)
            base_record, base = finite[0]
            return [Finding(
                "collapsed", r.layer,
                f"{activation} activations collapse: std {_g(base)} at "
                f"{base_record.layer!r} falls below {collapsed_std:g} by {names[0]!r} "
                f"({_g(last_std)} at {last.layer!r}); later layers see no signal and get "
                "no gradient. Use the initializer the activation calls for "
                "(keras_initkit.initializer_for) or keras_initkit.reinitialize(model).",
                f"activations collapsed to ~0 (std {v:.2g})", names)
                for r, v in low]
    reference = next(((r, v) for r, v in finite if v > 0), None)
    if reference is None:
        return []
    first, base = reference
    findings = []
    low = [(r, v) for r, v in finite if v < base / std_ratio]
    high = [(r, v) for r, v in finite if v > base * std_ratio]
    if low:
        where, value = low[0]
        findings.append(Finding(
            "vanishing", where.layer,
            f"{activation} activations vanish with depth: std falls from {_g(base)} at "
            f"{first.layer!r} to {_g(value)} at {where.layer!r}"
            + (f" and {_g(last_std)} at {last.layer!r}" if last is not where else "")
            + f" (below 1/{_g(std_ratio)} of the first {activation} layer's). The weights "
            "are too small for this depth: use the initializer the activation calls for "
            "(keras_initkit.initializer_for) or keras_initkit.reinitialize(model).",
            f"std {_g(value)}, below 1/{_g(std_ratio)} of {first.layer!r}'s",
            tuple(r.layer for r, _ in low)))
    if high:
        where, value = high[0]
        findings.append(Finding(
            "exploding", where.layer,
            f"{activation} activations explode with depth: std grows from {_g(base)} at "
            f"{first.layer!r} to {_g(value)} at {where.layer!r} (above {_g(std_ratio)} "
            f"times the first {activation} layer's). The weights are too large for this "
            "depth: use keras_initkit.initializer_for or reinitialize(model).",
            f"std {_g(value)}, above {_g(std_ratio)} times {first.layer!r}'s",
            tuple(r.layer for r, _ in high)))
    return findings
