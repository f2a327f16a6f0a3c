"""`ActivationStats`: per-layer activation statistics recorded inside the training step."""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import keras
import numpy as np

from keras_initkit.initializers._checks import check_choice
from keras_initkit.stats import export, targets
from keras_initkit.stats.accumulator import Layout, finalize
from keras_initkit.stats.diagnosis import Finding, diagnose
from keras_initkit.stats.instrument import Instrumentation, Slot
from keras_initkit.stats.record import ActivationRecord
from keras_initkit.stats.summary import SATURATION_BOUNDS

_NEVER = 3.0e38


class ActivationStatsWarning(UserWarning):
    """A diagnosis from `ActivationStats` (vanishing, saturated, dead, NaN/Inf)."""


class ActivationStats(keras.callbacks.Callback):
    """Records per-layer activation statistics during `fit`, inside the training step.

    Attach it to `model.fit` on any model (Sequential, Functional, subclassed, nested),
    on any backend. For each watched layer it records the mean, std, min and max of its
    output (finite values), the fraction of values exactly zero, the fraction saturated
    (within 1% of the bound of tanh, sigmoid, hard_sigmoid, softsign), the units dead over
    the window (exactly zero on every recorded row), NaN and Inf counts, and a histogram
    with under/overflow bins over a range that fits the activation.

    How it records: when training begins, each watched layer gets a float32 accumulator
    and its `call` is wrapped (on the instance) to fold its output into it with
    `keras.ops` reductions, inside the compiled training step, on the training batches.
    Only a few floats per layer reach the host, when a record is due. When training ends
    everything is removed: the model saves and loads as the original. Validation,
    `evaluate` and `predict` are never recorded.

    What a record covers: training runs in windows of `every` batches (or one epoch).
    Each window folds its last `batches_per_record` training batches (all of them with
    `batches_per_record="all"`), on the first `max_rows` rows of each (all rows by
    default); a record is read at the end of the window. The default, one batch in 50,
    keeps the cost to a few percent of a step (see `benchmarks/stats_overhead.py`).
    With `steps_per_execution=k`, windows end on multiples of `k`. Where the width of a
    layer's output cannot be read before training (layers of subclassed models), the
    first training step of the first `fit` traces the model to learn it and is not
    recorded.

    Args:
        every: record every `every` training batches (int), or `"epoch"` for one record
            per epoch. Defaults to `50`.
        batches_per_record: how many batches of each window are folded into its record,
            an int or `"all"`. Defaults to `1`.
        layers: which layers to watch: `None` (activation layers and layers with a
            non-linear `activation=`), a list of layer names, paths (`"outer/dense"`) or
            classes, or a predicate `layer -> bool`.
        max_rows: fold only the first `max_rows` rows of each batch (`None`: all rows).
            Under `tf.distribute`, each replica folds the first `max_rows` rows of its
            share of the batch.
        bins: number of histogram bins between the range's edges. Defaults to `50`.
        histogram_range: `(low, high)` for every layer, or `None` for each activation's
            own range ([-1, 1] for tanh, [0, 1] for sigmoid, [0, 5] for ReLU, ...).
        saturation_threshold: how close to a bound counts as saturated, as a fraction of
            the half-range. Defaults to `0.99`.
        dead_threshold: warn when more than this fraction of a layer's units is dead.
        saturated_threshold: warn when more than this fraction of a layer's values is
            saturated.
        std_ratio: warn when a layer's std is below 1/`std_ratio` (vanishing) or above
            `std_ratio` (exploding) times the first watched layer's std.
        on_nan: what a NaN or Inf activation does: `"warn"` (default), `"stop"` (stop
            training cleanly; every step is then checked for non-finite values, and the
            record names the first layer in forward order that produced them) or
            `"ignore"`.
        log_dir: if given, `activation_stats.csv` and `activation_stats.json` there are
            rewritten atomically at every record, and TensorBoard scalars and histograms
            go to `log_dir/activations`.
        warn: whether to emit diagnoses as `ActivationStatsWarning`s (once per condition
            and layer). They are collected in `.warnings` either way.

    Example:
    >>> model = keras.Sequential([keras.Input((8,)),
    ...                           keras.layers.Dense(16, "tanh", name="hidden"),
    ...                           keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse")
    >>> stats = keras_initkit.callbacks.ActivationStats(every=2)
    >>> _ = model.fit(np.ones((32, 8)), np.ones((32, 1)), batch_size=8, epochs=1,
    ...               verbose=0, callbacks=[stats])
    >>> [(r.step, r.layer) for r in stats.records]
    [(2, 'hidden'), (4, 'hidden')]
    >>> frame = stats.to_dataframe()
    >>> sorted(frame.columns)
    ['activation', 'batch', 'epoch', 'fit', 'layer', 'statistic', 'step', 'value']

    Reference:
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html)
      (activation statistics across depth, saturation)
    - [He et al., 2015](https://arxiv.org/abs/1502.01852) (ReLU networks)
    """

    def __init__(
        self,
        every: int | str = 50,
        batches_per_record: int | str = 1,
        layers: targets.LayerSelection = None,
        max_rows: int | None = None,
        bins: int = 50,
        histogram_range: tuple[float, float] | None = None,
        saturation_threshold: float = 0.99,
        dead_threshold: float = 0.5,
        saturated_threshold: float = 0.5,
        std_ratio: float = 100.0,
        on_nan: str = "warn",
        log_dir: str | os.PathLike[str] | None = None,
        warn: bool = True,
    ) -> None:
        super().__init__()
        self.every = _check_count("every", every, allowed="epoch")
        self.batches_per_record = _check_count("batches_per_record", batches_per_record, "all")
        self.layers = layers
        self.max_rows = None if max_rows is None else _check_count("max_rows", max_rows)
        self.bins = _check_count("bins", bins)
        if histogram_range is not None:
            low, high = (float(v) for v in histogram_range)
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(
                    "histogram_range must be (low, high) with finite low < high; "
                    f"got {histogram_range!r}"
                )
            histogram_range = (low, high)
        self.histogram_range = histogram_range
        for name, value in (
            ("saturation_threshold", saturation_threshold),
            ("dead_threshold", dead_threshold),
            ("saturated_threshold", saturated_threshold),
        ):
            if not 0.0 < float(value) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1]; got {value!r}")
        if not float(std_ratio) > 1.0:
            raise ValueError(f"std_ratio must be greater than 1; got {std_ratio!r}")
        self.saturation_threshold = float(saturation_threshold)
        self.dead_threshold = float(dead_threshold)
        self.saturated_threshold = float(saturated_threshold)
        self.std_ratio = float(std_ratio)
        self.on_nan = check_choice("on_nan", on_nan, ("warn", "stop", "ignore"))
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.warn = bool(warn)
        self.records: list[ActivationRecord] = []
        self.warnings: list[str] = []
        self.stopped_by: Finding | None = None
        self._warned: set[tuple[str, str]] = set()
        self._fits = 0
        self._step = 0
        self._widths: dict[int, int] = {}
        self._instrumentation: Instrumentation | None = None
        self._writer: Any = None

    # -- the fit lifecycle --------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        model = self.model
        self._fit = self._fits
        self._fits += 1
        self.stopped_by = None
        slots = [self._slot(t) for t in targets.select(model, self.layers)]
        self._instrumentation = Instrumentation(model, slots, self.on_nan == "stop")
        self._instrumentation.install()
        self._pending = self._instrumentation.needs_shapes
        if not self._pending:
            self._instrumentation.allocate()
        self._spe = int(getattr(model, "steps_per_execution", 1) or 1)
        self._epoch, self._last_batch, self._bucket = 0, -1, 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch, self._last_batch, self._bucket = epoch, -1, 0
        if not self._pending:
            self.model  # noqa: B018 - on JAX, reading the property syncs the model state
            self._start_window()

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        inst = self._instrumentation
        if inst is not None and inst.control is None and not self._pending:
            low, high = self._window
            inst.fold_now = low <= self._tick < high  # torch: the host decides

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        steps = batch - self._last_batch
        self._last_batch = batch
        self._step += steps
        if self._pending:  # the first step has shown every output's shape
            self._pending = False
            self.model  # noqa: B018 - sync the state (JAX) before adding variables
            inst = self._instrumentation
            inst.learn_shapes()
            for slot in inst.slots:
                self._widths[id(slot.target.layer)] = slot.layout.units
            inst.allocate()  # and rebuilds the train function
            self._start_window()
            return
        self._tick += steps
        if self.on_nan == "stop" and not _finite_loss(logs):
            self._record(batch, reason="non-finite loss")
            return
        if self.every != "epoch" and (batch + 1) // self.every > self._bucket:
            self._bucket = (batch + 1) // self.every
            self._record(batch)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._pending or self._instrumentation is None:
            return
        if self._tick > 0 and not self.model.stop_training:
            self._record(self._last_batch)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._instrumentation is not None:
            self.model  # noqa: B018 - sync (JAX) before the variables go
            self._instrumentation.remove()
            self._instrumentation = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- results ------------------------------------------------------------------------
    def to_dataframe(self) -> Any:
        """The records as a tidy pandas DataFrame.

        Columns: `fit, epoch, batch, step, layer, activation, statistic, value`, one row
        per record and statistic (histograms are in `.records` and the JSON file).
        """
        return export.to_dataframe(self.records)

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Writes the tidy table (as `to_dataframe`) to `path`, atomically."""
        export.atomic_write_text(path, export.csv_text(self.records))

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Writes every record, histograms included, and the warnings to `path`, atomically."""
        export.atomic_write_text(path, export.json_text(self.records, self.warnings))

    def plot(self, **kwargs: Any) -> Any:
        """Mean and std per layer, and over training (a matplotlib Figure).

        Keyword arguments go to `keras_initkit.stats.plots.plot_layer_stats`.
        """
        from keras_initkit.stats.plots import plot_layer_stats

        return plot_layer_stats(self.records, **kwargs)

    def plot_histograms(self, **kwargs: Any) -> Any:
        """One histogram panel per layer (a matplotlib Figure).

        Keyword arguments go to `keras_initkit.stats.plots.plot_histograms`.
        """
        from keras_initkit.stats.plots import plot_histograms

        return plot_histograms(self.records, **kwargs)

    # -- internals ----------------------------------------------------------------------
    def _slot(self, target: targets.Target) -> Slot:
        axis = targets.unit_axis(target.layer)
        width = targets.known_width(target.layer, axis)
        if width is None:
            width = self._widths.get(id(target.layer), -1)
        low, high = self.histogram_range or targets.histogram_range(target.activation)
        layout = Layout(
            bins=self.bins,
            low=low,
            high=high,
            units=width,
            unit_axis=axis,
            saturation=SATURATION_BOUNDS.get(target.activation),
            saturation_threshold=self.saturation_threshold,
            max_rows=self.max_rows,
        )
        return Slot(target, layout)

    def _window_end(self, start: int) -> int | None:
        steps = (self.params or {}).get("steps")
        if self.every == "epoch":
            return steps
        boundary = (start // self.every + 1) * self.every
        end = -(-boundary // self._spe) * self._spe
        return min(end, steps) if steps else end

    def _start_window(self) -> None:
        start = self._last_batch + 1
        end = self._window_end(start)
        count = None if self.batches_per_record == "all" else self.batches_per_record
        if end is None:
            low, high = 0, (count if count is not None else _NEVER)
        else:
            length = end - start
            low, high = (0, length) if count is None else (max(length - count, 0), length)
        self._window, self._tick = (low, high), 0
        self._instrumentation.start_window(low, high)

    def _record(self, batch: int, reason: str | None = None) -> None:
        model = self.model  # syncs the state on JAX
        inst = self._instrumentation
        vectors = inst.read()
        order = inst.call_order + [i for i in range(len(inst.slots)) if i not in inst.call_order]
        new: list[ActivationRecord] = []
        for index in order:
            slot = inst.slots[index]
            stats, counts = finalize(vectors[index], slot.layout)
            stats.pop("nonfinite_batches")
            if stats["count"] == 0:
                continue
            new.append(
                ActivationRecord(
                    fit=self._fit,
                    epoch=self._epoch,
                    batch=batch,
                    step=self._step,
                    layer=slot.target.path,
                    activation=slot.target.activation,
                    stats=stats,
                    edges=slot.layout.edges,
                    counts=counts,
                )
            )
        self._start_window()
        if not new:
            return
        self.records.extend(new)
        findings = diagnose(
            new,
            dead_threshold=self.dead_threshold,
            saturated_threshold=self.saturated_threshold,
            std_ratio=self.std_ratio,
        )
        for finding in findings:
            if finding.condition == "nonfinite" and self.on_nan == "ignore":
                continue
            self._report(finding)
        nonfinite = [f for f in findings if f.condition == "nonfinite"]
        if self.on_nan == "stop" and (nonfinite or reason):
            self.stopped_by = nonfinite[0] if nonfinite else None
            model.stop_training = True
        if self.log_dir is not None:
            self._write(new)

    def _report(self, finding: Finding) -> None:
        key = (finding.condition, finding.layer)
        if key in self._warned:
            return
        self._warned.add(key)
        message = f"ActivationStats: {finding.message}"
        self.warnings.append(message)
        if self.warn:
            warnings.warn(message, ActivationStatsWarning, stacklevel=2)

    def _write(self, new: list[ActivationRecord]) -> None:
        self.to_csv(os.path.join(self.log_dir, "activation_stats.csv"))
        self.to_json(os.path.join(self.log_dir, "activation_stats.json"))
        if self._writer is None:
            from keras_initkit.stats.tensorboard import EventWriter

            self._writer = EventWriter(os.path.join(self.log_dir, "activations"))
        for record in new:
            for name in ("mean", "std", "min", "max", "zero_fraction", "saturated_fraction"):
                value = record.stats[name]
                if math.isfinite(value):
                    self._writer.add_scalar(f"{record.layer}/{name}", value, record.step)
            counts = record.counts
            self._writer.add_histogram(
                f"{record.layer}/activations",
                record.edges,
                counts[1:-1],
                record.step,
                under=float(counts[0]),
                over=float(counts[-1]),
                minimum=record.stats["min"],
                maximum=record.stats["max"],
            )
        self._writer.flush()


def _finite_loss(logs: dict[str, Any] | None) -> bool:
    loss = (logs or {}).get("loss")
    if loss is None:
        return True
    return bool(np.all(np.isfinite(np.asarray(keras.ops.convert_to_numpy(loss)))))


def _check_count(name: str, value: Any, allowed: str | None = None) -> Any:
    if allowed is not None and value == allowed:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        extra = f" or {allowed!r}" if allowed else ""
        raise ValueError(f"{name} must be a positive int{extra}; got {value!r}")
    return int(value)
