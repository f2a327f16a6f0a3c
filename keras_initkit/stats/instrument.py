"""Transient instrumentation of a model's layers, folding statistics inside the train step.

`Instrumentation.install()` gives each watched layer a float32 accumulator variable
(non-trainable, never autocast, attached to the layer's state so JAX threads it through
its stateless step like BatchNormalization's moving mean, yet not one of its weights, so
`get_weights` and checkpoints written mid-fit never see it) and wraps the layer instance's
`call` so that, while the model's `train_step` runs, the layer's output is folded into
the accumulator. Evaluation, prediction and direct calls are never folded: a
thread-local marks the training step. `remove()` undoes everything, so the model saves
and loads as the user's original.

Which steps fold is decided by a small control vector `[tick, fold_from, fold_until]`:
the host sets the window, the device counts steps, and an `ops.cond` skips the fold on
the other steps (on torch, whose steps run eagerly, the host decides instead, which
avoids a device sync per step).
"""

from __future__ import annotations

import threading
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_initkit.stats import _keras_internals as internals
from keras_initkit.stats.accumulator import Layout, count_nonfinite, fold, merge
from keras_initkit.stats.targets import Target

_STEP = threading.local()  # .owner: the Instrumentation whose train_step is running


def _first_float_tensor(outputs: Any) -> Any:
    for value in keras.tree.flatten(outputs):
        dtype = getattr(value, "dtype", None)
        if dtype is not None and "float" in str(keras.backend.standardize_dtype(dtype)):
            return value
    return None


class Slot:
    """One watched layer: its target, layout, accumulator and the shapes seen."""

    def __init__(self, target: Target, layout: Layout) -> None:
        self.target = target
        self.layout = layout
        self.variable: Any = None
        self.original_call: Any = None  # an instance-level `call` the user had, if any
        self.shapes: list[tuple[Any, ...]] = []


