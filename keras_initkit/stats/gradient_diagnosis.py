"""Gradient diagnoses in words: vanishing or exploding towards the input, update/weight
ratios far from 1e-3, non-finite gradients, dead layers.

Each finding names its condition and the layers concerned; the callback reports each
(condition, layer) once. Layer-level values combine a layer's weight matrices (its
variables with two or more dimensions, kernels and embeddings; all its variables when it
has none): gradient RMS over their elements, and the update/weight ratio
`||update|| / ||weights||` over them together. All gradients are weight gradients dL/dW.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from keras_initkit.stats.gradient_output import GradientRecord


@dataclasses.dataclass(frozen=True)
class GradientFinding:
    """One diagnosis: `condition` is `"vanishing"`, `"exploding"`, `"update_too_small"`,
    `"update_too_large"`, `"nonfinite"`, `"dead"` or `"optimizer_not_applied"` (the
    model's train_step never applied `model.optimizer`); `layers` are the layers
    concerned."""

    condition: str
    layers: tuple[str, ...]
    message: str


@dataclasses.dataclass
class _Layer:
    name: str
    elements: float = 0.0
    grad_sumsq: float = 0.0
    weight_sumsq: float = 0.0
    update_sumsq: float = 0.0
    zeros: float = 0.0
    total: float = 0.0  # every variable's elements x steps, for `dead`
    matrices: bool = False

    @property
    def rms(self) -> float:
        return math.sqrt(self.grad_sumsq / self.elements) if self.elements else math.nan

    @property
    def ratio(self) -> float:
        if not self.weight_sumsq > 0:
            return math.nan
        return math.sqrt(self.update_sumsq / self.weight_sumsq)


def _layers(records: Sequence[GradientRecord]) -> list[_Layer]:
    """Per layer, in model order, the sums over its weight matrices (or all variables)."""
    by_name: dict[str, _Layer] = {}
    has_matrix = {r.layer for r in records if _matrix(r)}
    for r in records:
        layer = by_name.setdefault(r.layer, _Layer(r.layer))
        s = r.stats
        n = s["size"] * s["steps"]
        layer.zeros += s["gradient_zero_fraction"] * n
        layer.total += n
        if r.layer in has_matrix and not _matrix(r):
            continue
        layer.matrices = r.layer in has_matrix
        layer.elements += n
        layer.grad_sumsq += s["gradient_rms"] ** 2 * n
        layer.weight_sumsq += s["weight_norm"] ** 2 * s["steps"]
        layer.update_sumsq += s["update_norm"] ** 2 * s["steps"]
    return list(by_name.values())


def _matrix(record: GradientRecord) -> bool:
    return record.stats["ndim"] >= 2


def diagnose(
    records: Sequence[GradientRecord],
    gradient_ratio: float = 100.0,
    update_ratio_bounds: tuple[float, float] = (1e-5, 1e-1),
) -> list[GradientFinding]:
    """Findings for the records of one window (one record per variable).

    Args:
        records: the window's records, in model order.
        gradient_ratio: vanishing when the first layer's weight-gradient RMS is below
            1/`gradient_ratio` of the last hidden layer's (the layer before the output
            layer), exploding when above `gradient_ratio` times it. Needs three layers
            with weight matrices.
        update_ratio_bounds: `(low, high)`: layers whose update/weight ratio is outside
            are named (below: the layer barely learns; above: unstable).
    """
    findings: list[GradientFinding] = []
    if not records:
        return findings
    step = records[0].step
    bad = [r for r in records if r.stats["gradient_nonfinite"] > 0]
    if bad:
        first = bad[0]
        findings.append(GradientFinding(
            "nonfinite", (first.layer,),
            f"non-finite gradients (NaN or Inf) at step {step} in {len(bad)} variable(s); "
            f"the first is {first.layer}/{first.variable} "
            f"({first.stats['gradient_nonfinite']:.0f} values).",
        ))  # fmt: skip
    layers = _layers(records)
    dead = [layer.name for layer in layers if layer.total > 0 and layer.zeros == layer.total]
    if dead:
        findings.append(GradientFinding(
            "dead", tuple(dead),
            f"dead layers: the gradient of every variable of {', '.join(dead)} was exactly "
            f"zero on every recorded step of the window ending at step {step}.",
        ))  # fmt: skip
    deep = [layer for layer in layers if layer.matrices and math.isfinite(layer.rms)]
    if len(deep) >= 3 and not bad:
        bottom, top = deep[0], deep[-2]
        if top.rms > 0:
            ratio = bottom.rms / top.rms
            words = _depth_words(ratio, gradient_ratio)
            if words is not None:
                condition, phrase = words
                findings.append(GradientFinding(
                    condition, (bottom.name,),
                    f"gradients {phrase} towards the input: at step {step} the weight-gradient "
                    f"RMS of the first layer ({bottom.name}, {bottom.rms:.2g}) is "
                    f"{_times(ratio)} that of the last hidden layer ({top.name}, "
                    f"{top.rms:.2g}).",
                ))  # fmt: skip
    low, high = update_ratio_bounds
    finite = [layer for layer in layers if math.isfinite(layer.ratio)]
    for condition, chosen, bound in (
        ("update_too_small", [layer for layer in finite if layer.ratio < low],
         f"below {low:g}: these layers barely learn"),
        ("update_too_large", [layer for layer in finite if layer.ratio > high],
         f"above {high:g}: these layers' steps are too large (unstable)"),
    ):  # fmt: skip
        if chosen:
            named = ", ".join(f"{layer.name} ({layer.ratio:.1e})" for layer in chosen)
            findings.append(GradientFinding(
                condition, tuple(layer.name for layer in chosen),
                f"update/weight ratio far from 1e-3 at step {step} ({bound}): {named}.",
            ))  # fmt: skip
    return findings


def _depth_words(ratio: float, limit: float) -> tuple[str, str] | None:
    if ratio < 1.0 / limit:
        return "vanishing", "vanish"
    if ratio > limit:
        return "exploding", "explode"
    return None


def _times(ratio: float) -> str:
    return f"1/{1 / ratio:.3g} of" if ratio < 1 else f"{ratio:.3g} times"
