"""`keras-initkit study`: the classic initialization experiment, for any activations x inits.

The lesson (CS231n; Glorot & Bengio 2010): feed a unit-Gaussian batch `D` through `depth`
fully connected layers of `width` units with no bias, and look at each layer's output:
its mean, its std, how much of it is exactly zero, how much of it sits at the bounds of
a tanh or sigmoid, and its histogram. N(0, 0.01^2) weights collapse a tanh stack to 0,
N(0, 1) saturates it, Glorot keeps it alive; ReLU needs He. This module runs that
experiment with Keras layers and keras_initkit's initializers, on any backend, and
reports the numbers as a table, in words, as JSON and as the lesson's figure.

The lectures' other lessons are options: `batchnorm` puts BatchNormalization (with the
batch's statistics) before each activation; `dropout` puts inverted dropout after it and
reports each layer's std in training and in inference mode; `distinct_units` counts the
different functions a layer's units compute (1 for zero or constant weights: the layer
is symmetric); `gradients` back-propagates the synthetic task's loss and reports the
gradient RMS of each kernel and of each layer's output (Glorot & Bengio's figure 7);
`steps` trains the stack on the task with SGD and reports everything again.

The synthetic task: regress the 10 outputs of a fixed random teacher network
(`tanh(D A) B`, `A` and `B` Gaussian with variance `1/width`, seeded by `seed + 1`, the
targets scaled to std 1) with a linear read-out `Dense(10)` on top of the stack
(initialized like the stack), under the mean squared error.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
import textwrap
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import keras
import numpy as np

from keras_initkit._autodiff import loss_and_gradients
from keras_initkit.cli._choices import activation_function, make_initializer
from keras_initkit.model_init import lsuv
from keras_initkit.stats import diagnose, saturation_bounds
from keras_initkit.stats.export import atomic_save, atomic_write_text
from keras_initkit.stats.summary import layer_record
from keras_initkit.stats.symmetry import distinct_units

__all__ = [
    "StudyResult",
    "build_stack",
    "diagnose_stack",
    "format_result",
    "format_summary",
    "plot",
    "run",
    "run_study",
    "to_json",
]

BINS = 50
MAX_PANELS = 10  # histogram panels per row of the figure (layers evenly spread)
COLLAPSED_STD = 1e-3  # below this a layer's output carries (almost) nothing
VANISH_RATIO = 10.0  # std falling (growing) this many times over the stack is flagged
SATURATED = 0.5  # fraction of outputs at a bound that makes a layer "saturated"
DEAD = 0.9  # fraction of units that never fire on the batch that makes a layer "dead"
TASK_OUTPUTS = 10  # outputs of the synthetic task's teacher (and of the read-out)
# Two unit columns are the same function when they differ by at most this fraction of the
# layer's largest |value| (float32 rounding of identical sums; a collapsed layer's tiny
# but different units stay distinct).
DISTINCT_RTOL = 1e-5


@dataclasses.dataclass
class StudyResult:
    """One activation x initializer combination of the study.

    Attributes:
        activation: the activation's name.
        init: the initializer as given on the command line (`"normal:0.01"`, ...).
        initializer: a readable description of the initializer used.
        layers: one dict per layer, first layer first: `mean`, `std`, `min`, `max`,
            `zero_fraction`, `saturated_fraction` (NaN for unbounded activations),
            `nan_count`, `inf_count`.
            Always `distinct_units` (how many different functions the units compute on
            the batch); with dropout `train_mean`, `train_std` (after dropout, training
            mode), `inference_mean`, `inference_std` (inference mode); with gradients
            `gradient_rms` (of dL/dW, the layer's kernel) and `backprop_rms` (of dL/dh,
            the layer's output).
        histograms: per layer, `(low, high, counts)` over `BINS` equal bins.
        flags: the conditions found, in words (empty when the stack is healthy).
        steps: the SGD steps taken before this snapshot (0: at initialization).
        loss: the task's loss at this snapshot (NaN when neither gradients nor training
            were asked for).
        trained: the same study after `steps` of training, or `None`.

    Example:
    >>> from keras_initkit.cli.study import run_study
    >>> [result] = run_study(["relu"], ["he_normal"], depth=3, width=64, batch=128)
    >>> result.initializer, result.verdict
    ('HeNormal(seed=0)', 'healthy')

    Reference:
    - [He et al., 2015](https://arxiv.org/abs/1502.01852)
    """

    activation: str
    init: str
    initializer: str
    layers: list[dict[str, float]]
    histograms: list[tuple[float, float, np.ndarray]]
    flags: list[str]
    steps: int = 0
    loss: float = math.nan
    trained: StudyResult | None = None

    @property
    def verdict(self) -> str:
        """The first flag's first words, or "healthy"."""
        return self.flags[0].split(":")[0] if self.flags else "healthy"


def _describe(initializer: Any) -> str:
    """A short description of an initializer: its class and the arguments that matter."""
    if type(initializer).__module__.startswith("keras_initkit"):
        return repr(initializer)
    config = {k: v for k, v in initializer.get_config().items() if k != "seed" and v is not None}
    arguments = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v!r}"
                          for k, v in config.items())
    return f"{type(initializer).__name__}({arguments})"


