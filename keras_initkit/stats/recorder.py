"""The recorder: windows, steps and records of one `fit`, over an `Instrumentation`.

`ActivationStats` maps Keras's hooks onto it: `begin` (on_train_begin), `start_epoch`,
`before_batch`, `after_batch` (returns the records due), `end_epoch` and `end`. The
recorder owns the window arithmetic, the shape-learning first step, the per-step
non-finite check and the assembly of `ActivationRecord`s; the instrumentation owns what
is patched into the model and the device-side accumulators.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np

from keras_initkit.stats import targets
from keras_initkit.stats.accumulator import INF, NAN, Layout, finalize
from keras_initkit.stats.instrument import Instrumentation, Slot
from keras_initkit.stats.record import ActivationRecord
from keras_initkit.stats.summary import activation_facts
from keras_initkit.stats.window import HistogramCadence, fold_bounds


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the recorder folds: see `ActivationStats` for each field's meaning."""

    every: int | str
    batches_per_record: int | str
    layers: Any
    max_rows: int | None
    bins: int
    histogram_range: tuple[float, float] | None
    saturation_threshold: float
    check_nonfinite: bool
    histogram_every: int = 1


class Recorder:
    """Records one model's activation statistics over the `fit` calls it is given."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.fits = 0
        self.step = 0
        self.instrumentation: Instrumentation | None = None
        self._widths: dict[int, int] = {}  # id(layer) -> units learned by a first step
        # Called before the accumulators are read: on JAX the callback's `self.model`
        # puts the step's state back into the variables.
        self.sync: Any = lambda: None

    # -- the fit lifecycle ----------------------------------------------------------------
    def begin(self, model: keras.Model, steps: int | None) -> Instrumentation:
        self.fit = self.fits
        self.fits += 1
        self.steps = steps
        slots = [self._slot(t) for t in targets.select(model, self.settings.layers)]
        self.cadence = HistogramCadence(self.settings.every, self.settings.histogram_every)
        inst = Instrumentation(
            model, slots, self.settings.check_nonfinite, self.cadence.every_window
        )
        inst.install()
        self.instrumentation = inst
        self.spe = int(getattr(model, "steps_per_execution", 1) or 1)
        # Every step a window of its own: the step numbers its windows (no assignment
        # per step). Not on torch, whose host decides each step anyway.
        inst.auto = self.settings.every == 1 and self.spe == 1 and not inst.on_torch
        inst.histogram_every = self.settings.histogram_every
        self.pending = inst.needs_shapes
        if not self.pending:
            inst.allocate()
        self.epoch, self.last_batch, self.bucket, self.tick = 0, -1, 0, 0
        self.window_histogram = True  # whether the current window counts histograms
        return inst

    def start_epoch(self, epoch: int) -> None:
        self.epoch, self.last_batch, self.bucket = epoch, -1, 0
        if not self.pending:
            self._start_window()

    def before_batch(self) -> None:
        inst = self.instrumentation
        if inst is not None and inst.control is None and not self.pending:
            low, high = self.window
            inst.fold_now = low <= self.tick < high  # torch: the host decides

    def after_batch(self, batch: int) -> list[ActivationRecord] | None:
        """The records of a window that ended with `batch`, or None when none is due."""
        steps = batch - self.last_batch
        self.last_batch = batch
        self.step += steps
        if self.pending:  # the first step has shown every output's shape
            self.pending = False
            inst = self._installed()
            inst.learn_shapes()
            for slot in inst.slots:
                self._widths[id(slot.target.layer)] = slot.layout.units
            inst.allocate()  # and rebuilds the train function
            self._start_window()
            return None
        self.tick += steps
        every = self.settings.every
        if isinstance(every, int) and (batch + 1) // every > self.bucket:
            self.bucket = (batch + 1) // every
            return self.read(batch)
        return None

    def nonfinite_now(self) -> bool:
        """Whether any watched output held NaN/Inf since the window began (one read of
        the accumulators; the model state must be synced)."""
        inst = self.instrumentation
        if inst is None or self.pending:
            return False
        self.sync()
        return any(np.any(vector[NAN : INF + 1] > 0) for vector in inst.read())

    def end_epoch(self) -> list[ActivationRecord] | None:
        if self.pending or self.instrumentation is None or self.tick == 0:
            return None
        return self.read(self.last_batch)

    def end(self) -> None:
        if self.instrumentation is not None:
            self.instrumentation.remove()
            self.instrumentation = None

    # -- reading --------------------------------------------------------------------------
    def read(self, batch: int) -> list[ActivationRecord]:
        """The records of the current window (forward order), then a new window."""
        inst = self._installed()
        self.sync()
        vectors = inst.read()
        order = inst.call_order + [i for i in range(len(inst.slots)) if i not in inst.call_order]
        new: list[ActivationRecord] = []
        for index in order:
            slot = inst.slots[index]
            stats, counts = finalize(vectors[index], slot.layout)
            stats.pop("nonfinite_batches")
            if stats["count"] + stats["nan_count"] + stats["inf_count"] == 0:
                continue  # nothing folded in this window (e.g. a layer not called)
            new.append(
                ActivationRecord(
                    fit=self.fit,
                    epoch=self.epoch,
                    batch=batch,
                    step=self.step,
                    layer=slot.target.path,
                    activation=slot.target.activation,
                    stats=stats,
                    edges=slot.layout.edges,
                    counts=counts if self.window_histogram else None,
                )
            )
        self._start_window()
        return new

    # -- internals ------------------------------------------------------------------------
    def _installed(self) -> Instrumentation:
        if self.instrumentation is None:
            raise RuntimeError("the recorder has no instrumentation: call begin() first")
        return self.instrumentation

    def _slot(self, target: targets.Target) -> Slot:
        s = self.settings
        axis = targets.unit_axis(target.layer)
        width = targets.known_width(target.layer, axis)
        if width is None:
            width = self._widths.get(id(target.layer), -1)
        default_range, bounds = activation_facts(target.activation)
        low, high = s.histogram_range or default_range
        layout = Layout(
            bins=s.bins,
            low=low,
            high=high,
            units=width,
            unit_axis=axis,
            saturation=bounds,
            saturation_threshold=s.saturation_threshold,
            max_rows=s.max_rows,
        )
        return Slot(target, layout)

    def _start_window(self) -> None:
        s = self.settings
        low, high = fold_bounds(self.last_batch + 1, s.every, s.batches_per_record,
                                self.steps, self.spe)
        self.window, self.tick = (low, high), 0
        first = self.last_batch < 0
        self.window_histogram = self.cadence.due(self.step, first_of_epoch=first)
        inst = self._installed()
        if inst.auto:  # one-step windows, numbered by the step
            phase = self.step - (self.cadence.last_start or 0)
            (inst.start_auto_epoch if first else inst.advance_window)(phase)
        else:
            inst.start_window(low, high, self.window_histogram)
