"""`inspect`: per-layer activation statistics of one forward pass, as a table."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from keras_initkit.model_init._capture import capture_outputs
from keras_initkit.model_init import _validate
from keras_initkit.model_init._graph import (
    is_activation_layer,
    layer_contexts,
    own_activation,
)
from keras_initkit.model_init.report import Report
from keras_initkit.stats import saturation_bounds, summarize
from keras_initkit.stats.instrument import remove_stale

COLUMNS = ["layer", "class", "mean", "std", "min", "max", "zero", "saturated", "nan/inf"]


def check_batch(x: Any) -> Any:
    """`x` as an array (or a structure of arrays) that is non-empty."""
    for leaf in keras.tree.flatten(x):
        array = np.asarray(keras.ops.convert_to_numpy(leaf))
        if array.size == 0 or (array.ndim and array.shape[0] == 0):
            raise ValueError(f"x must be a non-empty batch; got shape {array.shape}")
    return x


def _bounds(layer: Any) -> Any:
    activation = own_activation(layer)
    if activation is None and isinstance(layer, keras.layers.Activation):
        activation = layer.activation
    return saturation_bounds(activation)


def inspect(model: keras.Model, x: Any, *, saturation: float = 0.99) -> Report:
    """Runs `model` once on `x` and returns every layer's output statistics.

    The lesson of the classic initialization experiments, on your own model: per layer,
    the mean, std, min and max of its output, the fraction of exact zeros (dead ReLUs),
    the fraction saturated (|y| within 1% of the bound of a tanh, sigmoid, hard_sigmoid
    or softsign output) and the count of NaN/Inf values. One eager forward pass in
    inference mode; the model is not changed.

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
    check_batch(x)
    remove_stale(model)  # what a fit that raised left behind (see ActivationStats)
    contexts = layer_contexts(model)
    leaves = [c.layer for c in contexts]
    with capture_outputs(leaves) as outputs:
        model(x, training=False)
    rows: list[dict[str, Any]] = []
    for context in contexts:
        layer = context.layer
        output = outputs.get(id(layer))
        if output is None:
            continue
        bounds = _bounds(layer)
        stats = summarize(output, bounds, saturation)
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
                "activation": is_activation_layer(layer) or own_activation(layer) is not None,
            }
        )
    notes = []
    for row in rows:
        if row["nan/inf"]:
            notes.append(f"{row['layer']}: {row['nan/inf']} non-finite values")
        elif row["activation"] and not math.isnan(row["std"]) and row["std"] < 1e-3:
            notes.append(f"{row['layer']}: activations collapsed to ~0 (std {row['std']:.2g})")
        elif not math.isnan(row["saturated"]) and row["saturated"] > 0.5:
            notes.append(f"{row['layer']}: {row['saturated']:.0%} of units saturated")
        elif row["activation"] and row["zero"] > 0.9:
            notes.append(f"{row['layer']}: {row['zero']:.0%} of outputs are exactly zero")
    return Report(f"inspect({model.name})", COLUMNS, rows, notes)
