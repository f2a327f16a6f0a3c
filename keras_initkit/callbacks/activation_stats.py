"""`ActivationStats`: per-layer activation statistics recorded inside the training step."""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import keras
import numpy as np

from keras_initkit.initializers._checks import check_choice
from keras_initkit.stats import export, sinks, targets
from keras_initkit.stats.diagnosis import Finding, diagnose
from keras_initkit.stats.record import ActivationRecord
from keras_initkit.stats.recorder import Recorder, Settings
from keras_initkit.stats.thinning import thin

MAX_BINS = 10_000


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

    An interrupted `fit` (an exception in a callback, `KeyboardInterrupt`) never reaches
    `on_train_end`; nothing of the callback survives it either. On JAX everything is
    removed as the exception leaves `fit`. On TensorFlow and torch the accumulators were
    never part of the model (`model.variables` is unchanged at every moment); the inert
    wrappers left on `call`/`train_step` and the open event file go at the model's next
    `fit`, `evaluate`, `predict` or `keras_initkit.inspect`, or at once with
    `stats.detach()`, or at the end of a `with stats:` block:

        with ActivationStats(every=10) as stats:
            model.fit(x, y, callbacks=[stats])

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
        histogram_every: count histograms in a window only if it begins at least this
            many training steps after the last window that counted them began (and in
            the first window of each epoch); the other records have `counts=None`, like
            Keras's `TensorBoard`, whose `histogram_freq` is apart from its scalars.
            Counting a histogram is a serial loop over every value, about half of what
            recording costs, so with `every=1` the default records every statistic at
            every batch and a histogram at one batch in 10. With `every` of 10 or more
            (the default 50), or `"epoch"`, every record has one. `1`: a histogram in
            every record. Defaults to `10`.
        histogram_range: `(low, high)` for every layer, or `None` for each activation's
            own range ([-1, 1] for tanh, [0, 1] for sigmoid, [0, 5] for ReLU, ...).
        saturation_threshold: how close to a bound counts as saturated, as a fraction of
            the half-range. Defaults to `0.99`.
        dead_threshold: warn when more than this fraction of a layer's units is dead.
        saturated_threshold: warn when more than this fraction of a layer's values is
            saturated.
        std_ratio: warn when a layer's std is below 1/`std_ratio` (vanishing) or above
            `std_ratio` (exploding) times the first watched layer's std.
        on_nan: what a NaN or Inf activation (or loss) does: `"warn"` (default),
            `"stop"` or `"ignore"`. With `"stop"` every step is checked: training stops
            cleanly after the first step whose watched activations (a record is read at
            once, naming the first layer in forward order that produced them) or loss is
            not finite, and `stopped_by` says which.
        log_dir: if given, records are appended at each read to
            `activation_stats.csv` (the tidy table) and `activation_stats.jsonl` (JSON
            Lines, histograms included; `keras_initkit.stats.load_json` reads it), and
            TensorBoard scalars and histograms to `log_dir/activations`. The cost per
            record is constant however long the run. Checked when the callback is made:
            it must be a directory, or a path that can be created, that is writable.
            A write that fails during training (disk full, ...) is reported once as a
            warning; writing stops and training goes on. In a multi-process run only
            process 0 (the chief) writes.
        warn: whether to emit diagnoses as `ActivationStatsWarning`s (once per condition
            and layer). They are collected in `.warnings` either way.
        max_records: how many records `.records` keeps in memory. Past it, every other
            read (all layers of one step) is dropped, oldest and newest kept, so memory
            stays bounded over any run length while `.records` still spans the whole
            run; the files keep every record. Defaults to `10_000` (about 20 MB).

    Example:
    >>> model = keras.Sequential([keras.Input((8,)),
    ...                           keras.layers.Dense(16, "tanh", name="hidden"),
    ...                           keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse")
    >>> stats = keras_initkit.callbacks.ActivationStats(every=2)
    >>> _ = model.fit(np.ones((32, 8)), np.ones((32, 1)), batch_size=8, epochs=1,
    ...               verbose=0, callbacks=[stats])
    >>> recorded = [(r.step, r.layer) for r in stats.records]
    >>> recorded
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
        histogram_every: int = 10,
        histogram_range: tuple[float, float] | None = None,
        saturation_threshold: float = 0.99,
        dead_threshold: float = 0.5,
        saturated_threshold: float = 0.5,
        std_ratio: float = 100.0,
        on_nan: str = "warn",
        log_dir: str | os.PathLike[str] | None = None,
        warn: bool = True,
        max_records: int = 10_000,
    ) -> None:
        super().__init__()
        self.every = _check_count("every", every, allowed="epoch")
        self.batches_per_record = _check_count("batches_per_record", batches_per_record, "all")
        self.layers = _check_layers(layers)
        self.max_rows = None if max_rows is None else _check_count("max_rows", max_rows)
        self.bins = _check_count("bins", bins)
        if self.bins > MAX_BINS:
            raise ValueError(f"bins must be a positive int at most {MAX_BINS}; got {bins!r}")
        self.histogram_every = _check_count("histogram_every", histogram_every)
        self.histogram_range = _check_range(histogram_range)
        self.saturation_threshold = _check_fraction("saturation_threshold", saturation_threshold)
        self.dead_threshold = _check_fraction("dead_threshold", dead_threshold)
        self.saturated_threshold = _check_fraction("saturated_threshold", saturated_threshold)
        self.std_ratio = _check_number("std_ratio", std_ratio)
        if not self.std_ratio > 1.0:
            raise ValueError(f"std_ratio must be greater than 1; got {std_ratio!r}")
        self.on_nan = check_choice("on_nan", on_nan, ("warn", "stop", "ignore"))
        self.log_dir = sinks.check_log_dir(log_dir)
        if not isinstance(warn, (bool, np.bool_)):
            raise TypeError(f"warn must be True or False; got {warn!r}")
        self.warn = bool(warn)
        self.max_records = _check_count("max_records", max_records)
        self.records: list[ActivationRecord] = []
        self.warnings: list[str] = []
        self.stopped_by: Finding | None = None
        self._warned: set[tuple[str, str]] = set()
        self._recorder = Recorder(
            Settings(
                every=self.every,
                batches_per_record=self.batches_per_record,
                layers=self.layers,
                max_rows=self.max_rows,
                bins=self.bins,
                histogram_range=self.histogram_range,
                saturation_threshold=self.saturation_threshold,
                check_nonfinite=self.on_nan == "stop",
                histogram_every=self.histogram_every,
            )
        )
        self._recorder.sync = lambda: self.model  # on JAX, the property syncs the state
        self._sinks: sinks.Sinks | None = None
        self._unwritten: list[str] = []  # warnings not yet in the JSON Lines file

    # -- attaching and detaching ----------------------------------------------------------
    def detach(self) -> None:
        """Removes everything the callback added to its model and closes its files.

        Idempotent; `fit` calls it at its end. Use it (or `with stats:`) after a `fit`
        that raised, to leave the model as it was at once.
        """
        self._recorder.end()
        if self._sinks is not None:
            self._sinks.close()

    def __enter__(self) -> ActivationStats:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.detach()

    # -- the fit lifecycle ----------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.stopped_by = None
        if self.log_dir is not None and self._sinks is None and sinks.is_chief(self.model):
            self._sinks = sinks.Sinks(self.log_dir, self._report_io)
        inst = self._recorder.begin(self.model, (self.params or {}).get("steps"))
        if self._sinks is not None:
            inst.on_remove.append(self._sinks.close)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.model  # noqa: B018 - on JAX, reading the property syncs the model state
        self._recorder.start_epoch(epoch)

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._recorder.before_batch()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        recorder = self._recorder
        if recorder.pending:
            self.model  # noqa: B018 - sync the state (JAX) before adding variables
        records = recorder.after_batch(batch)
        if records is None and self.on_nan == "stop" and recorder.nonfinite_now():
            records = recorder.read(batch)
        if records is not None:
            self._take(records)
        # The loss: every step with on_nan="stop", at each read with "warn".
        check_loss = self.on_nan == "stop" or (self.on_nan == "warn" and records is not None)
        if check_loss and self.stopped_by is None and not _finite_loss(logs):
            finding = Finding(
                "nonfinite_loss", "loss",
                f"the loss is {(logs or {}).get('loss')} at step {recorder.step} (batch {batch} of "
                f"epoch {recorder.epoch})" + ("; training stopped." if self.on_nan == "stop"
                                               else "."))
            self._report(finding)
            if self.on_nan == "stop":
                self.stopped_by = finding
                self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not self.model.stop_training:
            records = self._recorder.end_epoch()
            if records is not None:
                self._take(records)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.model  # noqa: B018 - sync (JAX) before the variables go
        self.detach()

    # -- results --------------------------------------------------------------------------
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

    # -- internals ------------------------------------------------------------------------
    def _take(self, new: list[ActivationRecord]) -> None:
        if not new:
            return
        self.records.extend(new)
        if len(self.records) > self.max_records:
            self.records = thin(self.records)
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
        if self.on_nan == "stop" and nonfinite and self.stopped_by is None:
            self.stopped_by = nonfinite[0]
            self.model.stop_training = True
        if self._sinks is not None:
            unwritten, self._unwritten = self._unwritten, []
            self._sinks.write(new, unwritten)

    def _report(self, finding: Finding) -> None:
        key = (finding.condition, finding.layer)
        if key in self._warned:
            return
        self._warned.add(key)
        self._say(f"ActivationStats: {finding.message}")

    def _report_io(self, message: str) -> None:
        self._say(f"ActivationStats: {message}")

    def _say(self, message: str) -> None:
        self.warnings.append(message)
        self._unwritten.append(message)
        if self.warn:
            warnings.warn(message, ActivationStatsWarning, stacklevel=3)


def _finite_loss(logs: dict[str, Any] | None) -> bool:
    loss = (logs or {}).get("loss")
    if loss is None:
        return True
    return bool(np.all(np.isfinite(np.asarray(keras.ops.convert_to_numpy(loss)))))


def _check_count(name: str, value: Any, allowed: str | None = None) -> Any:
    if allowed is not None and isinstance(value, str) and value == allowed:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        extra = f" or {allowed!r}" if allowed else ""
        raise ValueError(f"{name} must be a positive int{extra}; got {value!r}")
    return int(value)


def _check_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number; got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{name} must be finite; got {value!r}")
    return float(value)


def _check_fraction(name: str, value: Any) -> float:
    value = _check_number(name, value)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be in (0, 1]; got {value!r}")
    return value


def _check_range(value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    message = "histogram_range must be (low, high) with finite low < high, or None; got "
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(message + repr(value)) from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(message + repr(value))
    return low, high


def _check_layers(layers: Any) -> Any:
    if layers is None or (callable(layers) and not isinstance(layers, type)):
        return layers
    if isinstance(layers, (list, tuple)):
        for item in layers:
            if not isinstance(item, (str, type)):
                raise TypeError(
                    "layers must be None, a list of layer names, paths or classes, or a "
                    f"predicate; got the item {item!r} in {layers!r}")
        return list(layers)
    hint = f" (for one layer: layers=[{layers!r}])" if isinstance(layers, (str, type)) else ""
    raise TypeError("layers must be None, a list of layer names, paths or classes, or a "
                    f"predicate layer -> bool; got {layers!r}{hint}")
