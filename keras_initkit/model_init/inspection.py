"""`inspect`: per-layer activation statistics of one forward pass, as a table."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_initkit.model_init import _validate
from keras_initkit.model_init._capture import capture_outputs
from keras_initkit.model_init._graph import layer_contexts
from keras_initkit.model_init.report import Report
from keras_initkit.stats.diagnosis import SYMMETRY_RTOL, diagnose
from keras_initkit.stats.instrument import remove_stale
from keras_initkit.stats.summary import layer_record
from keras_initkit.stats.symmetry import distinct_units

COLUMNS = ["layer", "class", "mean", "std", "min", "max", "zero", "saturated", "nan/inf",
           "distinct units"]
COLLAPSED_STD = 1e-3  # an activation output below this std carries (almost) nothing


def check_batch(x: Any) -> Any:
    """`x` as an array (or a structure of arrays) that is non-empty."""
    for leaf in keras.tree.flatten(x):
        array = np.asarray(keras.ops.convert_to_numpy(leaf))
        if array.size == 0 or (array.ndim and array.shape[0] == 0):
            raise ValueError(f"x must be a non-empty batch; got shape {array.shape}")
    return x


def inspect(model: keras.Model, x: Any, *, saturation: float = 0.99) -> Report:
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

    Args:
        model: any Keras model (Sequential, Functional, subclassed, nested; nested models
            are expanded into their layers).
        x: a batch the model accepts.
        saturation: how close to a bound counts as saturated. Defaults to `0.99`.

    Returns:
        A `Report`, one row per layer (`to_dataframe()` for pandas).

    Example:
    >>> model = keras.Sequential([keras.Input((4,)),
    ...                           keras.layers.Dense(3, activation="tanh", name="hidden")])
    >>> report = keras_initkit.inspect(model, np.ones((8, 4), "float32"))
    >>> report.column("layer")
    ['hidden']

    Reference:
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html)
    """
    _validate.inspect_arguments(model, x, saturation)
    # Imported here: stats.targets reads model_init._graph (a cycle until _graph moves).
    from keras_initkit.stats.targets import activation_name, unit_axis

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
    return Report(f"inspect({model.name})", COLUMNS, rows, notes)


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
