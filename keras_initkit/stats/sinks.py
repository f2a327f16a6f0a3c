"""Where records go on disk: files that grow by appending, at a constant cost per record.

- `activation_stats.csv`: the tidy table (as `ActivationStats.to_dataframe`), rows
  appended and flushed per record, like Keras's `CSVLogger`;
- `activation_stats.jsonl`: JSON Lines, one record per line (histograms included) and one
  `{"warning": ...}` line per warning; `keras_initkit.stats.load_json` reads it;
- `activations/`: TensorBoard scalars and histograms, appended to one event file and
  flushed to the operating system per record; `fsync`ed once, at close.

The CSV and JSON Lines files are created (emptied) by the first `fit` of a callback and
appended to by its later ones; each is opened, appended to and closed per record. The
event file stays open until `close()` (called at the end of each `fit`, by `detach()`,
or when an interrupted `fit`'s instrumentation is removed); the next `fit` opens a new
one. A crash loses at most the record being
written; a torn last line is skipped by `load_json`.

`Sinks` groups them with the failure policy: the first `OSError` (disk full, directory
removed, permissions changed) is reported once, writing stops, training goes on.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from keras_initkit.stats.export import COLUMNS, tidy_rows
from keras_initkit.stats.record import ActivationRecord

if TYPE_CHECKING:
    import keras

CSV_NAME = "activation_stats.csv"
JSONL_NAME = "activation_stats.jsonl"
TENSORBOARD_DIR = "activations"
_SCALARS = ("mean", "std", "min", "max", "zero_fraction", "saturated_fraction")


def check_log_dir(log_dir: Any) -> str | None:
    """`log_dir` as a path whose directory exists or can be created, and is writable.

    Raises `TypeError`/`ValueError` naming `log_dir` otherwise. Nothing is created.
    """
    if log_dir is None:
        return None
    if not isinstance(log_dir, (str, os.PathLike)):
        raise TypeError(f"log_dir must be a path (str or os.PathLike) or None; got {log_dir!r}")
    path = os.fspath(log_dir)
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"log_dir must be a non-empty path (use '.' for the working "
                         f"directory); got {log_dir!r}")
    absolute = os.path.abspath(path)
    probe = absolute
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise ValueError(f"log_dir must be a directory or a path that can be created; "
                         f"{probe!r} is a file (log_dir={path!r})")
    if not os.access(probe, os.W_OK | os.X_OK):
        what = "directory" if probe == absolute else "parent directory"
        raise ValueError(f"log_dir: the {what} {probe!r} is not writable (log_dir={path!r})")
    return path


def remove_stale_temporaries(log_dir: str) -> None:
    """Deletes `.tmp-*` files an atomic write killed mid-way left in `log_dir`."""
    for name in os.listdir(log_dir):
        if name.startswith(".tmp-"):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(log_dir, name))


class CsvSink:
    """Appends the tidy rows of each record to `path` (a header first, when new)."""

    def __init__(self, path: str) -> None:
        self.path = path
        with open(path, "w", encoding="utf-8", newline="") as file:
            csv.writer(file, lineterminator="\n").writerow(COLUMNS)

    def write(self, records: list[ActivationRecord], warnings: list[str]) -> None:
        with open(self.path, "a", encoding="utf-8", newline="") as file:
            writer = csv.writer(file, lineterminator="\n")
            for row in tidy_rows(records):
                value = row[-1]
                writer.writerow((*row[:-1], repr(float(value)) if math.isfinite(value) else value))

    def close(self) -> None:
        pass


class JsonLinesSink:
    """Appends one JSON object per record and per warning to `path`."""

    def __init__(self, path: str) -> None:
        from keras_initkit.version import __version__

        self.path = path
        with open(path, "w", encoding="utf-8") as file:
            file.write(json.dumps({"keras_initkit_version": __version__}) + "\n")

    def write(self, records: list[ActivationRecord], warnings: list[str]) -> None:
        lines = [json.dumps(r.to_json(), allow_nan=False) for r in records]
        lines += [json.dumps({"warning": w}) for w in warnings]
        with open(self.path, "a", encoding="utf-8") as file:
            file.write("".join(line + "\n" for line in lines))

    def close(self) -> None:
        pass


class TensorBoardSink:
    """Scalars and a histogram per record, appended to one TensorBoard event file."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.writer: Any = None  # opened at the first record, closed by close()

    def write(self, records: list[ActivationRecord], warnings: list[str]) -> None:
        if self.writer is None:
            from keras_initkit.stats.tensorboard import EventWriter

            self.writer = EventWriter(self.directory, auto_flush=False)
        for step, group in itertools.groupby(records, key=lambda r: r.step):
            with self.writer.one_event(step):  # one event per read: two checksums
                for record in group:
                    self._add(record)
        self.writer.flush_to_os()  # one flush per read; fsync only at close

    def _add(self, record: ActivationRecord) -> None:
        for name in _SCALARS:
            value = record.stats[name]
            if math.isfinite(value):
                self.writer.add_scalar(f"{record.layer}/{name}", value, record.step)
        counts = record.counts
        if counts is None:  # a window without a histogram (`histogram_every`)
            return
        self.writer.add_histogram(
            f"{record.layer}/activations",
            record.edges,
            counts[1:-1],
            record.step,
            under=float(counts[0]),
            over=float(counts[-1]),
            minimum=record.stats["min"],
            maximum=record.stats["max"],
        )

    def close(self) -> None:
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.close()


