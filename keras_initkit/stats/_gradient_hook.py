"""Where `GradientStats` meets Keras: the optimizer receiving the gradients.

Every Keras 3 trainer hands the step's gradients to the model's optimizer:
`optimizer.apply_gradients` -> `optimizer.apply` on TensorFlow, `optimizer.apply` on
torch, and `optimizer.stateless_apply(optimizer_variables, grads, trainable_values)` on
JAX, whose trainer threads the optimizer variables through the compiled step as state.
`GradientHook` therefore

- adds one float32 vector (`keras_initkit.stats.gradients`) to the optimizer's
  variables, so JAX threads it like a momentum slot, and TF and torch simply assign it;
- wraps the optimizer *instance*'s `apply` (TF, torch) or `stateless_apply` (JAX) to
  read the weights before and after the original method and fold the gradients,
  weights and updates into that vector (inside an `ops.cond`, so steps outside the
  record window only advance a counter; on torch the host decides instead; on JAX the
  host picks one of three compiled steps per call: one that only advances the counter,
  one that folds, and, with `steps_per_execution > 1`, one that folds under the
  `ops.cond`, so steps outside a record window run the plain step);
- on TensorFlow, wraps the model instance's `train_step` to advance the vector's step
  counter once per training step, so a step applying the optimizer several times (a
  WGAN's critic) folds all of its applications in windows counted in steps (JAX's
  trainer applies it once per step; torch's host decides per step);
- hides the vector from the optimizer's `save_own_variables`/`load_own_variables`, so
  checkpoints written during `fit` load into a plain model;
- wraps the model instance's `make_train_function`: `fit` and `train_on_batch` call it
  without `force` before any callback runs, so a hook left behind by a `fit` that
  raised (Keras skips `on_train_end` then) removes itself before the next training.

`GradientStats` installs one hook per optimizer it watches (a GAN's `d_optimizer` and
`g_optimizer` besides `model.optimizer`); they chain on `make_train_function` and are
removed in reverse order, and the stale-hook cleanup walks the chain.

Under `tf.distribute` with several replicas, `apply` runs once per replica with that
replica's own gradients; Keras sums them across replicas later, in the TF optimizer's
`_all_reduce_sum_gradients`. The hook wraps that method too and folds the summed
gradients it returns (the global gradients the optimizer applies), on every replica
alike; the vector is a sync-on-read variable read from the first replica. Keras clips
each replica's gradient before that sum, so clipping, gradient accumulation and loss
scaling are refused there (`check_distribution`). Under JAX's `DataParallel` the
trainer's gradients are already global: nothing changes.

The private optimizer attributes used are listed in `PRIVATE_API`; `check()` raises
`KerasInternalsChanged` naming any that a Keras release no longer has (it runs at every
`install`, and in the tests).
"""

from __future__ import annotations

import threading
from typing import Any

import keras
from keras import ops

from keras_initkit import _patch
from keras_initkit.stats import _keras_internals as internals
from keras_initkit.stats import gradients as gstats

PRIVATE_API = (
    ("_track_variable", "add the statistics vector to the optimizer's variables"),
    ("_untrack_variable", "remove it again when training ends"),
    (
        "_trainable_variables",
        ("the order of the trainable values `stateless_apply` receives (JAX), and the "
        "variables `apply(grads)` updates when called without them"),
    ),
)
# TensorFlow only: the TF optimizer's all-reduce of the replicas' gradients.
PRIVATE_API_TF = (
    (
        "_all_reduce_sum_gradients",
        "read the gradients summed across `tf.distribute` replicas",
    ),
)
_MARK = "_keras_initkit_gradient_hook"


class KerasInternalsChanged(RuntimeError):
    """A private Keras attribute `GradientStats` needs is gone or behaves differently."""


