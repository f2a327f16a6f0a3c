"""`GradientStats`: per-layer gradient, weight and update statistics recorded in-step."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Self

import keras
import numpy as np

from keras_initkit._checks import check_choice
from keras_initkit.stats import _keras_internals as internals
from keras_initkit.stats import gradient_output as output
from keras_initkit.stats import gradients as gstats
from keras_initkit.stats._gradient_hook import GradientHook
from keras_initkit.stats.gradient_diagnosis import GradientFinding, diagnose
from keras_initkit.stats.gradient_output import GradientRecord
from keras_initkit.stats.thinning import thin
from keras_initkit.stats.window import HistogramCadence, fold_bounds


class GradientStatsWarning(UserWarning):
    """A diagnosis from `GradientStats` (vanishing, exploding, update ratio, NaN, dead)."""


class GradientStats(keras.callbacks.Callback):
    """Records per-variable gradient, weight and update statistics during `fit`, in-step.

    For each trainable variable (grouped by the layer owning it) a record holds:

    - the gradient: `gradient_norm`, `gradient_rms`, `gradient_mean`,
      `gradient_max_abs`, `gradient_nonfinite` (NaN/Inf count),
      `gradient_zero_fraction`, and a histogram of log10|g|;
    - the weights before the step: `weight_norm`, `weight_rms`;
    - the update the optimizer applied (after momentum or Adam, clipping, weight decay,
      loss-scale unscaling): `update_norm`, `update_rms`, and `update_ratio` =
      ||update|| / ||weights|| (cs231n's rule of thumb: about 1e-3);
    - `size`, `ndim` and `steps` (training steps folded into the record; the
      optimizer's applications, when a step applies it several times, as a WGAN's
      critic).

    Which gradient: the *weight* gradient dL/dW the trainer hands to the optimizer
    (divided by the loss scale under mixed precision, before clipping), not the
    back-propagated gradient dL/da of a layer's output. Glorot & Bengio (2010) show the
    two can differ: weight-gradient variance can stay level across layers while
    back-propagated gradients shrink towards the input.

    How it records: while `fit` runs, the model's optimizer gets one extra float32
    vector and its instance's `apply` (TF, torch) or `stateless_apply` (JAX) is wrapped
    to fold the step's gradients and weights into it with `keras.ops`, inside the
    compiled training step; a few floats per variable reach the host when a record is
    due. When training ends everything is removed. A `fit` that raises skips
    `on_train_end` (Keras), so the hook also removes itself when the model next trains
    (any `fit` or `train_on_batch`), and `detach()` or `with GradientStats() as stats:`
    remove it at once.

    What a record covers: training runs in windows of `every` batches (or one epoch);
    each window folds its last `batches_per_record` steps (`"all"`: every step) and
    is read at its end. Norms are averaged over the folded steps, RMS and means are
    over all their elements, `gradient_max_abs` is the maximum. With
    `steps_per_execution=k`, windows end on multiples of `k`. A model that is not
    built when `fit` begins (a subclassed model never called, on TensorFlow, which
    builds it while tracing the first step) is watched from its second step: the first
    builds the variables, and is not recorded.

    Under data parallelism the values are global: with `tf.distribute` the gradients
    are the replicas' gradients summed by Keras's all-reduce (what the optimizer
    applies); with JAX's `keras.distribution.DataParallel` the trainer's gradients are
    already global. Under `tf.distribute` with several replicas, optimizers that clip,
    accumulate gradients or scale the loss are refused: Keras does those per replica,
    before the sum.

    Diagnosis (as `GradientStatsWarning`s, once per condition and layer, and in
    `.warnings`): gradients vanishing or exploding towards the input (the first
    layer's weight-gradient RMS below 1/`gradient_ratio` or above `gradient_ratio`
    times the last hidden layer's), update/weight ratios outside
    `update_ratio_bounds`, non-finite gradients (naming the first variable), dead
    layers (every gradient exactly zero on every folded step; each optimizer's network
    judged on its own), and a `train_step` that applies none of the model's optimizers.

    Which optimizers: `model.optimizer`, and on TensorFlow and torch (one device) every
    other optimizer the model holds as an attribute, which a custom `train_step` applies
    (keras.io's GAN: `d_optimizer` and `g_optimizer`), each watching the variables it
    updates; built by the first step, they are watched from the second. On JAX a
    `train_step` threads its own optimizers' state, so only `model.optimizer` is watched.

    Args:
        every: record every `every` training batches (int), or `"epoch"`. Defaults
            to `50`.
        batches_per_record: how many steps of each window a record folds: an int or
            `"all"`. Defaults to `1`.
        layers: which layers' variables to watch: `None` (all trainable variables), a
            list of layer names or paths (`"outer/dense"`), or a predicate on the layer
            path.
        bins: log-spaced histogram bins between `histogram_range`'s edges. Defaults to
            `44` (four per decade).
        histogram_range: `(low, high)` in |gradient|, `0 < low < high`. Defaults to
            `(1e-10, 10.0)`.
        histogram_every: count histograms in a window only if it begins at least this
            many training steps after the last window that counted them began (and in
            the first window of each epoch); the other records have `counts=None`, as
            in `ActivationStats`. A histogram costs a logarithm and a count per
            gradient value, about half of a fold. With `every` of 10 or more (the
            default 50), or `"epoch"`, every record has one; `1`: every record.
            Defaults to `10`.
        gradient_ratio: the vanishing/exploding threshold (> 1). Defaults to `100`.
        update_ratio_bounds: `(low, high)` for the update/weight ratio. Defaults to
            `(1e-5, 1e-1)`.
        on_nan: what non-finite (NaN or Inf) gradients do, as in `ActivationStats`:
            `"warn"` (default: reported when a record holds them), `"stop"` or
            `"ignore"`. With `"stop"` every step counts its NaN/Inf gradient values
            (one more reduction per variable on the steps that do not record); training
            stops cleanly after the first step that has any, a record of the window is
            read at once, a warning names the first variable (in the order of
            `model.trainable_variables`), and `stopped_by` holds the finding.
        log_dir: if given, records are appended to `gradient_stats.csv` and
            `gradient_stats.jsonl` there, and TensorBoard scalars and histograms go to
            `log_dir/gradients`.
        warn: whether to emit diagnoses as warnings (they reach `.warnings` anyway).
        max_records: how many records `.records` keeps in memory (one per watched
            variable and read). Past it, every other read is dropped, oldest and newest
            kept, so memory stays bounded over any run length while `.records` still
            spans the whole run; the files keep every record. Defaults to `10_000`
            (about 20 MB).

    Example:
    >>> model = keras.Sequential([keras.Input((8,)),
    ...                           keras.layers.Dense(16, "tanh", name="hidden"),
    ...                           keras.layers.Dense(1, name="out")])
    >>> model.compile("sgd", "mse")
    >>> stats = keras_initkit.callbacks.GradientStats(every=2, warn=False)
    >>> _ = model.fit(np.ones((32, 8)), np.ones((32, 1)), batch_size=8, epochs=1,
    ...               verbose=0, callbacks=[stats])
    >>> sorted({(r.step, r.layer, r.variable) for r in stats.records})[:2]
    [(2, 'hidden', 'bias'), (2, 'hidden', 'kernel')]
    >>> list(stats.to_dataframe().columns)
    ['fit', 'epoch', 'batch', 'step', 'layer', 'variable', 'statistic', 'value']

    Reference:
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html)
      (gradients across depth)
    - [CS231n, Neural Networks 3](https://cs231n.github.io/neural-networks-3/#ratio)
      (the update/weight ratio)
    """

    def __init__(
        self,
        every: int | str = 50,
        batches_per_record: int | str = 1,
        layers: Sequence[str] | Callable[[str], bool] | None = None,
        bins: int = 44,
        histogram_range: tuple[float, float] = (1e-10, 10.0),
        histogram_every: int = 10,
        gradient_ratio: float = 100.0,
        update_ratio_bounds: tuple[float, float] = (1e-5, 1e-1),
        on_nan: str = "warn",
        log_dir: str | os.PathLike[str] | None = None,
        warn: bool = True,
        max_records: int = 10_000,
    ) -> None:
        super().__init__()
        self.every = _count("every", every, "epoch")
        self.batches_per_record = _count("batches_per_record", batches_per_record, "all")
        if not (layers is None or callable(layers) or _strings(layers)):
            raise ValueError(
                "layers must be None, a list of layer names or paths, or a predicate "
                f"on the layer path; got {layers!r}"
            )
        self.layers = layers if layers is None or callable(layers) else list(layers)
        self.bins = _count("bins", bins)
        self.histogram_range = _range("histogram_range", histogram_range, positive=True)
        self.histogram_every = _count("histogram_every", histogram_every)
        if not float(gradient_ratio) > 1.0:
            raise ValueError(f"gradient_ratio must be greater than 1; got {gradient_ratio!r}")
        self.gradient_ratio = float(gradient_ratio)
        self.update_ratio_bounds = _range("update_ratio_bounds", update_ratio_bounds, True)
        self.on_nan = check_choice("on_nan", on_nan, ("warn", "stop", "ignore"))
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.warn = bool(warn)
        self.max_records = _count("max_records", max_records)
        self.records: list[GradientRecord] = []
        self.warnings: list[str] = []
        self.stopped_by: GradientFinding | None = None
        self._warned: set[tuple[str, str]] = set()
        self._fits = 0
        self._step = 0
        self._hooks: list[GradientHook] = []  # model.optimizer's first, then the others'
        self._names: dict[int, list[tuple[str, str]]] = {}  # id(hook) -> (layer, variable)
        self._pending = False  # waiting for the first step to build the model
        self._sink: output.LogDirSink | None = None

    # -- attaching and detaching --------------------------------------------------------
    def detach(self) -> None:
        """Removes everything this callback attached to the model and its optimizer.

        Safe to call at any time, also twice; `on_train_end` calls it.
        """
        if self._hooks:
            if self._active():
                self._model_synced()
            for hook in reversed(self._hooks):
                hook.remove()
            self._hooks = []
        if self._sink is not None:
            self._sink.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.detach()

    # -- the fit lifecycle --------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        model = self.model
        self.stopped_by = None
        self._fit = self._fits
        self._fits += 1
        if self.log_dir is not None and self._sink is None:
            self._sink = output.LogDirSink(self.log_dir)
        self._spe = int(getattr(model, "steps_per_execution", 1) or 1)
        self._epoch, self._last_batch, self._bucket = 0, -1, 0
        # TensorFlow builds a model that was never called (a subclassed model) while it
        # traces the first step; its variables, and the optimizer's, exist only after it.
        # So are the optimizers a custom train_step applies (a GAN's two) built by it.
        unbuilt = not model.built and model.optimizer is not None and not model.optimizer.built
        self._pending = unbuilt or any(not o.built for _, o in self._other_optimizers())
        if not self._pending:
            self._attach()

    def _attach(self) -> None:
        """Installs a hook on each optimizer the model trains with, watching the (now
        existing) variables it updates."""
        model = self.model
        others = [o for _, o in self._other_optimizers() if o.built]
        watched = [] if others and not model.optimizer.built else [
            (model.optimizer, list(model.trainable_variables))]  # fmt: skip
        watched += [(o, list(o._trainable_variables)) for o in others]
        candidates = [v for _, variables in watched for v in variables]
        chosen = [[v for v in variables if self._watched(_layer_path(model, v))]
                  for _, variables in watched]  # fmt: skip
        if not any(chosen) and self.layers is not None and candidates:
            paths = sorted({_layer_path(model, v) for v in candidates})
            raise ValueError(
                f"layers={self.layers!r} matches none of the model's trainable variables; "
                f"their layers are {', '.join(paths)}"
            )
        self._cadence = HistogramCadence(self.every, self.histogram_every)
        self._window_histogram = True
        self._hooks, self._names = [], {}
        for (optimizer, _), variables in zip(watched, chosen, strict=True):
            if optimizer is not model.optimizer and not variables:
                continue
            layout = gstats.GradientLayout(
                sizes=tuple(int(np.prod(v.shape)) for v in variables),
                ndims=tuple(len(v.shape) for v in variables),
                bins=self.bins,
                low=self.histogram_range[0],
                high=self.histogram_range[1],
            )
            hook = GradientHook(model, variables, layout, optimizer, owner=self)
            hook.check_nonfinite = self.on_nan == "stop"
            hook.every_histogram = self._cadence.every_window
            self._names[id(hook)] = [(_layer_path(model, v), v.name) for v in variables]
            self._hooks.append(hook)
            hook.install()

    def _other_optimizers(self) -> list[tuple[str, Any]]:
        """The other optimizers the model holds (`_held_optimizers`), which a custom
        train_step applies: watched on TensorFlow and torch on one device (JAX threads
        optimizer state through the step, which a train_step does for its own
        optimizers itself)."""
        if keras.backend.backend() == "jax" or internals.replicas(self.model) > 1:
            return []
        return self._held_optimizers()

    def _held_optimizers(self) -> list[tuple[str, Any]]:
        """The optimizers other than `model.optimizer` held by the model, as attributes
        (a GAN's `d_optimizer` and `g_optimizer`) or in a list, tuple or dict attribute
        (`self.optimizers = {"critic": ..., "generator": ...}`), with their names."""
        model = self.model
        held = vars(model)
        candidates = list(held.items())  # attributes first, then public containers
        for name, value in held.items():
            if name.startswith("_"):  # the trackers' own bookkeeping (TensorFlow)
                continue
            if isinstance(value, dict):
                candidates += [(f"{name}[{key!r}]", item) for key, item in value.items()]
            elif isinstance(value, list | tuple):
                candidates += [(f"{name}[{i}]", item) for i, item in enumerate(value)]
        found, seen = [], {id(model.optimizer)}
        for name, value in candidates:
            if isinstance(value, keras.optimizers.Optimizer) and id(value) not in seen:
                seen.add(id(value))
                found.append((name, value))
        return found

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch, self._last_batch, self._bucket = epoch, -1, 0
        if self._active():
            self._model_synced()
            self._start_window()

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        for hook in self._hooks:
            if hook.on_torch and hook.installed:
                low, high = self._window
                hook.fold_now = low <= self._tick < high  # torch: the host decides
            elif hook.on_jax and hook.installed:
                # JAX: the host picks the compiled step; a call runs up to `_spe` steps.
                low, high = self._window
                if not (self._tick < high and self._tick + self._spe > low):
                    hook.mode = "skip"
                else:
                    hook.mode = "fold" if self._spe == 1 else "gated"

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        steps = batch - self._last_batch
        self._last_batch = batch
        self._step += steps
        if self._pending:  # the first step built the model and its optimizer
            self._pending = False
            self._model_synced()
            self._attach()
            self._start_window()
            return
        self._tick += steps
        if self.on_nan == "stop" and self._active() and self._stop_if_nonfinite(batch):
            return
        if isinstance(self.every, int) and (batch + 1) // self.every > self._bucket:
            self._bucket = (batch + 1) // self.every
            self._record(batch)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._active() and self._tick > 0:
            self._record(self._last_batch)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.detach()

    # -- results ------------------------------------------------------------------------
    def to_dataframe(self) -> Any:
        """The records as a tidy pandas DataFrame.

        Columns: `fit, epoch, batch, step, layer, variable, statistic, value`; one row
        per record and statistic (histograms are in `.records` and the JSON outputs).
        """
        return output.to_dataframe(self.records)

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Writes the tidy table (as `to_dataframe`) to `path`, atomically."""
        output.write_csv(path, self.records)

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Writes every record, histograms included, and the warnings to `path`."""
        output.write_json(path, self.records, self.warnings)

    def plot(self, **kwargs: Any) -> Any:
        """Gradient RMS and update/weight ratio per layer over training (a Figure).

        Keyword arguments go to `keras_initkit.stats.gradient_plots.plot_gradient_stats`.
        """
        from keras_initkit.stats.gradient_plots import plot_gradient_stats

        return plot_gradient_stats(self.records, update_ratio_bounds=self.update_ratio_bounds,
                                   **kwargs)

    # -- internals ----------------------------------------------------------------------
    def _active(self) -> bool:
        return any(hook.installed for hook in self._hooks)

    def _model_synced(self) -> Any:
        return self.model  # on JAX, reading the property syncs the model state

    def _watched(self, path: str) -> bool:
        if self.layers is None:
            return True
        if callable(self.layers):
            return bool(self.layers(path))
        return any(path == name or path.split("/")[-1] == name for name in self.layers)

    def _start_window(self) -> None:
        steps = (self.params or {}).get("steps")
        low, high = fold_bounds(self._last_batch + 1, self.every, self.batches_per_record,
                                steps, self._spe)
        self._window, self._tick = (low, high), 0
        self._window_histogram = self._cadence.due(self._step, first_of_epoch=self._last_batch < 0)
        for hook in self._installed_hooks():
            hook.start_window(low, high, self._window_histogram)

    def _installed_hooks(self) -> list[GradientHook]:
        if not self._hooks:
            raise RuntimeError("GradientStats is not attached to a fit")
        return self._hooks

    def _record(self, batch: int, first: GradientFinding | None = None) -> None:
        if not self._active():
            return
        self._model_synced()
        hooks = self._installed_hooks()
        results = [gstats.finalize(hook.read(), hook.layout) for hook in hooks]
        histogram, ticks = self._window_histogram, self._tick
        self._start_window()
        if not any(results):
            if first is None and ticks > 0 and any(hook.layout.sizes for hook in hooks):
                first = self._not_applied()
            if first is not None and (message := self._report(first)) and self._sink:
                self._sink.write([], [message])
            return
        new, findings = [], []
        for hook, hook_results in zip(hooks, results, strict=True):
            edges = hook.layout.edges
            group = [
                GradientRecord(self._fit, self._epoch, batch, self._step, layer, name, stats,
                               edges, counts if histogram else None)
                for (layer, name), (stats, counts) in zip(self._names[id(hook)], hook_results,
                                                          strict=False)
            ]  # fmt: skip
            new += group
            # each optimizer's network on its own (a GAN's generator and discriminator)
            findings += diagnose(group, self.gradient_ratio, self.update_ratio_bounds)
        self.records.extend(new)
        if len(self.records) > self.max_records:
            self.records = thin(self.records)
        if first is not None:  # its message says training stopped; reported first
            findings = [first, *findings]
        if self.on_nan == "ignore":
            findings = [f for f in findings if f.condition != "nonfinite"]
        messages = [m for f in findings if (m := self._report(f))]
        if self._sink is not None:
            self._sink.write(new, messages)

    def _not_applied(self) -> GradientFinding:
        """The finding for a window whose steps applied no optimizer of the model."""
        model = self.model
        others = [name for name, _ in self._held_optimizers()]
        # On TensorFlow and torch (one device) the others are watched once built.
        supported = bool(self._other_optimizers()) or not others
        names = f"the model's optimizer ({type(model.optimizer).__name__})"
        if others and supported:
            names += f" or {', '.join(others)}"
        message = (
            f"no training step by step {self._step} applied {names}: this model's "
            "train_step does not call them, so there is nothing to record."
        )
        if not supported:
            where = ("on JAX" if keras.backend.backend() == "jax"
                     else "under tf.distribute with several replicas")  # fmt: skip
            message += (
                f" The model holds other optimizers ({', '.join(others)}; a GAN's two, "
                f"say), which GradientStats does not watch {where}."
            )
        return GradientFinding("optimizer_not_applied", ("",), message)

    def _stop_if_nonfinite(self, batch: int) -> bool:
        """`on_nan="stop"`: stops training if any gradient so far was NaN or Inf."""
        self._model_synced()
        bad = []  # (layer, variable, count), in the hooks' order
        for hook in self._installed_hooks():
            counts = gstats.nonfinite_counts(hook.read(), hook.layout)
            bad += [(*self._names[id(hook)][i], count) for i, count in enumerate(counts)
                    if count > 0]  # fmt: skip
        if not bad:
            return False
        layer, name, count = bad[0]
        finding = GradientFinding(
            "nonfinite", (layer,),
            f"non-finite gradients (NaN or Inf) by step {self._step} (batch {batch} of "
            f"epoch {self._epoch}) in {len(bad)} variable(s); the first is {layer}/{name} "
            f"({count:.0f} values); training stopped.",
        )  # fmt: skip
        self.stopped_by = finding
        self.model.stop_training = True
        self._record(batch, first=finding)
        return True

    def _report(self, finding: GradientFinding) -> str | None:
        warned = self._warned
        fresh = [layer for layer in finding.layers if (finding.condition, layer) not in warned]
        if not fresh:
            return None
        self._warned.update((finding.condition, layer) for layer in fresh)
        message = f"GradientStats: {finding.message}"
        self.warnings.append(message)
        if self.warn:
            warnings.warn(message, GradientStatsWarning, stacklevel=2)
        return message


def _layer_path(model: keras.Model, variable: keras.Variable) -> str:
    path = getattr(variable, "path", variable.name)
    prefix = f"{model.name}/"
    path = path.removeprefix(prefix)
    return path.rsplit("/", 1)[0] if "/" in path else path


def _strings(values: Any) -> bool:
    return isinstance(values, (list, tuple)) and all(isinstance(v, str) for v in values)


def _count(name: str, value: Any, allowed: str | None = None) -> Any:
    if allowed is not None and value == allowed:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        extra = f" or {allowed!r}" if allowed else ""
        raise ValueError(f"{name} must be a positive int{extra}; got {value!r}")
    return int(value)


def _range(name: str, value: Any, positive: bool = False) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        low, high = math.nan, math.nan
    if not (math.isfinite(low) and math.isfinite(high) and low < high and low > 0):
        raise ValueError(f"{name} must be (low, high) with finite 0 < low < high; got {value!r}")
    return low, high