class Instrumentation:
    """Installs, drives and removes the statistics accumulators of one model."""

    def __init__(self, model: Any, slots: list[Slot], check_nonfinite_every_step: bool):
        self.model = model
        self.slots = slots
        self.check_nonfinite = check_nonfinite_every_step
        self.control: Any = None
        self.fold_now = False  # torch: the host's decision for the coming step
        self.call_order: list[int] = []  # slot indices in the order the step calls them
        self._torch = keras.backend.backend() == "torch"
        self._installed = False

    # -- installing and removing ------------------------------------------------------
    def install(self) -> None:
        model = self.model
        # A fit that raised never reached on_train_end: take its instrumentation off first.
        stale = getattr(model.__dict__.get("train_step"), "instrumentation", None)
        if isinstance(stale, Instrumentation):
            stale.remove()
        for index, slot in enumerate(self.slots):
            self._patch_call(slot, index)
        original_step = model.train_step

        def recording_train_step(*args: Any, **kwargs: Any) -> Any:
            _STEP.owner, _STEP.predicate = self, None
            try:
                return original_step(*args, **kwargs)
            finally:
                _STEP.owner, _STEP.predicate = None, None

        recording_train_step.instrumentation = self  # type: ignore[attr-defined]
        object.__setattr__(model, "train_step", recording_train_step)
        self._installed = True
        model.make_train_function(force=True)  # fit() built it before on_train_begin

    @property
    def needs_shapes(self) -> bool:
        return any(slot.layout.units < 0 for slot in self.slots)

    def learn_shapes(self) -> None:
        """Sets unknown unit counts from the shapes seen by a traced step."""
        for slot in self.slots:
            if slot.layout.units >= 0:
                continue
            shape = slot.shapes[0] if slot.shapes else ()
            axis = slot.layout.unit_axis
            width = shape[axis] if len(shape) >= 2 else None
            slot.layout = _replace(slot.layout, units=int(width) if width else 0)

    def allocate(self) -> None:
        """Creates the accumulators (and the control vector) and rebuilds the train step."""
        with internals.strategy_scope(self.model):
            distributed = _replicas(self.model) > 1
            options = (
                {"synchronization": "on_read", "aggregation": "sum"} if distributed else {}
            )
            for slot in self.slots:
                with keras.name_scope(slot.target.layer.name):
                    slot.variable = keras.Variable(
                        slot.layout.empty(),
                        trainable=False,
                        autocast=False,
                        dtype="float32",
                        name="activation_stats",
                        **options,
                    )
                internals.attach_state(slot.target.layer, slot.variable)
            if not self._torch:
                self.control = keras.Variable(
                    np.zeros(3, "float32"),
                    trainable=False,
                    autocast=False,
                    dtype="float32",
                    name="activation_stats_control",
                    **options,
                )
                internals.attach_state(self.slots[0].target.layer, self.control)
        self.model.make_train_function(force=True)

    def remove(self) -> None:
        """Leaves the model exactly as it was before `install`."""
        for slot in self.slots:
            layer = slot.target.layer
            layer.__dict__.pop("call", None)
            if slot.original_call is not None:
                object.__setattr__(layer, "call", slot.original_call)
            if slot.variable is not None:
                internals.detach_state(layer, slot.variable)
                slot.variable = None
        if self.control is not None:
            internals.detach_state(self.slots[0].target.layer, self.control)
            self.control = None
        self.model.__dict__.pop("train_step", None)
        self.model.train_function = None  # the compiled step still holds the folds
        self._installed = False

    # -- the per-step work ------------------------------------------------------------
    def _patch_call(self, slot: Slot, index: int) -> None:
        layer = slot.target.layer
        slot.original_call = layer.__dict__.get("call")
        call = layer.call

        def watched_call(*args: Any, **kwargs: Any) -> Any:
            outputs = call(*args, **kwargs)
            if getattr(_STEP, "owner", None) is self:
                self._observe(slot, index, outputs)
            return outputs

        object.__setattr__(layer, "call", watched_call)

    def _observe(self, slot: Slot, index: int, outputs: Any) -> None:
        y = _first_float_tensor(outputs)
        if y is None:
            return
        if index not in self.call_order:
            self.call_order.append(index)
        if slot.variable is None:  # still learning shapes
            slot.shapes.append(tuple(y.shape))
            return
        layout, state = slot.layout, slot.variable.value
        if self._torch:
            if self.fold_now:
                slot.variable.assign(fold(state, y, layout))
            elif self.check_nonfinite:
                slot.variable.assign(count_nonfinite(state, y, layout))
            return
        otherwise = (
            (lambda: count_nonfinite(state, y, layout)) if self.check_nonfinite else (lambda: state)
        )
        slot.variable.assign(ops.cond(self._predicate(), lambda: fold(state, y, layout), otherwise))

    def _predicate(self) -> Any:
        """Whether this step folds; computed once per step (the first watched call ticks)."""
        if getattr(_STEP, "predicate", None) is None:
            control = self.control.value
            tick = control[0]
            _STEP.predicate = ops.logical_and(tick >= control[1], tick < control[2])
            self.control.assign(control + ops.convert_to_tensor([1.0, 0.0, 0.0], "float32"))
        return _STEP.predicate

    # -- host side ----------------------------------------------------------------------
    def start_window(self, fold_from: int, fold_until: int) -> None:
        """Empties the accumulators; the window folds its steps `fold_from..fold_until-1`."""
        for slot in self.slots:
            internals.assign_locals(self.model, slot.variable, slot.layout.empty())
        if self.control is not None:
            value = np.array([0.0, fold_from, fold_until], "float32")
            internals.assign_locals(self.model, self.control, value)

    def read(self) -> list[np.ndarray]:
        """Each slot's accumulator, merged over replicas (the model must be synced)."""
        vectors = []
        for slot in self.slots:
            locals_ = [
                np.asarray(ops.convert_to_numpy(v), "float64")
                for v in internals.local_values(self.model, slot.variable)
            ]
            vectors.append(merge(locals_, slot.layout))
        return vectors


def _replicas(model: Any) -> int:
    strategy = getattr(model, "distribute_strategy", None)
    if keras.backend.backend() != "tensorflow" or strategy is None:
        return 1
    return int(strategy.num_replicas_in_sync)


def _replace(layout: Layout, **changes: Any) -> Layout:
    import dataclasses

    return dataclasses.replace(layout, **changes)