def build_stack(activation: str, init: str, *, depth: int, width: int, seed: int,
                batchnorm: bool = False, dropout: float = 0.0) -> Any:
    """The study's network: `depth` bias-free `Dense(width, activation)` layers.

    Layer `i` gets the initializer `init` with the int seed `seed + i`, so every
    activation is studied with the same weights. With `batchnorm`, layer `i` is
    `Dense` (linear), `BatchNormalization` and the activation, named `layer_i`,
    `layer_i_bn` and `layer_i_act`; with `dropout`, a `Dropout` (seed `seed + i`) named
    `layer_i_dropout` follows the activation.

    Args:
        activation: an activation name.
        init: an initializer spec, as `run_study` takes them.
        depth: number of layers.
        width: units per layer, and the input width.
        seed: the first layer's weight seed.
        batchnorm: whether to normalize each layer's linear output before its activation.
        dropout: the dropout rate after each activation (0: none).

    Returns:
        A built `keras.Sequential`.

    Example:
    >>> from keras_initkit.cli.study import build_stack
    >>> model = build_stack("tanh", "glorot_normal", depth=3, width=8, seed=0)
    >>> [layer.name for layer in model.layers]
    ['layer_1', 'layer_2', 'layer_3']
    >>> model = build_stack("tanh", "glorot_normal", depth=1, width=8, seed=0,
    ...                     batchnorm=True, dropout=0.5)
    >>> [layer.name for layer in model.layers]
    ['layer_1', 'layer_1_bn', 'layer_1_act', 'layer_1_dropout']

    Reference:
    - [CS231n: weight initialization](https://cs231n.github.io/neural-networks-2/#init)
    - [Ioffe & Szegedy, 2015](https://arxiv.org/abs/1502.03167) (batch normalization)
    - [Srivastava et al., 2014](https://jmlr.org/papers/v15/srivastava14a.html) (dropout)
    """
    _check_options(batchnorm=batchnorm, dropout=dropout)
    function = activation_function(activation)
    layers = [keras.Input((width,))]
    for i in range(depth):
        name = f"layer_{i + 1}"
        kernel_initializer = make_initializer(init, activation, seed + i)
        if batchnorm:
            layers += [
                keras.layers.Dense(width, use_bias=False, name=name,
                                   kernel_initializer=kernel_initializer),
                keras.layers.BatchNormalization(name=f"{name}_bn"),
                keras.layers.Activation(function, name=f"{name}_act"),
            ]
        else:
            layers.append(keras.layers.Dense(width, activation=function, use_bias=False,
                                             name=name, kernel_initializer=kernel_initializer))
        if dropout:
            layers.append(keras.layers.Dropout(dropout, seed=seed + i, name=f"{name}_dropout"))
    return keras.Sequential(layers, name=re.sub(r"\W", "_", f"{activation}_{init}"))


