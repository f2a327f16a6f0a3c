"""One record of the activation-statistics callback: one layer, one read window."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

# The scalar statistics of a record, in the order tables and files list them.
STATISTICS = (
    "mean",
    "std",
    "min",
    "max",
    "zero_fraction",
    "saturated_fraction",
    "dead_units",
    "units",
    "unit_spread",
    "nan_count",
    "inf_count",
    "count",
    "batches",
)


@dataclasses.dataclass
class ActivationRecord:
    """The statistics of one layer's output over one read window of training.

    Attributes:
        fit: which `fit` call of this callback produced it (0, 1, ...).
        epoch: the epoch, as Keras numbers it (0-based; `initial_epoch` respected).
        batch: the last training batch of the window, 0-based within the epoch.
        step: training steps run by this callback's `fit` calls up to the end of the window.
        layer: the layer's path in the model, `"outer/inner/dense"` for nested models.
        activation: the name of the nonlinearity the layer's output comes from.
        stats: `mean`, `std`, `min`, `max` (finite values only), `zero_fraction`,
            `saturated_fraction` (NaN where the activation has no bound), `dead_units`
            (units that were exactly zero on every recorded row), `units`, `unit_spread`
            (the largest |u_j - u_0| between a unit's output and the first unit's: 0 when
            all units are identical, see `keras_initkit.stats.symmetry`), `nan_count`,
            `inf_count`, `count` (values folded) and `batches` (batches folded).
        edges: the `bins + 1` histogram edges.
        counts: `bins + 2` counts: below `edges[0]`, the bins, above `edges[-1]`; None
            in a record whose window counted no histogram (`histogram_every`).
    """

    fit: int
    epoch: int
    batch: int
    step: int
    layer: str
    activation: str
    stats: dict[str, float]
    edges: np.ndarray
    counts: np.ndarray | None

    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON types (NaN and infinities become `None`)."""
        return {
            "fit": self.fit,
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "layer": self.layer,
            "activation": self.activation,
            "stats": {k: _json_float(v) for k, v in self.stats.items()},
            "histogram": {
                "edges": [float(e) for e in self.edges],
                "counts": None if self.counts is None else [float(c) for c in self.counts],
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ActivationRecord:
        """The inverse of `to_json`."""
        return cls(
            fit=int(data["fit"]),
            epoch=int(data["epoch"]),
            batch=int(data["batch"]),
            step=int(data["step"]),
            layer=str(data["layer"]),
            activation=str(data["activation"]),
            stats={k: float("nan") if v is None else float(v) for k, v in data["stats"].items()},
            edges=np.asarray(data["histogram"]["edges"], dtype="float64"),
            counts=_array_or_none(data["histogram"]["counts"]),
        )


def _array_or_none(values: list[float] | None) -> np.ndarray | None:
    return None if values is None else np.asarray(values, dtype="float64")


def _json_float(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
