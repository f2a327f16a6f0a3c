"""Gradient records and where they go: pandas, CSV, JSON Lines and TensorBoard.

The files a `GradientStats(log_dir=...)` writes grow by appending, like Keras's
`CSVLogger`: each record costs the same whatever came before. A write that fails is
reported once as a warning and that file is left alone; training never stops for it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from keras_initkit.stats.gradients import STATISTICS

COLUMNS = ("fit", "epoch", "batch", "step", "layer", "variable", "statistic", "value")
TENSORBOARD_SCALARS = ("gradient_norm", "gradient_rms", "update_ratio", "weight_norm")


@dataclasses.dataclass
class GradientRecord:
    """The statistics of one trainable variable over one record window of training.

    Attributes:
        fit: which `fit` call of the callback produced it (0, 1, ...).
        epoch: the epoch (0-based, as Keras numbers it).
        batch: the last training batch of the window, 0-based within the epoch.
        step: training steps run by the callback's `fit` calls up to the window's end.
        layer: the path of the layer owning the variable (`"outer/inner/dense"`).
        variable: the variable's name (`"kernel"`, `"bias"`, ...).
        stats: the statistics named in `keras_initkit.stats.gradients.STATISTICS`.
        edges: the `bins + 1` log-spaced histogram edges in |gradient|.
        counts: `bins + 2` counts: below `edges[0]` (exact zeros included), the bins,
            above `edges[-1]` (infinities included); None in a record whose window
            counted no histogram (`histogram_every`).
    """

    fit: int
    epoch: int
    batch: int
    step: int
    layer: str
    variable: str
    stats: dict[str, float]
    edges: np.ndarray
    counts: np.ndarray | None

    def rows(self) -> list[tuple[Any, ...]]:
        """One row per statistic, in `COLUMNS` order."""
        head = (self.fit, self.epoch, self.batch, self.step, self.layer, self.variable)
        return [(*head, name, self.stats[name]) for name in STATISTICS if name in self.stats]

    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON types (NaN and infinities become `None`)."""
        return {
            "fit": self.fit,
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "layer": self.layer,
            "variable": self.variable,
            "stats": {k: _json_float(v) for k, v in self.stats.items()},
            "edges": [float(e) for e in self.edges],
            "counts": None if self.counts is None else [float(c) for c in self.counts],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GradientRecord:
        stats = {k: math.nan if v is None else float(v) for k, v in data["stats"].items()}
        return cls(
            fit=data["fit"], epoch=data["epoch"], batch=data["batch"], step=data["step"],
            layer=data["layer"], variable=data["variable"], stats=stats,
            edges=np.asarray(data["edges"]),
            counts=None if data["counts"] is None else np.asarray(data["counts"]),
        )  # fmt: skip


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def to_dataframe(records: Iterable[GradientRecord]) -> Any:
    """A tidy pandas DataFrame with the columns `COLUMNS`."""
    try:
        import pandas as pd
    except ImportError as error:  # pragma: no cover - pandas is in the test extra
        raise ImportError("to_dataframe needs pandas: pip install pandas") from error
    rows = [row for record in records for row in record.rows()]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _csv_value(value: Any) -> Any:
    return repr(float(value)) if isinstance(value, float) and math.isfinite(value) else value


def write_csv(path: str | os.PathLike[str], records: Iterable[GradientRecord]) -> None:
    """Writes the tidy table of `records` to `path` (replacing it, atomically)."""
    from keras_initkit.stats.export import atomic_save

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8", newline="") as file:
            writer = csv.writer(file, lineterminator="\n")
            writer.writerow(COLUMNS)
            for record in records:
                writer.writerows([(*r[:-1], _csv_value(r[-1])) for r in record.rows()])

    atomic_save(path, write)


def write_json(
    path: str | os.PathLike[str], records: Iterable[GradientRecord], messages: list[str]
) -> None:
    """Writes every record (histograms included) and the warnings as one JSON document."""
    from keras_initkit.stats.export import atomic_write_text
    from keras_initkit.version import __version__

    payload = {
        "keras_initkit_version": __version__,
        "records": [r.to_json() for r in records],
        "warnings": list(messages),
    }
    atomic_write_text(path, json.dumps(payload, indent=1, allow_nan=False))


def load_json(path: str | os.PathLike[str]) -> tuple[list[GradientRecord], list[str]]:
    """Records and warnings from `write_json`'s file or a `gradient_stats.jsonl` stream."""
    with open(path, encoding="utf-8") as file:
        text = file.read()
    if str(path).endswith(".jsonl"):
        records, messages = [], []
        for line in text.splitlines():
            if line.strip():
                item = json.loads(line)
                if "warning" in item:
                    messages.append(item["warning"])
                else:
                    records.append(GradientRecord.from_json(item))
        return records, messages
    payload = json.loads(text)
    return [GradientRecord.from_json(r) for r in payload["records"]], payload["warnings"]


class LogDirSink:
    """Appends records to `gradient_stats.csv` and `gradient_stats.jsonl` in `log_dir`,
    and writes TensorBoard scalars and log10|g| histograms to `log_dir/gradients`."""

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        self.csv_path = os.path.join(log_dir, "gradient_stats.csv")
        self.jsonl_path = os.path.join(log_dir, "gradient_stats.jsonl")
        self._writer: Any = None
        self._failed: set[str] = set()

    def write(self, records: list[GradientRecord], messages: list[str]) -> None:
        self._guard("csv", self._append_csv, records)
        self._guard("jsonl", self._append_jsonl, records, messages)
        self._guard("tensorboard", self._tensorboard, records)

    def close(self) -> None:
        if self._writer is not None:
            self._guard("tensorboard", self._writer.close)
            self._writer = None

    def _guard(self, name: str, write: Any, *args: Any) -> None:
        if name in self._failed:
            return
        try:
            write(*args)
        except OSError as error:
            self._failed.add(name)
            warnings.warn(
                f"GradientStats: writing {name} output in {self.log_dir!r} failed ({error}); "
                "training continues without that file.",
                RuntimeWarning,
                stacklevel=3,
            )

    def _append_csv(self, records: list[GradientRecord]) -> None:
        os.makedirs(self.log_dir, exist_ok=True)
        new = not os.path.exists(self.csv_path) or os.path.getsize(self.csv_path) == 0
        with open(self.csv_path, "a", encoding="utf-8", newline="") as file:
            writer = csv.writer(file, lineterminator="\n")
            if new:
                writer.writerow(COLUMNS)
            for record in records:
                writer.writerows([(*r[:-1], _csv_value(r[-1])) for r in record.rows()])

    def _append_jsonl(self, records: list[GradientRecord], messages: list[str]) -> None:
        os.makedirs(self.log_dir, exist_ok=True)
        lines = [json.dumps(r.to_json(), allow_nan=False) for r in records]
        lines += [json.dumps({"warning": m}) for m in messages]
        with open(self.jsonl_path, "a", encoding="utf-8") as file:
            file.write("".join(line + "\n" for line in lines))

    def _tensorboard(self, records: list[GradientRecord]) -> None:
        if self._writer is None:
            from keras_initkit.stats.tensorboard import EventWriter

            self._writer = EventWriter(os.path.join(self.log_dir, "gradients"))
        for r in records:
            tag = f"{r.layer}/{r.variable}"
            for name in TENSORBOARD_SCALARS:
                value = r.stats[name]
                if math.isfinite(value):
                    self._writer.add_scalar(f"{tag}/{name}", value, r.step)
            if r.counts is None:  # a window without histograms (`histogram_every`)
                continue
            self._writer.add_histogram(
                f"{tag}/log10_abs_gradient",
                np.log10(r.edges),
                r.counts[1:-1],
                r.step,
                under=float(r.counts[0]),
                over=float(r.counts[-1]),
            )
        self._writer.flush()