def _check_options(*, batchnorm: bool = False, dropout: float = 0.0, steps: int = 0,
                   learning_rate: float = 0.01, gradients: bool = False) -> None:
    """Raises `ValueError` naming the argument, what it accepts and what was given."""
    for name, flag in (("batchnorm", batchnorm), ("gradients", gradients)):
        if not isinstance(flag, bool):
            raise ValueError(f"`{name}` must be True or False; got {flag!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not (
            0 <= dropout < 1):
        raise ValueError(f"`dropout` must be a rate in [0, 1) (0: no dropout); got {dropout!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"`steps` must be an integer >= 0 (0: no training); got {steps!r}")
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not (
            0 < learning_rate < math.inf):
        raise ValueError(f"`learning_rate` must be a number > 0; got {learning_rate!r}")


def _histogram_range(values: np.ndarray, bounds: tuple[float, float] | None
                     ) -> tuple[float, float]:
    """A bounded activation's bounds, else the range of the finite values (a constant
    layer, as after a zero init, gets a unit-wide range around its value)."""
    finite = values[np.isfinite(values)]
    if bounds is not None:
        low, high = bounds
    elif finite.size:
        low, high = float(finite.min()), float(finite.max())
    else:
        low, high = -1.0, 1.0
    if not high > low:
        low, high = low - 0.5, high + 0.5
    return low, high


def _histogram(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The `BINS` counts of a record's `BINS + 2` (under, bins, over), with the under-
    and overflow of the finite values in the end bins: the range holds every finite value,
    so only the top edge itself (the largest value) and float rounding land there."""
    counts = np.asarray(counts, dtype="float64")
    inside = counts[1:-1].copy()
    inside[0] += counts[0] - np.count_nonzero(values == -np.inf)
    inside[-1] += counts[-1] - np.count_nonzero(values == np.inf)
    return inside.round().astype("int64")


def _g(value: float) -> str:
    return f"{value:.3g}"


_LABELS = {"nonfinite": "non-finite", "identical": "identical units"}


def diagnose_stack(activation: str, layers: list[dict[str, float]]) -> list[str]:
    """The conditions of one stack, in words; an empty list means healthy.

    First symmetric: layers whose finite units all compute the same function on the batch
    (`distinct_units` 1 of `units` > 1 and no NaN/Inf: zero or constant weights; they get
    the same gradient and stay identical). Then the package's one diagnosis
    (`keras_initkit.stats.diagnose`), with the lesson's thresholds: NaN/Inf; identical
    units (every output equal, said only when not already symmetric); collapsed (std
    below `COLLAPSED_STD`); vanishing or exploding (std changing more than `VANISH_RATIO`
    times from the first layer); saturated (more than `SATURATED` of a bounded
    activation's outputs at its bounds); dead (more than `DEAD` of the units never
    fire on the batch).

    Args:
        activation: the activation's name.
        layers: per layer, the statistics of `keras_initkit.stats.summarize` (plus
            `dead_units`, `units` and `distinct_units`, when known).

    Returns:
        A list of sentences, one per condition, each starting with it and a colon.

    Example:
    >>> from keras_initkit.cli.study import diagnose_stack
    >>> rows = [dict(std=s, nan_count=0, inf_count=0, zero_fraction=0.0,
    ...              saturated_fraction=0.0) for s in (0.2, 0.01, 1e-5)]
    >>> diagnose_stack("tanh", rows)[0].split(":")[0]
    'collapsed'
    >>> for row in rows:
    ...     row.update(units=64, distinct_units=1)
    >>> diagnose_stack("tanh", rows)[0][:53]
    'symmetric: in 3 of 3 layers, from layer 1, every unit'

    Reference:
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html)
    - [Goodfellow et al., 2016, section 8.4](https://www.deeplearningbook.org/contents/optimization.html)
      (breaking the symmetry)
    """
    depth = len(layers)
    symmetric = [i + 1 for i, row in enumerate(layers)
                 if row.get("units", 0) > 1 and row.get("distinct_units", math.nan) == 1
                 and not row.get("nan_count", 0) + row.get("inf_count", 0)]
    flags = []
    if symmetric:
        flags.append(
            f"symmetric: in {len(symmetric)} of {depth} layers, from layer {symmetric[0]}, "
            f"every unit computes the same function on the batch (1 distinct unit of "
            f"{int(layers[symmetric[0] - 1]['units'])}): the units get the same gradient "
            "and stay identical through training, so each such layer works as one unit. "
            "Random initial weights break the symmetry (glorot_normal, he_normal, auto).")
    return flags + [flag for flag in _diagnosis(activation, layers)
                    if not (symmetric and flag.startswith("identical units"))]


def _diagnosis(activation: str, layers: list[dict[str, float]]) -> list[str]:
    """The package's diagnosis of one stack, one sentence per condition."""
    records = [SimpleNamespace(layer=f"layer {i + 1}", activation=activation, stats=row)
               for i, row in enumerate(layers)]
    findings = diagnose(records, std_ratio=VANISH_RATIO, collapsed_std=COLLAPSED_STD,
                        saturated_threshold=SATURATED, dead_threshold=DEAD)
    depth, flags, said = len(layers), [], set()
    for finding in findings:
        # The study says symmetric itself, first and once per stack (diagnose may too).
        if finding.condition in said or finding.condition == "symmetric":
            continue
        said.add(finding.condition)
        where = [f.layer for f in findings if f.condition == finding.condition]
        if finding.condition in ("nonfinite", "saturated", "dead", "collapsed"):
            text = (f"{finding.summary} in {len(where)} of {depth} layers, from {where[0]}: "
                    f"{finding.message}")
        else:
            text = finding.message
        flags.append(f"{_LABELS.get(finding.condition, finding.condition)}: {text}")
    return flags


def run_study(
    activations: Sequence[str],
    inits: Sequence[str],
    *,
    depth: int = 10,
    width: int = 500,
    batch: int = 1000,
    seed: int = 0,
    progress: Any = None,
    batchnorm: bool = False,
    dropout: float = 0.0,
    gradients: bool = False,
    steps: int = 0,
    learning_rate: float | None = None,
) -> list[StudyResult]:
    """Runs the experiment for every activation x initializer and returns the results.

    Args:
        activations: activation names (`keras_initkit.cli._choices.ACTIVATIONS`).
        inits: initializer specs: `"normal:STD"`, `"uniform:LIMIT"`, `"constant:C"`,
            `"zeros"`, `"standard"` (Glorot & Bengio's U[-1/sqrt(n), 1/sqrt(n)]), Keras
            names (`"glorot_normal"`, `"he_normal"`, `"lecun_normal"`, `"orthogonal"`,
            ...), `"auto"` (`initializer_for(activation)`) or `"lsuv"` (orthogonal, then
            `keras_initkit.lsuv` on the study's batch).
        depth: number of layers.
        width: units per layer (and the width of the input).
        batch: rows of the input `D ~ N(0, 1)`.
        seed: seeds the input (NumPy) and the weights (layer `i` uses `seed + i`).
        progress: optional callable, called with each result as it is done.
        batchnorm: BatchNormalization before each activation. It normalizes with the
            batch's own statistics in every pass (training and inference mode alike: the
            study looks at one batch, and moving averages at initialization say nothing).
        dropout: inverted dropout of this rate after each activation, in `[0, 1)`. The
            layer statistics are those of the activation output in training mode;
            `train_std` and `inference_std` are the std of the layer's output (after
            dropout) in training mode and in inference mode (no dropout), each from its
            own forward pass.
        gradients: back-propagate the synthetic task's loss (training mode) and report
            per layer the RMS of the kernel's gradient (`gradient_rms`, dL/dW) and of the
            output's gradient (`backprop_rms`, dL/dh).
        steps: after the snapshot at initialization, train the stack and the read-out on
            the synthetic task for this many full-batch SGD steps (`model.fit`) and take
            the snapshot again (`StudyResult.trained`).
        learning_rate: the SGD learning rate of the training steps (default 0.01, Keras's
            `SGD` default); only with `steps`.

    Returns:
        One `StudyResult` per combination, activations outer, inits inner.

    Raises:
        ValueError: if an option is outside what it accepts, or `learning_rate` is set
            without `steps`.

    Example:
    >>> from keras_initkit.cli.study import run_study
    >>> [result] = run_study(["tanh"], ["normal:0.01"], depth=4, width=100, batch=200)
    >>> result.verdict, len(result.layers)
    ('collapsed', 4)
    >>> [result] = run_study(["tanh"], ["normal:0.01"], depth=4, width=100, batch=200,
    ...                      batchnorm=True)
    >>> result.verdict
    'healthy'

    Reference:
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html)
    - [CS231n: weight initialization](https://cs231n.github.io/neural-networks-2/#init)
    - [Ioffe & Szegedy, 2015](https://arxiv.org/abs/1502.03167)
    - [Srivastava et al., 2014](https://jmlr.org/papers/v15/srivastava14a.html)
    """
    _check_options(batchnorm=batchnorm, dropout=dropout, steps=steps,
                   learning_rate=0.01 if learning_rate is None else learning_rate,
                   gradients=gradients)
    if learning_rate is not None and not steps:
        raise ValueError(f"`learning_rate` ({learning_rate!r}) is used by the training "
                         "steps only: give `steps` > 0 too")
    data = np.random.default_rng(seed).standard_normal((batch, width)).astype("float32")
    targets = _teacher_targets(data, seed) if gradients or steps else None
    results = []
    for activation in activations:
        for init in inits:
            model = build_stack(activation, init, depth=depth, width=width, seed=seed,
                                batchnorm=batchnorm, dropout=dropout)
            if init == "lsuv":
                lsuv(model, data, seed=seed)
            readout = keras.layers.Dense(
                TASK_OUTPUTS, use_bias=False, name="readout",
                kernel_initializer=make_initializer(init, activation, seed + depth))
            readout.build((None, width))
            blocks = _blocks(model)
            task = (readout, targets)
            rows, histograms, loss = _snapshot(blocks, task, data, activation, dropout,
                                               gradients)
            result = StudyResult(
                activation, init, _describe(blocks[0][0].kernel_initializer), rows,
                histograms, diagnose_stack(activation, rows), loss=loss)
            if steps:
                trainer = keras.Sequential([keras.Input((width,)), *model.layers, readout])
                trainer.compile(optimizer=keras.optimizers.SGD(learning_rate or 0.01), loss="mse")
                history = trainer.fit(data, targets, batch_size=batch, epochs=steps,
                                      shuffle=False, verbose=0)
                result.loss = float(history.history["loss"][0])  # before the first update
                rows, histograms, loss = _snapshot(blocks, task, data, activation, dropout,
                                                   gradients, need_loss=True)
                result.trained = StudyResult(
                    activation, init, result.initializer, rows, histograms,
                    diagnose_stack(activation, rows), steps=steps, loss=loss)
            results.append(result)
            if progress is not None:
                progress(result)
    return results


def _teacher_targets(data: np.ndarray, seed: int) -> np.ndarray:
    """The synthetic task's targets: a fixed random tanh network's outputs, std 1."""
    rng = np.random.default_rng(seed + 1)
    width = data.shape[1]
    hidden = rng.standard_normal((width, width)) / math.sqrt(width)
    out = rng.standard_normal((width, TASK_OUTPUTS)) / math.sqrt(width)
    targets = np.tanh(data @ hidden) @ out
    return (targets / targets.std()).astype("float32")


def _blocks(model: keras.Model) -> list[list[Any]]:
    """The stack's layers grouped per study layer (`layer_i` and its `layer_i_*`)."""
    blocks: list[list[Any]] = []
    for layer in model.layers:
        if re.fullmatch(r"layer_\d+", layer.name):
            blocks.append([])
        blocks[-1].append(layer)
    return blocks


def _forward(blocks: list[list[Any]], x: Any, *, training: bool,
             probes: list[Any] | None = None) -> tuple[list[Any], list[Any]]:
    """Per layer, the activation's output and the layer's output (after dropout).

    BatchNormalization always uses the batch's statistics; dropout is active only in
    training mode. `probes[i]`, if given, is added to layer `i`'s output.
    """
    activations, outputs = [], []
    h = keras.ops.convert_to_tensor(x)
    for i, block in enumerate(blocks):
        for layer in block:
            if isinstance(layer, keras.layers.BatchNormalization):
                h = layer(h, training=True)
            elif isinstance(layer, keras.layers.Dropout):
                activations.append(h)
                h = layer(h, training=training)
            else:
                h = layer(h)
        if len(activations) == i:
            activations.append(h)
        if probes is not None:
            h = h + probes[i]
        outputs.append(h)
    return activations, outputs


def _snapshot(blocks: list[list[Any]], task: tuple[Any, Any], data: np.ndarray,
              activation: str, dropout: float, gradients: bool,
              need_loss: bool = False) -> tuple[list[dict[str, float]], list[tuple], float]:
    """The per-layer rows and histograms of the stack as it is, and the task's loss."""
    bounds = saturation_bounds(activation)
    activations, outputs = _forward(blocks, data, training=True)
    rows, histograms = [], []
    for block, h in zip(blocks, activations, strict=True):
        values = keras.ops.convert_to_numpy(h)
        low, high = _histogram_range(values, bounds)
        record = layer_record(h, block[0].name, activation, bins=BINS,
                              histogram_range=(low, high))
        stats = record.stats
        row = {k: stats[k] for k in (
            "mean", "std", "min", "max", "zero_fraction", "saturated_fraction",
            "nan_count", "inf_count", "dead_units", "units")}
        row["distinct_units"] = _distinct(values)
        rows.append(row)
        assert record.counts is not None  # `layer_record` always counts the histogram
        histograms.append((low, high, _histogram(record.counts, values)))
    if dropout:
        _, inference = _forward(blocks, data, training=False)
        for row, train_h, infer_h in zip(rows, outputs, inference, strict=True):
            train_h, infer_h = (keras.ops.convert_to_numpy(t).astype("float64")
                                for t in (train_h, infer_h))
            row.update(train_mean=float(train_h.mean()), train_std=float(train_h.std()),
                       inference_mean=float(infer_h.mean()),
                       inference_std=float(infer_h.std()))
    loss = math.nan
    readout, targets = task
    if gradients:
        kernels = [block[0].kernel for block in blocks]
        loss, kernel_grads, output_grads = loss_and_gradients(
            lambda probes: _task_loss(blocks, readout, data, targets, probes), kernels,
            [tuple(data.shape)] * len(blocks))
        for row, gw, gh in zip(rows, kernel_grads, output_grads, strict=True):
            row["gradient_rms"] = float(np.sqrt(np.mean(gw**2)))
            row["backprop_rms"] = float(np.sqrt(np.mean(gh**2)))
    elif need_loss:
        loss = float(keras.ops.convert_to_numpy(_task_loss(blocks, readout, data, targets)))
    return rows, histograms, loss


def _task_loss(blocks: list[list[Any]], readout: Any, data: np.ndarray, targets: np.ndarray,
               probes: list[Any] | None = None) -> Any:
    """The synthetic task's mean squared error, in training mode."""
    _, outputs = _forward(blocks, data, training=True, probes=probes)
    error = readout(outputs[-1]) - keras.ops.convert_to_tensor(targets)
    return keras.ops.mean(keras.ops.square(error))


def _distinct(values: np.ndarray) -> int:
    """`distinct_units` of a layer's output, with a tolerance relative to its scale."""
    finite = np.abs(values[np.isfinite(values)])
    scale = float(finite.max()) if finite.size else 0.0
    return distinct_units(values, atol=DISTINCT_RTOL * scale, rtol=DISTINCT_RTOL)


def _cell(value: float, percent: bool = False) -> str:
    if math.isnan(value):
        return "-"
    if percent:
        return f"{100 * value:.1f}"
    return f"{value:.4g}" if value != 0 else "0"


def format_result(result: StudyResult, width: int = 80) -> str:
    """One combination as a text block: a header, one row per layer, its flags.

    With dropout or gradients a second table follows (std in training and inference
    mode; gradient RMS of each kernel and of each layer's output); after training, the
    same block again for the trained stack.

    Args:
        result: a `StudyResult`.
        width: the terminal width the flags are wrapped to.

    Returns:
        The block, without a trailing newline.

    Example:
    >>> from keras_initkit.cli.study import format_result, run_study
    >>> [result] = run_study(["tanh"], ["normal:0.01"], depth=2, width=16, batch=32)
    >>> print(format_result(result).splitlines()[0])
    tanh with normal:0.01: RandomNormal(mean=0, stddev=0.01)

    Reference:
    - [CS231n: weight initialization](https://cs231n.github.io/neural-networks-2/#init)
    """
    lines = [f"{result.activation} with {result.init}: {result.initializer}"]
    lines += _format_snapshot(result, width)
    if result.trained is not None:
        trained = result.trained
        lines += ["", f"{result.activation} with {result.init} after {trained.steps} SGD "
                      f"steps: task loss {_g(result.loss)} -> {_g(trained.loss)}"]
        lines += _format_snapshot(trained, width)
    return "\n".join(lines)


def _format_snapshot(result: StudyResult, width: int) -> list[str]:
    lines = [f"{'layer':>5} {'mean':>11} {'std':>12} {'min':>11} {'max':>11} "
             f"{'% zero':>7} {'% sat':>6} {'distinct':>8}"]
    for i, row in enumerate(result.layers):
        lines.append(
            f"{i + 1:>5} {_cell(row['mean']):>11} {_cell(row['std']):>12} "
            f"{_cell(row['min']):>11} {_cell(row['max']):>11} "
            f"{_cell(row['zero_fraction'], True):>7} {_cell(row['saturated_fraction'], True):>6}"
            f" {row['distinct_units']:>8}")
    for flag in result.flags or ["healthy: the signal keeps its scale through the stack"]:
        lines += textwrap.wrap(flag, width - 2, initial_indent="  ! " if result.flags else "  ",
                               subsequent_indent="    ")
    first = result.layers[0]
    columns = [(key, title) for key, title in _EXTRA_COLUMNS if key in first]
    if columns:
        lines.append(f"{'layer':>5}" + "".join(f" {title:>11}" for _, title in columns))
        lines += [f"{i + 1:>5}" + "".join(f" {_cell(row[key]):>11}" for key, _ in columns)
                  for i, row in enumerate(result.layers)]
    if "backprop_rms" in first and len(result.layers) > 1:
        last = len(result.layers)
        ratios = [_ratio(result.layers[0][k], result.layers[-1][k])
                  for k in ("backprop_rms", "gradient_rms")]
        lines += textwrap.wrap(
            f"gradient RMS at layer 1 / at layer {last}: {ratios[0]} for dL/dh (the "
            f"back-propagated gradient), {ratios[1]} for dL/dW (the kernel's)", width - 2,
            initial_indent="  ", subsequent_indent="  ")
    return lines


# The second table's columns: dropout's two modes, then the backward pass.
_EXTRA_COLUMNS = (("train_std", "std train"), ("inference_std", "std infer"),
                  ("gradient_rms", "dL/dW rms"), ("backprop_rms", "dL/dh rms"))


def _ratio(a: float, b: float) -> str:
    return _g(a / b) if b else "-"


def format_summary(results: list[StudyResult], width: int = 80) -> str:
    """One line per combination: first and last layer std, and the verdict.

    Args:
        results: the `StudyResult`s of one study.
        width: lines are cut to this many characters.

    Returns:
        The table, a header line first.

    Example:
    >>> from keras_initkit.cli.study import format_summary, run_study
    >>> results = run_study(["relu"], ["glorot_normal", "he_normal"], depth=10, width=200,
    ...                     batch=200)
    >>> print(format_summary(results))  # doctest: +NORMALIZE_WHITESPACE
    activation    init              std @1    std @10  verdict
    relu          glorot_normal   ...  vanishing
    relu          he_normal       ...  healthy

    Reference:
    - [He et al., 2015](https://arxiv.org/abs/1502.01852)
    """
    lines = _summary_lines(results, width)
    trained = [r for r in results if r.trained is not None]
    steps = next((r.trained.steps for r in trained if r.trained is not None), None)
    if trained:
        lines += ["", f"after {steps} SGD steps (task loss at init -> after):"]
        lines += _summary_lines(trained, width, trained=True)
    return "\n".join(lines)


def _summary_lines(results: list[StudyResult], width: int, trained: bool = False) -> list[str]:
    depth = len(results[0].layers)
    last = f"std @{depth}"
    loss = f"{'task loss':>17}" if trained else ""
    lines = [f"{'activation':<14}{'init':<16}{'std @1':>11}{last:>11}{loss}  verdict"]
    for r in results:
        shown = r.trained if trained and r.trained is not None else r
        verdicts = ", ".join(f.split(":")[0] for f in shown.flags) or "healthy"
        losses = f"{f'{_g(r.loss)} -> {_g(shown.loss)}':>17}" if trained else ""
        line = (f"{r.activation:<14}{r.init:<16}{_cell(shown.layers[0]['std']):>11}"
                f"{_cell(shown.layers[-1]['std']):>11}{losses}  {verdicts}")
        lines.append(line[:width])
    return lines


def _json_number(value: float) -> float | int | None:
    if isinstance(value, int):
        return value
    return None if math.isnan(value) or math.isinf(value) else float(value)


def to_json(results: list[StudyResult], config: dict[str, Any]) -> str:
    """The study as JSON: the configuration and, per combination, every layer's numbers,
    histogram and the flags. NaN (not applicable) and infinities are written as null.

    Each result holds the snapshot at initialization (`steps` 0, `loss`, `verdict`,
    `flags`, `layers`) and, under `after_training`, the same after the training steps
    (or null without them).

    Args:
        results: the `StudyResult`s of one study.
        config: what produced them (written under `"config"`).

    Returns:
        The JSON text, ending in a newline.

    Example:
    >>> import json
    >>> from keras_initkit.cli.study import run_study, to_json
    >>> results = run_study(["relu"], ["he_normal"], depth=2, width=8, batch=16)
    >>> payload = json.loads(to_json(results, {"depth": 2}))
    >>> payload["results"][0]["layers"][0]["saturated_fraction"] is None  # relu: no bound
    True

    Reference:
    - [CS231n: weight initialization](https://cs231n.github.io/neural-networks-2/#init)
    """
    payload = {
        "config": config,
        "results": [
            {
                "activation": r.activation,
                "init": r.init,
                "initializer": r.initializer,
                **_json_snapshot(r),
                "after_training": None if r.trained is None else _json_snapshot(r.trained),
            }
            for r in results
        ],
    }
    return json.dumps(payload, indent=1) + "\n"


def _json_snapshot(r: StudyResult) -> dict[str, Any]:
    return {
        "steps": r.steps,
        "loss": _json_number(r.loss),
        "verdict": r.verdict,
        "flags": r.flags,
        "layers": [
            {"layer": i + 1, **{k: _json_number(v) for k, v in row.items()},
             "histogram": {"low": low, "high": high, "counts": counts.tolist()}}
            for i, (row, (low, high, counts)) in enumerate(zip(r.layers, r.histograms, strict=True))
        ],
    }


def plot(results: list[StudyResult]) -> Any:
    """The lesson's figure: per combination (one row), the mean and the std per layer,
    then one histogram per layer (at most `MAX_PANELS`, spread over the depth).

    With dropout the std panel also draws each layer's output std in training and in
    inference mode; with gradients a panel after it draws the gradient RMS per layer
    (dL/dh and dL/dW: Glorot & Bengio's figure 7); after training, each combination gets
    a second row for the trained stack.

    Args:
        results: the `StudyResult`s of one study.

    Returns:
        A `matplotlib.figure.Figure` (built without pyplot); save it with `savefig`.

    Example:
    >>> from keras_initkit.cli.study import plot, run_study
    >>> figure = plot(run_study(["tanh"], ["normal:1.0"], depth=3, width=8, batch=16))
    >>> len(figure.axes)  # mean, std and one histogram per layer
    5

    Reference:
    - [CS231n: weight initialization](https://cs231n.github.io/neural-networks-2/#init)
    """
    from keras_initkit.stats.plots import draw_histogram, require_matplotlib

    require_matplotlib()
    from matplotlib.figure import Figure

    snapshots = []
    for result in results:
        snapshots.append((result, f"{result.activation}\n{result.init}"))
        if result.trained is not None:
            snapshots.append((result.trained, f"{result.activation}\n{result.init}\n"
                                              f"after {result.trained.steps} steps"))
    depth = len(results[0].layers)
    shown = sorted({round(x) for x in np.linspace(0, depth - 1, min(depth, MAX_PANELS))})
    gradients = "gradient_rms" in results[0].layers[0]
    lines = 3 if gradients else 2
    columns = lines + len(shown)
    figure = Figure(figsize=(1.9 * columns, 1.7 * len(snapshots) + 0.4), layout="constrained")
    axes = figure.subplots(len(snapshots), columns, squeeze=False)
    x = np.arange(1, depth + 1)
    for row, (result, label) in zip(axes, snapshots, strict=True):
        means = [layer["mean"] for layer in result.layers]
        stds = [layer["std"] for layer in result.layers]
        row[0].plot(x, means, "o-", markersize=3)
        row[0].set_title("mean per layer", fontsize=8)
        row[0].set_ylabel(label, fontsize=9)
        row[1].plot(x, stds, "o-", markersize=3, color="tab:red")
        plotted = stds
        if "train_std" in result.layers[0]:
            for key, style, name in (("train_std", "v--", "after dropout, training"),
                                     ("inference_std", "^:", "inference")):
                values = [layer[key] for layer in result.layers]
                row[1].plot(x, values, style, markersize=3, label=name)
                plotted = plotted + values
            row[1].legend(fontsize=5)
        _log_if_wide(row[1], plotted)
        row[1].set_title("std per layer", fontsize=8)
        if gradients:
            plotted = []
            for key, style, name in (("backprop_rms", "o-", "dL/dh"),
                                     ("gradient_rms", "s--", "dL/dW")):
                values = [layer[key] for layer in result.layers]
                row[2].plot(x, values, style, markersize=3, label=name)
                plotted += values
            _log_if_wide(row[2], plotted)
            row[2].set_title("gradient RMS per layer", fontsize=8)
            row[2].legend(fontsize=5)
        for ax, index in zip(row[lines:], shown, strict=True):
            low, high, counts = result.histograms[index]
            edges = np.linspace(low, high, len(counts) + 1)
            draw_histogram(ax, edges, np.concatenate([[0], counts, [0]]))
            ax.set_title(f"layer {index + 1}: std {_g(stds[index])}", fontsize=8)
            ax.set_yticks([])
            ax.locator_params(axis="x", nbins=3)
        for ax in row:
            ax.tick_params(labelsize=6)
            if ax.get_yscale() == "linear":
                ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        row[lines].ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
    figure.suptitle("activations per layer, by activation and initializer")
    return figure


def _log_if_wide(ax: Any, values: list[float]) -> None:
    """A log scale when the positive values span more than ten times."""
    finite = [v for v in values if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 10:
        ax.set_yscale("log")


def run(args: Any) -> int:
    """Runs `keras-initkit study` with parsed arguments; returns the exit code.

    Args:
        args: the `argparse.Namespace` of `keras_initkit.cli.build_parser()` for `study`.

    Returns:
        0. Bad input raises `keras_initkit.cli.UsageError` (exit code 2 from `main`).

    Example:
    >>> from keras_initkit.cli import build_parser
    >>> from keras_initkit.cli.study import run
    >>> args = build_parser().parse_args(["study", "--activation", "selu", "--init",
    ...                                   "auto", "--depth", "2", "--width", "8",
    ...                                   "--batch", "16", "--json", "-"])
    >>> run(args)  # doctest: +ELLIPSIS
    {...}
    0

    Reference:
    - [Klambauer et al., 2017](https://arxiv.org/abs/1706.02515) (SELU with LeCun normal)
    """
    from keras_initkit.cli import UsageError

    if args.plot:
        try:
            from keras_initkit.stats.plots import require_matplotlib

            require_matplotlib()
        except ImportError as error:
            raise UsageError(f"--plot: {error}") from None
    if args.learning_rate is not None and not args.steps:
        raise UsageError(f"--learning-rate {args.learning_rate:g}: the learning rate of the "
                         "training steps; give --steps N too")
    quiet = args.json == "-"
    say = (lambda *a, **k: None) if quiet else print
    say(f"D ~ N(0, 1) of shape ({args.batch}, {args.width}) through {args.depth} bias-free "
        f"Dense({args.width}) layers{_extras(args)}\n"
        f"(backend {keras.backend.backend()}, seed {args.seed})\n")
    results = run_study(
        args.activation, args.init, depth=args.depth, width=args.width, batch=args.batch,
        seed=args.seed, progress=lambda result: say(format_result(result) + "\n"),
        batchnorm=args.batchnorm, dropout=args.dropout, gradients=args.gradients,
        steps=args.steps, learning_rate=args.learning_rate)
    say(format_summary(results))
    say("\nRule of thumb: tanh/sigmoid -> Glorot (Xavier), ReLU -> He, SELU -> LeCun"
        "\nnormal; --init auto uses keras_initkit.initializer_for(activation).")
    if args.json:
        config = {k: getattr(args, k) for k in ("activation", "init", "depth", "width",
                                                   "batch", "seed", "batchnorm", "dropout",
                                                   "gradients", "steps")}
        config["learning_rate"] = (args.learning_rate or 0.01) if args.steps else None
        config["backend"] = keras.backend.backend()
        text = to_json(results, config)
        if quiet:
            sys.stdout.write(text)
        else:
            _write(args.json, "--json", lambda p: atomic_write_text(p, text))
            say(f"wrote {args.json}")
    if args.plot:
        figure = plot(results)
        _write(args.plot, "--plot", lambda p: atomic_save(p, lambda t: figure.savefig(t, dpi=100)))
        say(f"wrote {args.plot}")
    return 0


def _extras(args: Any) -> str:
    """The options' words for the run's first line (empty without options)."""
    words = []
    if args.batchnorm:
        words.append("BatchNormalization before each activation (batch statistics)")
    if args.dropout:
        words.append(f"inverted dropout {args.dropout:g} after each activation")
    if args.gradients or args.steps:
        words.append(f"task: MSE of a linear read-out vs a random tanh teacher's "
                     f"{TASK_OUTPUTS} outputs")
    if args.gradients:
        words.append("gradients of the task's loss back-propagated (training mode)")
    if args.steps:
        words.append(f"then {args.steps} full-batch SGD steps (learning rate "
                     f"{args.learning_rate or 0.01:g}) on the task")
    return "".join(f",\n{word}" for word in words)


def _write(path: str, option: str, write: Any) -> None:
    from keras_initkit.cli import UsageError

    try:
        write(path)
    except OSError as error:
        raise UsageError(f"{option}: cannot write {path!r}: {error.strerror or error}") from None