class Sinks:
    """The files of one `log_dir`; after the first write error, nothing more is written."""

    def __init__(self, log_dir: str, report: Callable[[str], None]) -> None:
        self.log_dir = log_dir
        self.report = report
        self.sinks: list[Any] = []
        self.failed = False
        self._guarded(self._open)

    def _open(self) -> None:
        os.makedirs(self.log_dir, exist_ok=True)
        remove_stale_temporaries(self.log_dir)
        self.sinks = [
            CsvSink(os.path.join(self.log_dir, CSV_NAME)),
            JsonLinesSink(os.path.join(self.log_dir, JSONL_NAME)),
        ]
        self.sinks.append(TensorBoardSink(os.path.join(self.log_dir, TENSORBOARD_DIR)))

    def write(self, records: list[ActivationRecord], warnings: list[str]) -> None:
        if not self.failed:
            self._guarded(lambda: [sink.write(records, warnings) for sink in self.sinks])

    def close(self) -> None:
        """Closes open files (the event file); a later `write` opens a new event file."""
        for sink in self.sinks:
            with contextlib.suppress(OSError):
                sink.close()

    def _guarded(self, action: Callable[[], Any]) -> None:
        try:
            action()
        except OSError as error:
            self.failed = True
            self.close()
            self.sinks = []
            self.report(
                f"writing to log_dir {self.log_dir!r} failed ({error}); statistics are no "
                "longer written to disk (they are still kept in .records), training goes on."
            )


def is_chief(model: keras.Model) -> bool:
    """Whether this process writes files: process 0 of a multi-process run, else True.

    JAX (`keras.distribution` across processes): `jax.process_index() == 0`.
    TensorFlow multi-worker (`tf.distribute`): the `chief` task, or worker 0 when the
    cluster has no chief (TensorFlow's own rule). torch: rank 0 when
    `torch.distributed` is initialized.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return int(jax.process_index()) == 0
    if backend == "torch":
        import torch.distributed as dist

        return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
    if backend == "tensorflow":
        strategy = getattr(model, "distribute_strategy", None)
        resolver = getattr(strategy, "cluster_resolver", None)
        task_type = getattr(resolver, "task_type", None)
        if task_type is None:
            return True
        if task_type == "chief" or resolver is None:
            return True
        spec = resolver.cluster_spec().as_dict() if hasattr(resolver, "cluster_spec") else {}
        return task_type == "worker" and int(resolver.task_id or 0) == 0 and "chief" not in spec
    return True