def check() -> None:
    """Raises `KerasInternalsChanged` naming any private optimizer attribute that changed.

    It checks the behaviour relied on, on a throwaway optimizer: a tracked variable
    appears in `optimizer.variables` and disappears when untracked, and
    `_trainable_variables` lists the variables the optimizer was built on, in order.
    """
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    optimizer = keras.optimizers.SGD()
    optimizer.build(layer.trainable_variables)
    private = [("BaseOptimizer", name, why) for name, why in PRIVATE_API]
    if keras.backend.backend() == "tensorflow":
        private += [("TFOptimizer", name, why) for name, why in PRIVATE_API_TF]
    missing = [
        f"{owner}.{name} ({why})" for owner, name, why in private if not hasattr(optimizer, name)
    ]
    if not missing:
        probe = keras.Variable(0.0, trainable=False, name="probe")
        optimizer._track_variable(probe)
        tracked = any(v is probe for v in optimizer.variables)
        optimizer._untrack_variable(probe)
        untracked = all(v is not probe for v in optimizer.variables)
        if not (tracked and untracked):
            missing.append("BaseOptimizer._track_variable no longer feeds `variables`")
        order = list(optimizer._trainable_variables)
        if [id(v) for v in order] != [id(v) for v in layer.trainable_variables]:
            missing.append("BaseOptimizer._trainable_variables is not the build order")
        if keras.backend.backend() == "tensorflow":
            pairs = [(ops.ones(v.shape), v.value) for v in layer.trainable_variables]
            summed = list(optimizer._all_reduce_sum_gradients(pairs))
            if [v for _, v in summed] != [v for _, v in pairs]:
                missing.append("TFOptimizer._all_reduce_sum_gradients no longer returns "
                               "(gradient, variable) pairs")
    if missing:
        raise KerasInternalsChanged(
            f"keras {keras.__version__} no longer has: {', '.join(missing)}. "
            "keras_initkit's GradientStats needs an update for this Keras release."
        )


def installed_hook(model: keras.Model) -> GradientHook | None:
    """The `GradientHook` currently installed on `model`, if any."""
    return getattr(model.__dict__.get("make_train_function"), _MARK, None)


