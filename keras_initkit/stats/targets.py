"""Which layers the statistics callback watches, and what their outputs look like.

By default: every layer whose output is an activation (Keras's activation layers, our
activation layers, and weighted layers with a non-linear `activation=`), found by walking
`model.layers` with nested models expanded, in model order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import keras

from keras_initkit._graph import (
    is_activation_layer,
    is_model,
    own_activation,
)
from keras_initkit.initializers import nonlinearities

LayerSelection = None | Sequence[Any] | Callable[[Any], bool]


@dataclasses.dataclass
class Target:
    """A watched layer: the layer, its path in the model and its activation's name."""

    layer: Any
    path: str
    activation: str


def walk(model: keras.Model, prefix: str = "") -> list[tuple[Any, str]]:
    """`(layer, path)` for every leaf layer of `model`, nested models expanded."""
    result: list[tuple[Any, str]] = []
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if is_model(layer):
            result.extend(walk(layer, prefix=path + "/"))
        else:
            result.append((layer, path))
    return result


def activation_name(layer: Any) -> str | None:
    """The name of the nonlinearity `layer` outputs, or None for a linear layer."""
    spec = getattr(layer, "nonlinearity_spec", None)
    if callable(spec):
        try:
            return str(spec()[0])
        except ValueError:  # an unbuilt Maxout: its piece count is not known yet
            return type(layer).__name__.lower()
    name = nonlinearities.keras_layer_name(layer)
    if name is not None:
        return name
    activation = own_activation(layer)
    if activation is None:
        return None
    return str(getattr(activation, "__name__", type(activation).__name__))


def select(model: keras.Model, layers: LayerSelection) -> list[Target]:
    """The targets of `model` for a `layers=` selection (see `ActivationStats`)."""
    leaves = walk(model)
    if layers is None:
        chosen = [
            (layer, path)
            for layer, path in leaves
            if is_activation_layer(layer) or activation_name(layer) is not None
        ]
    elif callable(layers) and not isinstance(layers, (list, tuple)):
        chosen = [(layer, path) for layer, path in leaves if layers(layer)]
    else:
        chosen = []
        for item in layers:
            if isinstance(item, type):
                matches = [(lay, p) for lay, p in leaves if isinstance(lay, item)]
            else:
                matches = [(lay, p) for lay, p in leaves if item in (lay.name, p)]
                if not matches:
                    names = ", ".join(repr(p) for _, p in leaves)
                    raise ValueError(
                        f"layers: the model has no layer named {item!r}; its layers are "
                        f"{names}"
                    )
            chosen.extend(m for m in matches if all(m[0] is not c[0] for c in chosen))
        chosen.sort(key=lambda pair: [p for _, p in leaves].index(pair[1]))
    targets: list[Target] = []
    for layer, path in chosen:
        if any(t.layer is layer for t in targets):
            continue  # a layer shared by two nested models is watched once
        targets.append(Target(layer, path, activation_name(layer) or "linear"))
    if not targets:
        raise ValueError(
            "layers: no layer of the model was selected (by default ActivationStats watches "
            "activation layers and layers with a non-linear activation=; pass layers= "
            "with names, classes or a predicate to choose others)"
        )
    return targets


def unit_axis(layer: Any) -> int:
    """The axis of `layer`'s output that holds its units (channels)."""
    return 1 if getattr(layer, "data_format", None) == "channels_first" else -1


def known_width(layer: Any, axis: int) -> int | None:
    """The size of the unit axis of `layer`'s output, when public API can tell it."""
    try:
        shape = layer.output.shape  # Functional/Sequential graph layers
    except (AttributeError, ValueError):
        return None
    if not shape or len(shape) < 2:
        return None
    width = shape[axis]
    return int(width) if width is not None else None
