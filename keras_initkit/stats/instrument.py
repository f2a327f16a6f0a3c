"""Transient instrumentation of a model's layers, folding statistics inside the train step.

`Instrumentation.install()` gives each watched layer a float32 accumulator variable
(non-trainable, never autocast, attached to the layer's state so JAX threads it through
its stateless step like BatchNormalization's moving mean, yet not one of its weights, so
`get_weights` and checkpoints written mid-fit never see it) and wraps the layer instance's
`call` so that, while the model's `train_step` runs, the layer's output is folded into
the accumulator. Evaluation, prediction and direct calls are never folded: a
thread-local marks the training step. `remove()` undoes everything, so the model saves
and loads as the user's original.

Which steps fold is decided by a small control vector `[tick, fold_from, fold_until,
window, histogram]`: the host sets the window, the device counts steps, and an `ops.cond`
skips the fold on the other steps, and a second one the histogram in windows without one
when histograms come less often than windows (on torch, whose steps run eagerly, the host
decides instead, which avoids a device sync per step). Each accumulator variable ends
with the number of the window it holds: a step folding into an accumulator of an older
window starts from the empty vector, so a new window costs the host one assignment (the
control vector), not one per layer, and a layer not called in a window reads as empty.
The host reads every accumulator with one transfer. (Each eager assignment or read costs
about 0.15 ms on TensorFlow: with a record every batch, the per-layer ones cost more than
the folds.)

An interrupted `fit` (an exception from a callback, `KeyboardInterrupt`) never reaches
`on_train_end`, so the instrumentation also takes itself off on its own:

- on JAX, where the accumulators must be part of the model's state, when `fit`'s own
  `finally` syncs the state while an exception propagates (`jax_state_sync` is wrapped);
- on every backend, the next `make_train_function`, `make_test_function` or
  `make_predict_function` (the first thing `fit`, `evaluate`, `predict` and the
  `*_on_batch` methods do) removes an instrumentation whose `fit` is no longer running,
  so a later plain `fit` rebuilds a clean step instead of reusing the instrumented one;
- `remove_stale(model)` (used by `inspect`) and `ActivationStats.detach()` do it on demand.

On TensorFlow and torch the accumulators are free variables captured by the step, never
added to the model, so `model.variables` is the user's at every moment.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
from keras import ops

from keras_initkit import _patch
from keras_initkit.stats import _keras_internals as internals
from keras_initkit.stats.accumulator import Layout, count_nonfinite, fold_for, merge

if TYPE_CHECKING:
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
        self.shapes: list[tuple[Any, ...]] = []


class Instrumentation:
    """Installs, drives and removes the statistics accumulators of one model."""

    def __init__(
        self,
        model: keras.Model,
        slots: list[Slot],
        check_nonfinite_every_step: bool,
        histogram_in_every_window: bool = True,
    ):
        self.model = model
        self.slots = slots
        self.check_nonfinite = check_nonfinite_every_step
        # False: the host says per window whether it counts histograms (`start_window`).
        self.every_histogram = histogram_in_every_window
        self.histogram_now = True  # torch: the host's decision for the current window
        self.control: Any = None
        self.window = 0  # the number of the current window (accumulators end with theirs)
        self.fold_now = False  # torch: the host's decision for the coming step
        # True: every step is a window of its own (`every=1`, one step per execution):
        # the step numbers its window itself and always folds, so the host assigns the
        # control vector once per epoch, not once per step (`advance_window`).
        self.auto = False
        self.histogram_every = 1  # auto windows count histograms once in this many steps
        self._stale: set[int] = set()  # torch: slots not yet folded in the current window
        self._empty: dict[int, Any] = {}  # torch: each slot's empty vector, as a tensor
        self._ends: list[int] | None = None  # where each slot's vector ends in one read
        self._numbered = False  # auto: whether the control vector holds a window yet
        self.fold = fold_for()  # the step's fold, chosen again when the step is rebuilt
        self.call_order: list[int] = []  # slot indices in the order the step calls them
        self.on_torch = keras.backend.backend() == "torch"
        self._installed = False
        self._fit_frame: Any = None
        self._patches: list[_patch.Patch] = []
        self.on_remove: list[Any] = []  # called after `remove` (the callback closes files)

    # -- installing and removing ------------------------------------------------------
    def install(self) -> None:
        model = self.model
        remove_stale(model, force=True)  # a fit that raised never reached on_train_end
        self._fit_frame = _fit_frame(model)
        self._outer_exception = sys.exc_info()[1]
        self._patches = []
        for index, slot in enumerate(self.slots):
            self._patches.append(_patch.patch(slot.target.layer, "call", self._watch(slot, index)))

        def make_step(original_step: Any) -> Any:
            def recording_train_step(*args: Any, **kwargs: Any) -> Any:
                _STEP.owner, _STEP.predicate = self, None
                try:
                    if self.control is not None and not _JAX:
                        # Before any layer call, so that a layer called in a branch of
                        # the model (`ops.cond`) never uses a tensor of another branch.
                        # (JAX reads the state only inside the step's scope: lazily.)
                        self._predicate()
                    return original_step(*args, **kwargs)
                finally:
                    _STEP.owner, _STEP.predicate = None, None

            return recording_train_step

        self._patches.append(_patch.patch(model, "train_step", make_step))
        for name in ("make_train_function", "make_test_function", "make_predict_function"):
            self._patches.append(_patch.patch(model, name, self._guard))
        if hasattr(model, "jax_state_sync"):
            self._patches.append(_patch.patch(model, "jax_state_sync", self._sync_guard))
        _INSTALLED[id(model)] = self
        self._installed = True
        model.make_train_function(force=True)  # fit() built it before on_train_begin

    def running(self) -> bool:
        """Whether the `fit` this was installed in is still on the stack."""
        if self._fit_frame is None:
            return self._installed
        frame = inspect.currentframe()
        while frame is not None:
            if frame is self._fit_frame:
                return True
            frame = frame.f_back
        return False

    def _guard(self, original: Any) -> Any:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if self._installed and not self.running():
                self.remove()
                return getattr(self.model, original.__name__)(*args, **kwargs)
            return original(*args, **kwargs)

        return guarded

    def _sync_guard(self, original: Any) -> Any:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            error = sys.exc_info()[1]
            if error is not None and error is not self._outer_exception:
                caller = inspect.currentframe()
                for _ in range(3):  # fit -> Patch.wrapper -> guarded
                    if caller is None or caller is self._fit_frame:
                        break
                    caller = caller.f_back
                if caller is not None and caller is self._fit_frame:
                    self.remove()  # fit's `finally` while an exception propagates
            return result

        return guarded

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
                        _stamped(slot.layout, 0),
                        trainable=False,
                        autocast=False,
                        dtype="float32",
                        name="activation_stats",
                        **options,
                    )
                if _JAX:
                    internals.attach_state(slot.target.layer, slot.variable)
            if not self.on_torch:
                self.control = keras.Variable(
                    np.zeros(5, "float32"),
                    trainable=False,
                    autocast=False,
                    dtype="float32",
                    name="activation_stats_control",
                    **options,
                )
                if _JAX:
                    internals.attach_state(self.slots[0].target.layer, self.control)
        self._ends = None
        self._numbered = False  # whether the control vector holds a window yet
        self.fold = fold_for(bool(getattr(self.model, "jit_compile", False)))
        self.model.make_train_function(force=True)

    def remove(self) -> None:
        """Leaves the model as it was before `install` (idempotent)."""
        if not self._installed:
            return
        self._installed = False
        for item in reversed(self._patches):
            item.undo()
        self._patches = []
        for slot in self.slots:
            if slot.variable is not None:
                internals.detach_state(slot.target.layer, slot.variable)
                slot.variable = None
        if self.control is not None:
            internals.detach_state(self.slots[0].target.layer, self.control)
            self.control = None
        if _INSTALLED.get(id(self.model)) is self:
            del _INSTALLED[id(self.model)]
        self.model.train_function = None  # the compiled step still holds the folds
        self._fit_frame = None
        for hook in self.on_remove:
            hook()

    # -- the per-step work ------------------------------------------------------------
    def _watch(self, slot: Slot, index: int) -> Any:
        def make(call: Any) -> Any:
            def watched_call(*args: Any, **kwargs: Any) -> Any:
                outputs = call(*args, **kwargs)
                if getattr(_STEP, "owner", None) is self:
                    self._observe(slot, index, outputs)
                return outputs

            return watched_call

        return make

    def _observe(self, slot: Slot, index: int, outputs: Any) -> None:
        y = _first_float_tensor(outputs)
        if y is None:
            return
        if index not in self.call_order:
            self.call_order.append(index)
        if slot.variable is None:  # still learning shapes
            slot.shapes.append(tuple(y.shape))
            return
        layout, stored, fold = slot.layout, slot.variable.value, self.fold
        if self.on_torch:  # the first fold of a window starts from the empty vector
            if index in self._stale:
                self._stale.discard(index)
                state = self._empty.get(index)
                if state is None:
                    state = self._empty[index] = ops.convert_to_tensor(layout.empty())
                stamp = ops.convert_to_tensor([float(self.window)], "float32")
            else:
                state, stamp = stored[:-1], stored[-1:]
            if self.fold_now:
                if not self.histogram_now:
                    layout = _without_histogram(layout)
                slot.variable.assign(ops.concatenate([fold(state, y, layout), stamp]))
            elif self.check_nonfinite:
                slot.variable.assign(ops.concatenate([count_nonfinite(state, y, layout), stamp]))
            else:
                self._stale.add(index)  # nothing folded: still empty for this window
            return
        predicate, window, histogram = self._predicate()
        stamp = ops.reshape(window, (1,))
        bare = _without_histogram(layout)

        def current() -> Any:  # this window's accumulator: empty if it holds an older one
            return ops.where(stored[-1] == window, stored[:-1], layout.empty())

        def folded() -> Any:
            state = current()
            if self.every_histogram:
                new = fold(state, y, layout)
            elif getattr(fold, "takes_histogram", False):  # a `cond` around the count alone
                new = fold(state, y, layout, histogram=histogram)
            else:  # TensorFlow's traced folds: one per layout
                new = ops.cond(
                    histogram, lambda: fold(state, y, layout), lambda: fold(state, y, bare)
                )
            return ops.concatenate([new, stamp])

        def counted() -> Any:
            return ops.concatenate([count_nonfinite(current(), y, layout), stamp])

        if predicate is True:  # auto windows: every step folds (TensorFlow)
            slot.variable.assign(folded())
            return
        otherwise = counted if self.check_nonfinite else (lambda: stored)
        slot.variable.assign(ops.cond(predicate, folded, otherwise))

    def _predicate(self) -> tuple[Any, Any, Any]:
        """Whether this step folds, the window's number and whether it counts histograms;
        computed once per step, which ticks the counter (as the step starts on TensorFlow,
        at its first watched call on JAX)."""
        if getattr(_STEP, "predicate", None) is None:
            control = self.control.value
            tick = control[0]
            if self.auto:  # window `control[3] + tick`; histograms by the phase `control[4]`
                histogram = (
                    True
                    if self.every_histogram
                    else ops.equal(ops.mod(control[4] + tick, float(self.histogram_every)), 0.0)
                )
                # Always true; on JAX still a `cond` (traced, not constant): XLA fuses
                # the fold into the step's own loops without one, and the JAX CNN's step
                # measured 1.42x plain `fit` without it against 1.28x with it.
                fold_now = (tick >= 0.0) if _JAX else True
                _STEP.predicate = (fold_now, control[3] + tick, histogram)
            else:
                _STEP.predicate = (
                    ops.logical_and(tick >= control[1], tick < control[2]),
                    control[3],
                    control[4] > 0.0,
                )
            self.control.assign(control + ops.convert_to_tensor([1.0, 0, 0, 0, 0], "float32"))
        return _STEP.predicate

    # -- host side ----------------------------------------------------------------------
    def start_window(self, fold_from: int, fold_until: float, histogram: bool = True) -> None:
        """Starts a new, empty window that folds its steps `fold_from..fold_until-1`, with
        their histograms if `histogram` (ignored when every window counts them).

        One assignment of the control vector: the accumulators still hold the last
        window, under its number, and the step empties each as it first folds into it.
        On torch (no control vector) the host empties them here.
        """
        self.window = self.window % _WINDOWS + 1
        self.histogram_now = histogram or self.every_histogram
        if self.control is None:
            self._stale = set(range(len(self.slots)))
            return
        self._numbered = False  # the next auto window is assigned in full
        value = np.array(
            [0.0, fold_from, fold_until, self.window, float(self.histogram_now)], "float32"
        )
        internals.assign_locals(self.model, self.control, value)

    def start_auto_epoch(self, histogram_phase: int) -> None:
        """Starts a new window, the first of a run of one-step windows (`auto`) that the
        step numbers itself; the `k`-th of them counts histograms when
        `(histogram_phase + k) % histogram_every == 0`."""
        self.window = self.window % _WINDOWS + 1
        if self.control is None:
            self._stale = set(range(len(self.slots)))
            return
        self._numbered = True
        value = np.array([0.0, 0.0, 1.0, self.window, float(histogram_phase)], "float32")
        internals.assign_locals(self.model, self.control, value)

    def advance_window(self, histogram_phase: int) -> None:
        """The next one-step window (`auto`): the step numbers it itself, so the host only
        counts, except where the numbers wrap (then as `start_auto_epoch`)."""
        if self.control is None or not self._numbered or self.window + 1 > _WINDOWS:
            self.start_auto_epoch(histogram_phase)
            return
        self.window += 1

    def read(self) -> list[np.ndarray]:
        """Each slot's accumulator for the current window, merged over replicas (the model
        must be synced); an accumulator still holding an older window reads as empty."""
        if internals.replicas(self.model) == 1:
            values = [slot.variable.value for slot in self.slots]
            joined = np.asarray(ops.convert_to_numpy(ops.concatenate(values)), "float64")
            if self._ends is None:
                self._ends = np.cumsum([slot.layout.size + 1 for slot in self.slots]).tolist()
            starts = [0, *self._ends[:-1]]
            window = float(self.window)
            return [
                joined[start : end - 1]
                if joined[end - 1] == window
                else np.asarray(slot.layout.empty(), "float64")
                for slot, start, end in zip(self.slots, starts, self._ends, strict=True)
            ]
        per_slot = [
            [
                np.asarray(ops.convert_to_numpy(v), "float64")
                for v in internals.local_values(self.model, slot.variable)
            ]
            for slot in self.slots
        ]
        return [
            merge(
                [v[:-1] if v[-1] == self.window else slot.layout.empty() for v in locals_],
                slot.layout,
            )
            for slot, locals_ in zip(self.slots, per_slot, strict=True)
        ]


_JAX = keras.backend.backend() == "jax"
_WINDOWS = 2**23  # window numbers cycle through 1.._WINDOWS (exact in float32)


def _stamped(layout: Layout, window: int) -> np.ndarray:
    """The empty accumulator of `layout`, as the variable holds it: stamped `window`."""
    return np.append(layout.empty(), np.float32(window))
_INSTALLED: dict[int, Instrumentation] = {}  # id(model) -> its live instrumentation


def remove_stale(model: keras.Model, force: bool = False) -> bool:
    """Removes an instrumentation left on `model` by a `fit` that is no longer running.

    With `force=True` it is removed even if that `fit` is running. Returns whether one
    was removed.
    """
    inst = _INSTALLED.get(id(model))
    if inst is None or inst.model is not model or (inst.running() and not force):
        return False
    inst.remove()
    return True


def _fit_frame(model: keras.Model) -> Any:
    """The frame of the `fit` of `model` that is calling us, or None."""
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_name == "fit" and frame.f_locals.get("self") is model:
            return frame
        frame = frame.f_back
    return None


def _replicas(model: keras.Model) -> int:
    strategy = getattr(model, "distribute_strategy", None)
    if keras.backend.backend() != "tensorflow" or strategy is None:
        return 1
    return int(strategy.num_replicas_in_sync)


@functools.cache
def _without_histogram(layout: Layout) -> Layout:
    """`layout` for a window that counts no histogram (one object per layout)."""
    return _replace(layout, histogram=False)


def _replace(layout: Layout, **changes: Any) -> Layout:
    import dataclasses

    return dataclasses.replace(layout, **changes)
