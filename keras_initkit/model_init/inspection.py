"""`inspect`: per-layer activation statistics of one forward pass (and, with targets, the
weight gradients of one backward pass), as a table."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_initkit._capture import capture_outputs
from keras_initkit._graph import layer_contexts
from keras_initkit.model_init import _validate
from keras_initkit.model_init.report import Report
from keras_initkit.stats import gradient_diagnosis
from keras_initkit.stats import gradients as gstats
from keras_initkit.stats.diagnosis import SYMMETRY_RTOL, diagnose
from keras_initkit.stats.gradient_output import GradientRecord
from keras_initkit.stats.instrument import remove_stale
from keras_initkit.stats.summary import layer_record
from keras_initkit.stats.symmetry import distinct_units
from keras_initkit.stats.targets import activation_name, unit_axis

COLUMNS = ["layer", "class", "mean", "std", "min", "max", "zero", "saturated", "nan/inf",
           "distinct units"]
GRADIENT_COLUMNS = ["grad rms"]  # added when targets are given
COLLAPSED_STD = 1e-3  # an activation output below this std carries (almost) nothing


def check_batch(x: Any) -> Any:
    """`x` as an array (or a structure of arrays) that is non-empty."""
    for leaf in keras.tree.flatten(x):
        array = np.asarray(keras.ops.convert_to_numpy(leaf))
        if array.size == 0 or (array.ndim and array.shape[0] == 0):
            raise ValueError(f"x must be a non-empty batch; got shape {array.shape}")
    return x


def inspect(
    model: keras.Model, x: Any, y: Any = None, *, saturation: float = 0.99, loss: Any = None
) -> Report:
    """Runs `model` once on `x` and returns every layer's output statistics.

    The lesson of the classic initialization experiments, on your own model: per layer,
    the mean, std, min and max of its output, the fraction of exact zeros (dead ReLUs),
    the fraction saturated (|y| within 1% of the bound of a tanh, sigmoid, hard_sigmoid
    or softsign output) and the count of NaN/Inf values. One eager forward pass in
    inference mode; the model is not changed. The numbers are those `ActivationStats`
    records for the same batch (one statistics path), each row's full statistics are in
    `row["stats"]`, and the notes come from `keras_initkit.stats.diagnose` (the same
    diagnosis as the callback's, plus `collapsed` for activation outputs with std below
    1e-3, and `symmetric` for layers whose "distinct units" count is 1: every unit
    computes the same function, the mark of a zero or constant initialization).

    With targets `y`, one backward pass adds the column "grad rms": the RMS of the
    gradient of the loss with respect to the layer's weight matrices (its kernel; all its
    trainable variables if it has no matrix), the *weight* gradient dL/dW on this batch,
    computed by the same fold as `GradientStats` (the per-variable statistics are in
    `row["gradients"]`). The loss is `loss=` when given (its batch mean, summed over the
    outputs), else the compiled loss as `fit` computes it (regularization included). No
    optimizer step is taken and no variable is assigned; the pass runs in inference
    mode, without loss scaling. The notes then add `keras_initkit.stats.gradient_diagnosis`'s
    findings: gradients vanishing (or exploding) towards the input, non-finite gradients,
    layers whose gradient is exactly zero.

    Args:
        model: any Keras model (Sequential, Functional, subclassed, nested; nested models
            are expanded into their layers).
        x: a batch the model accepts.
        y: the targets of `x`, for the backward pass (`None`: forward pass only).
        saturation: how close to a bound counts as saturated. Defaults to `0.99`.
        loss: the loss of the backward pass: a Keras loss name (`"mse"`), a
            `keras.losses.Loss` or a function `(y_true, y_pred)`. Needs `y`. Defaults to
            the compiled loss; an uncompiled model needs it.

    Returns:
        A `Report`, one row per layer (`to_dataframe()` for pandas).

    Example:
    >>> model = keras.Sequential([keras.Input((4,)),
    ...                           keras.layers.Dense(3, activation="tanh", name="hidden")])
    >>> report = keras_initkit.inspect(model, np.ones((8, 4), "float32"))
    >>> report.column("layer")
    ['hidden']
    >>> with_gradients = keras_initkit.inspect(model, np.ones((8, 4), "float32"),
    ...                                        np.zeros((8, 3), "float32"), loss="mse")
    >>> bool(with_gradients.column("grad rms")[0] > 0)
    True

    Reference:
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html)
    """
    _validate.inspect_arguments(model, x, saturation)
    _validate.inspect_targets(model, x, y, loss)
    check_batch(x)
    remove_stale(model)  # what a fit that raised left behind (see ActivationStats)
    contexts = layer_contexts(model)
    leaves = [c.layer for c in contexts]
    with capture_outputs(leaves) as outputs:
        model(x, training=False)
    rows: list[dict[str, Any]] = []
    records = []
    for context in contexts:
        layer = context.layer
        output = outputs.get(id(layer))
        if output is None:
            continue
        activation = activation_name(layer) or "linear"
        record = layer_record(output, context.path, activation, threshold=saturation,
                              unit_axis=unit_axis(layer))
        records.append(record)
        stats = record.stats
        stats["distinct_units"] = _distinct(output, unit_axis(layer), stats["units"])
        rows.append(
            {
                "layer": context.path,
                "class": type(layer).__name__,
                "mean": stats["mean"],
                "std": stats["std"],
                "min": stats["min"],
                "max": stats["max"],
                "zero": stats["zero_fraction"],
                "saturated": stats["saturated_fraction"],
                "nan/inf": int(stats["nan_count"] + stats["inf_count"]),
                "distinct units": _cell(stats["distinct_units"]),
                "activation": activation,
                "stats": stats,
            }
        )
    findings = diagnose(records, collapsed_std=COLLAPSED_STD)
    notes = [f"{f.layer}: {f.summary}" for f in findings]
    if y is None:
        return Report(f"inspect({model.name})", COLUMNS, rows, notes)
    gradient_records = _gradient_records(model, x, y, loss, contexts)
    layer_rms = {layer.name: layer.rms for layer in gradient_diagnosis._layers(gradient_records)}
    for row in rows:
        row["grad rms"] = layer_rms.get(row["layer"])
        row["gradients"] = {f"{r.layer}/{r.variable}": r.stats for r in gradient_records
                            if r.layer == row["layer"]}
    notes += [f"{f.layers[0]}: {f.message}"
              for f in gradient_diagnosis.diagnose(gradient_records)]
    return Report(f"inspect({model.name})", COLUMNS + GRADIENT_COLUMNS, rows, notes)


def _gradient_records(
    model: keras.Model, x: Any, y: Any, loss: Any, contexts: list[Any]
) -> list[GradientRecord]:
    """One `GradientRecord` per trainable variable of the listed layers, in forward order.

    The statistics are `keras_initkit.stats.gradients`' fold of one step whose weights
    do not change; the update statistics are NaN (no step was taken).
    """
    from keras_initkit.model_init import _backward  # imports a backend's autodiff

    grads = _backward.gradients(model, x, y, loss)
    by_variable = {id(v): g for v, g in zip(model.trainable_variables, grads, strict=True)}
    owners, chosen, seen = [], [], set()
    for context in contexts:
        for variable in context.layer.trainable_weights:
            if id(variable) in seen or id(variable) not in by_variable:
                continue
            seen.add(id(variable))
            owners.append(context.path)
            chosen.append(variable)
    if not chosen:
        return []
    layout = gstats.GradientLayout(sizes=tuple(int(np.prod(v.shape)) for v in chosen),
                                   ndims=tuple(len(v.shape) for v in chosen))
    weights = [keras.ops.convert_to_numpy(v) for v in chosen]
    state = gstats.fold(keras.ops.convert_to_tensor(layout.empty()),
                        [by_variable[id(v)] for v in chosen], weights, weights, layout)
    records = []
    for owner, variable, (stats, counts) in zip(
            owners, chosen, gstats.finalize(keras.ops.convert_to_numpy(state), layout),
            strict=True):
        stats.update(update_norm=np.nan, update_rms=np.nan, update_ratio=np.nan)
        records.append(GradientRecord(0, 0, 0, 0, owner, variable.name, stats,
                                      layout.edges, counts))
    return records


def _distinct(output: Any, axis: int, units: float) -> float:
    """How many different unit columns `output` has (NaN where it has no unit axis).

    The tolerance is relative to the layer's largest finite |value|, so a collapsed layer
    (std 1e-7, still random) is not mistaken for a symmetric one.
    """
    if not np.isfinite(units) or units < 1:
        return float("nan")
    values = np.moveaxis(np.asarray(keras.ops.convert_to_numpy(output), "float64"), axis, -1)
    finite = np.abs(values[np.isfinite(values)])
    scale = float(finite.max()) if finite.size else 0.0
    return float(distinct_units(values, atol=SYMMETRY_RTOL * scale, rtol=SYMMETRY_RTOL))


def _cell(distinct: float) -> int | None:
    """The count as an int for the table (None, printed `-`, for layers without units)."""
    return int(distinct) if np.isfinite(distinct) else None