class GradientHook:
    """Installs, drives and removes the gradient statistics of one model's optimizer.

    Args:
        model: a compiled Keras model.
        variables: the trainable variables to watch (a subset of the variables
            `optimizer` updates).
        layout: the `GradientLayout` for them.
        optimizer: the optimizer to watch: `model.optimizer` (default), or another one
            the model's `train_step` applies (a GAN's `d_optimizer`; TensorFlow and torch
            only, one device).
        owner: whatever installs several hooks on one model (the callback): its hooks may
            share the model; another owner's may not.
    """

    def __init__(
        self,
        model: keras.Model,
        variables: list[Any],
        layout: gstats.GradientLayout,
        optimizer: Any = None,
        owner: object | None = None,
    ):
        self.model = model
        self.optimizer = model.optimizer if optimizer is None else optimizer
        self.owner = owner
        self.variables = list(variables)
        self.layout = layout
        self.accumulator: Any = None
        self.fold_now = False  # torch: the host's decision for the coming step
        # JAX: the host's choice of compiled step for the coming call: "skip" (only
        # ticks), "fold" (folds unconditionally: one step per call, in the window) or
        # "gated" (folds under the in-graph tick gate: several steps per call).
        self.mode = "skip"
        self._tracing: str | None = None  # the variant being traced (JAX)
        self.check_nonfinite = False  # on_nan="stop": count NaN/Inf on every step
        # True: every window counts histograms (no in-step test); else `start_window` says.
        self.every_histogram = True
        self.histogram_now = True  # the current window's (torch folds by it)
        self.on_torch = keras.backend.backend() == "torch"
        self.on_jax = keras.backend.backend() == "jax"
        self.replicas = internals.replicas(model)
        self._patches: list[tuple[Any, str, Any]] = []
        # TensorFlow: the step counter advances in `train_step`, once per training step.
        self.ticks_per_step = not (self.on_torch or self.on_jax)
        self._step_patch: _patch.Patch | None = None
        # tf.distribute: the all-reduced gradients, per replica (each runs in a thread).
        self._summed = threading.local()

    @property
    def installed(self) -> bool:
        return self.accumulator is not None

    # -- installing and removing ------------------------------------------------------
    def install(self) -> None:
        model, optimizer = self.model, self.optimizer
        existing = installed_hook(model)
        if existing is not None and (self.owner is None or existing.owner is not self.owner):
            # fit() calls make_train_function() before any callback, which removes a
            # hook left by a fit that raised; so this one belongs to the running fit.
            raise ValueError(
                "Only one GradientStats can watch a model at a time; this fit has two."
            )
        check()
        if optimizer is None:
            raise ValueError("GradientStats needs a compiled model (model.optimizer is None).")
        check_distribution(model)
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        # Under tf.distribute every replica folds the same global values into its own
        # copy (no cross-replica traffic); the host reads the first replica's.
        options = (
            {"synchronization": "on_read", "aggregation": "only_first_replica"}
            if self.replicas > 1
            else {}
        )
        with internals.strategy_scope(model):
            self.accumulator = keras.Variable(
                self.layout.empty(),
                trainable=False,
                autocast=False,
                dtype="float32",
                name="gradient_stats",
                **options,
            )
        optimizer._track_variable(self.accumulator)
        if keras.backend.backend() == "jax":
            self._patch(optimizer, "stateless_apply", self._wrap_stateless_apply)
        else:
            self._patch(optimizer, "apply", self._wrap_apply)
        if self.replicas > 1:
            self._patch(optimizer, "_all_reduce_sum_gradients", self._wrap_all_reduce)
        self._patch(optimizer, "save_own_variables", self._wrap_save)
        self._patch(optimizer, "load_own_variables", self._wrap_load)
        self._patch(model, "make_train_function", self._wrap_make_train_function)
        if self.ticks_per_step:  # composes with ActivationStats' own train_step wrapper
            self._step_patch = _patch.patch(model, "train_step", self._wrap_train_step)
        model.make_train_function(force=True)  # fit() built it before on_train_begin

    def remove(self) -> None:
        """Leaves the model and optimizer exactly as they were before `install`."""
        for owner, name, previous in reversed(self._patches):
            owner.__dict__.pop(name, None)
            if previous is not None:
                object.__setattr__(owner, name, previous)
        self._patches = []
        if self._step_patch is not None:
            self._step_patch.undo()
            self._step_patch = None
        if self.accumulator is not None:
            self.optimizer._untrack_variable(self.accumulator)
            self.accumulator = None
            self.model.train_function = None  # the compiled step still holds the fold

    def _patch(self, owner: Any, name: str, wrap: Any) -> None:
        previous = owner.__dict__.get(name)
        wrapper = wrap(getattr(owner, name))
        setattr(wrapper, _MARK, self)
        self._patches.append((owner, name, previous))
        object.__setattr__(owner, name, wrapper)  # bypasses Keras attribute tracking

    # -- host side ----------------------------------------------------------------------
    def start_window(self, fold_from: float, fold_until: float, histogram: bool = True) -> None:
        """Empties the vector; the window folds its steps `fold_from..fold_until-1`, with
        histograms if `histogram` (or if every window counts them)."""
        self.histogram_now = histogram or self.every_histogram
        internals.assign_locals(self.model, self.accumulator,
                                self.layout.empty(fold_from, fold_until, self.histogram_now))

    @property
    def _histogram(self) -> bool | None:
        """`gradients.fold`'s `histogram`: always, or as the window's vector says."""
        return True if self.every_histogram else None

    def read(self) -> Any:
        """The vector as NumPy (on JAX the model must have been synced).

        Under `tf.distribute`, the first replica's copy: every replica folded the same
        global gradients, weights and updates.
        """
        first = internals.local_values(self.model, self.accumulator)[0]
        return ops.convert_to_numpy(first)

    # -- the wrappers -------------------------------------------------------------------
    def _scale(self, optimizer_values: list[Any] | None = None) -> Any:
        """The loss scale carried by the gradients the trainer passes, or None."""
        optimizer = self.optimizer
        dynamic = getattr(optimizer, "dynamic_scale", None)
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) and dynamic is not None:
            if optimizer_values is not None:
                return optimizer_values[_position(optimizer.variables, dynamic)]
            return ops.copy(dynamic.value)
        factor = getattr(optimizer, "loss_scale_factor", None)
        return None if factor is None else float(factor)

    def _wrap_apply(self, apply: Any) -> Any:
        def apply_and_record(grads: Any, trainable_variables: Any = None) -> Any:
            if self.on_torch and not (self.fold_now or self.check_nonfinite):
                return apply(grads, trainable_variables)
            given = (
                list(trainable_variables)
                if trainable_variables is not None
                else list(self.optimizer._trainable_variables)
            )
            grads = list(grads)
            where = {id(v): i for i, v in enumerate(given)}
            picked = [where.get(id(v)) for v in self.variables]
            watched = [None if i is None else grads[i] for i in picked]
            folding = None if self.on_torch else gstats.should_fold(self.accumulator.value)
            before = self._snapshot(folding)
            scale = self._scale()
            summed: dict[int, Any] = {}
            self._summed.pairs = summed
            result = apply(grads, trainable_variables)
            self._summed.pairs = None
            if self.replicas > 1:  # the replicas' gradients summed, as applied
                watched = [summed.get(id(v.value)) for v in self.variables]
            after = [ops.copy(v.value) for v in self.variables]
            state = ops.copy(self.accumulator.value)
            if self.on_torch and self.fold_now:
                new = gstats.fold(state, watched, before, after, self.layout, scale,
                                  histogram=self.histogram_now)
            elif self.on_torch:
                new = gstats.count_nonfinite(state, watched, self.layout)
            else:
                # TF's graph mode counts the histogram with a counting kernel; XLA cannot.
                bincount = not self.model.jit_compile
                new = ops.cond(
                    folding,
                    lambda: gstats.fold(
                        state, watched, before, after, self.layout, scale, bincount,
                        self._histogram, ticks=False,
                    ),
                    lambda: self._skip(state, watched),
                )
            self.accumulator.assign(new)
            return result

        return apply_and_record

    def _snapshot(self, folding: Any) -> list[Any]:
        """The watched variables' values before the step (TF reads, torch copies).

        `ops.copy` of `v.value`: TF reads the variable here (`ops.convert_to_tensor`
        would pass the tf.Variable itself through); torch updates it in place. In TF's
        graph mode the read is taken only when the step folds (`folding`): a read held
        across the optimizer's assignment makes TensorFlow copy the variable first, on
        every step. The other branch returns empty tensors (graph-mode `cond` branches
        may differ in shape; XLA's may not, so `jit_compile` reads on every step).
        """
        variables = self.variables
        if folding is None or self.model.jit_compile or not variables:
            return [ops.copy(v.value) for v in variables]
        return list(
            ops.cond(
                folding,
                lambda: [ops.copy(v.value) for v in variables],
                lambda: [ops.zeros((0,), v.dtype) for v in variables],
            )
        )

    def _wrap_stateless_apply(self, stateless_apply: Any) -> Any:
        def stateless_apply_and_record(
            optimizer_variables: Any, grads: Any, trainable_variables: Any
        ) -> Any:
            optimizer = self.optimizer
            index = _position(optimizer.variables, self.accumulator)
            order = list(optimizer._trainable_variables)
            picked = [_position(order, v) for v in self.variables]
            state = optimizer_variables[index]
            scale = self._scale(list(optimizer_variables))
            new_trainable, new_optimizer = stateless_apply(
                optimizer_variables, grads, trainable_variables
            )
            watched = [grads[i] for i in picked]
            before = [trainable_variables[i] for i in picked]
            after = [new_trainable[i] for i in picked]
            mode = self._tracing or "gated"
            if mode == "skip":  # the plain step, plus a counter (and NaN/Inf counts)
                new = self._skip(state, watched)
            elif mode == "fold":
                new = gstats.fold(state, watched, before, after, self.layout, scale,
                                  histogram=self._histogram)
            else:
                new = ops.cond(
                    gstats.should_fold(state),
                    lambda: gstats.fold(state, watched, before, after, self.layout, scale,
                                        histogram=self._histogram),
                    lambda: self._skip(state, watched),
                )
            new_optimizer = list(new_optimizer)
            new_optimizer[index] = new
            return new_trainable, new_optimizer

        return stateless_apply_and_record

    def _skip(self, state: Any, grads: list[Any]) -> Any:
        """A step outside the folded range: tick (unless `train_step` does), and count
        NaN/Inf if checking."""
        ticks = not self.ticks_per_step
        if self.check_nonfinite:
            return gstats.count_nonfinite(state, grads, self.layout, ticks=ticks)
        return gstats.tick(state) if ticks else ops.copy(state)

    def _wrap_train_step(self, train_step: Any) -> Any:
        def train_step_and_tick(*args: Any, **kwargs: Any) -> Any:
            result = train_step(*args, **kwargs)
            # After the step's applications (TF orders the assignments as written).
            self.accumulator.assign(gstats.tick(self.accumulator.value))
            return result

        return train_step_and_tick

    def _wrap_all_reduce(self, all_reduce: Any) -> Any:
        def all_reduce_and_keep(grads_and_vars: Any) -> Any:
            pairs = list(all_reduce(grads_and_vars))
            summed = getattr(self._summed, "pairs", None)
            if summed is not None:
                summed.update({id(v): g for g, v in pairs})
            return pairs

        return all_reduce_and_keep

    def _wrap_save(self, save: Any) -> Any:
        def save_without_statistics(store: Any) -> None:
            index = _position(self.optimizer.variables, self.accumulator)
            everything: dict[str, Any] = {}
            save(everything)
            values = [everything[str(i)] for i in range(len(everything))]
            del values[index]
            for i, value in enumerate(values):
                store[str(i)] = value

        return save_without_statistics

    def _wrap_load(self, load: Any) -> Any:
        def load_without_statistics(store: Any) -> None:
            variables = self.optimizer.variables
            index = _position(variables, self.accumulator)
            if len(store.keys()) != len(variables) - 1:
                return load(store)  # Keras says what does not match
            values = [store[str(i)] for i in range(len(variables) - 1)]
            values.insert(index, self.accumulator.numpy())
            return load({str(i): value for i, value in enumerate(values)})

        return load_without_statistics

    def _wrap_make_train_function(self, make_train_function: Any) -> Any:
        def make_train_function_or_clean_up(force: bool = False) -> Any:
            if not force:  # a new fit or train_on_batch: ours ended without on_train_end
                self.remove()
                return self.model.make_train_function(force=force)
            if not self.on_jax:
                return make_train_function(force=force)
            # JAX: one train function per variant, the host picks one per call (`mode`),
            # so the steps outside a record window run the plain step. Each traces its
            # own `train_step` (a distinct function: its own jit cache) with
            # `_tracing` set; each compiles when first called.
            # Another instrumentation (ActivationStats) may have patched the instance's
            # `train_step`: it is put back as it was, not removed.
            model = self.model
            variants = {}
            previous = model.__dict__.get("train_step")
            for mode in ("skip", "fold", "gated"):
                object.__setattr__(model, "train_step", self._traced_as(mode))
                try:
                    make_train_function(force=True)
                finally:
                    model.__dict__.pop("train_step", None)
                    if previous is not None:
                        object.__setattr__(model, "train_step", previous)
                variants[mode] = model.train_function

            def train_function(*args: Any, **kwargs: Any) -> Any:
                return variants[self.mode](*args, **kwargs)

            model.train_function = train_function
            return None

        return make_train_function_or_clean_up

    def _traced_as(self, mode: str) -> Any:
        train_step = self.model.train_step

        def train_step_as(state: Any, data: Any) -> Any:
            self._tracing = mode
            try:
                return train_step(state, data)
            finally:
                self._tracing = None

        return train_step_as


def check_distribution(model: keras.Model) -> None:
    """Raises if `model` trains under `tf.distribute` in a way the hook cannot record.

    With several replicas Keras clips each replica's gradient, accumulates it, and
    checks it for the loss scale before the all-reduce, so no global gradient before
    those steps exists in the training step.
    """
    replicas = internals.replicas(model)
    if replicas <= 1:
        return
    optimizer = model.optimizer
    refused = [
        f"{name}={getattr(optimizer, name)!r}"
        for name in ("clipnorm", "clipvalue", "global_clipnorm", "gradient_accumulation_steps")
        if getattr(optimizer, name, None)
    ]
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        refused.append("a LossScaleOptimizer (mixed precision)")
    if refused:
        raise NotImplementedError(
            f"GradientStats under tf.distribute ({replicas} replicas) supports optimizers "
            "without clipping, gradient accumulation or loss scaling: Keras applies "
            "those to each replica's own gradient before summing them, so the step "
            f"holds no global gradient to record. This optimizer has {', '.join(refused)}."
            " (One replica, or keras.distribution.DataParallel on JAX, supports them.)"
        )


def _position(values: list[Any], item: Any) -> int:
    for index, value in enumerate(values):
        if value is item:
            return index
    raise KerasInternalsChanged(
        f"GradientStats lost track of {getattr(item, 'path', item)!r} in the optimizer."
    )
