"""Reading an existing model: its layers, their weights, and the activation each one feeds.

Only public Keras API is used: `model.layers`, `layer.weights`, and, for Functional models,
the graph as `model.get_config()` describes it (each layer's `inbound_nodes` name the
layers whose outputs it consumes).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras

# weight name -> the layer attribute holding its initializer
INITIALIZER_ATTRIBUTES = {
    "kernel": "kernel_initializer",
    "depthwise_kernel": "depthwise_initializer",
    "pointwise_kernel": "pointwise_initializer",
    "embeddings": "embeddings_initializer",
    "recurrent_kernel": "recurrent_initializer",
}

# Layers that sit between a weighted layer and its activation without changing which
# activation the weights feed.
PASS_THROUGH = (
    keras.layers.Dropout,
    keras.layers.AlphaDropout,
    keras.layers.GaussianDropout,
    keras.layers.GaussianNoise,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
    keras.layers.Reshape,
    keras.layers.Flatten,
    keras.layers.Permute,
    keras.layers.Identity,
    keras.layers.Masking,
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D,
    keras.layers.AveragePooling3D,
    keras.layers.ZeroPadding1D,
    keras.layers.ZeroPadding2D,
    keras.layers.ZeroPadding3D,
)

ACTIVATION_LAYERS = (
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.PReLU,
    keras.layers.ELU,
    keras.layers.Softmax,
)


def is_model(layer: Any) -> bool:
    return isinstance(layer, keras.Model)


def is_activation_layer(layer: Any) -> bool:
    """An activation layer: Keras's six, or a keras_initkit layer without its own kernel."""
    if isinstance(layer, ACTIVATION_LAYERS):
        return True
    spec = getattr(layer, "nonlinearity_spec", None)
    has_kernel = any(_name(v) in INITIALIZER_ATTRIBUTES for v in layer.weights)
    return callable(spec) and not has_kernel


def _name(variable: Any) -> str:
    return str(getattr(variable, "name", "")).split("/")[-1].split(":")[0]


def own_activation(layer: Any) -> Any:
    """The layer's fused `activation=`, or None when it has none (or it is linear)."""
    activation = getattr(layer, "activation", None)
    if activation is None or activation is keras.activations.linear:
        return None
    if getattr(activation, "__name__", None) == "linear":
        return None
    return activation


def producers_from_config(model: keras.Model) -> dict[str, list[str]]:
    """Functional graphs: layer name -> names of the layers whose outputs it takes, in order."""
    result: dict[str, list[str]] = {}

    def walk(node: Any, into: list[str]) -> None:
        if isinstance(node, dict):
            if node.get("class_name") == "__keras_tensor__":
                history = node.get("config", {}).get("keras_history")
                if history:
                    into.append(history[0])
                return
            for value in node.values():
                walk(value, into)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value, into)

    for entry in model.get_config().get("layers", []):
        inputs: list[str] = []
        walk(entry.get("inbound_nodes", []), inputs)
        result[entry.get("name") or entry["config"]["name"]] = inputs
    return result


def _consumers_from_config(model: keras.Model) -> dict[str, list[str]]:
    """Functional graphs: layer name -> names of the layers that consume its outputs."""
    consumers: dict[str, list[str]] = {}
    for name, producers in producers_from_config(model).items():
        for producer in producers:
            consumers.setdefault(producer, []).append(name)
    return consumers


@dataclasses.dataclass
class LayerContext:
    """A layer of the model with what feeds on its output."""

    layer: Any
    path: str  # "outer/inner/dense"
    activation: Any  # the nonlinearity its output feeds: an object `calculate_gain` takes
    seen: str  # how that was found, for the report


def layer_contexts(model: keras.Model, prefix: str = "") -> list[LayerContext]:
    """Every leaf layer of `model` in order, nested models expanded, with its activation."""
    contexts: list[LayerContext] = []
    layers = list(model.layers)
    is_sequential = isinstance(model, keras.Sequential)
    is_functional = not is_sequential and is_functional_model(model)
    consumers = _consumers_from_config(model) if is_functional else {}
    by_name = {layer.name: layer for layer in layers}
    for index, layer in enumerate(layers):
        path = f"{prefix}{layer.name}"
        if is_model(layer):
            contexts.extend(layer_contexts(layer, prefix=path + "/"))
            continue
        activation = own_activation(layer)
        spec = getattr(layer, "nonlinearity_spec", None)
        if callable(spec) and kernel_weights(layer):  # MaxoutDense: kernel and max in one
            activation = layer
            name, param = spec()
            seen = f"own {name}" + ("" if param is None else f"({param})")
        elif activation is not None:
            seen = f"own activation {getattr(activation, '__name__', activation)!s}"
        elif is_sequential:
            activation, seen = _follow(layers, index)
        elif is_functional:
            activation, seen = _follow_graph(layer.name, consumers, by_name)
        else:
            activation, seen = None, "not visible (subclassed model): assumed linear"
        contexts.append(LayerContext(layer, path, activation, seen))
    return contexts


def is_functional_model(model: keras.Model) -> bool:
    try:
        config = model.get_config()
    except NotImplementedError:
        return False
    return isinstance(config, dict) and "layers" in config and "input_layers" in config


def _describe(layer: Any) -> str:
    return f"{type(layer).__name__} {layer.name!r}"


def _follow(layers: list[Any], index: int) -> tuple[Any, str]:
    """Sequential: the first layer after `index` that is not a pass-through."""
    for following in layers[index + 1:]:
        if isinstance(following, PASS_THROUGH):
            continue
        if is_activation_layer(following):
            return following, f"next layer {_describe(following)}"
        return None, f"linear (next is {_describe(following)})"
    return None, "linear (model output)"


def _follow_graph(
    name: str, consumers: dict[str, list[str]], by_name: dict[str, Any]
) -> tuple[Any, str]:
    """Functional: follow single consumers through pass-through layers to an activation."""
    seen_names: set[str] = set()
    while True:
        users = consumers.get(name, [])
        if not users:
            return None, "linear (model output)"
        if len(users) > 1:
            return None, f"linear (output feeds {len(users)} layers)"
        layer = by_name[users[0]]
        if layer.name in seen_names:
            return None, "linear"
        seen_names.add(layer.name)
        if isinstance(layer, PASS_THROUGH):
            name = layer.name
            continue
        if is_activation_layer(layer):
            return layer, f"next layer {_describe(layer)}"
        return None, f"linear (next is {_describe(layer)})"


def kernel_weights(layer: Any) -> list[tuple[Any, Any, str]]:
    """`(owner, variable, attribute)` for each kernel-like weight of a leaf layer.

    The owner is the object whose initializer attribute describes the variable (an RNN's
    cell, a wrapper's inner layer). Biases and normalization scales are not kernels.
    """
    if isinstance(layer, keras.layers.Bidirectional):
        return kernel_weights(layer.forward_layer) + kernel_weights(layer.backward_layer)
    if isinstance(layer, keras.layers.Wrapper):
        return kernel_weights(layer.layer)
    if isinstance(layer, keras.layers.RNN):
        return [(layer.cell, v, a) for _, v, a in kernel_weights(layer.cell)]
    if isinstance(layer, keras.layers.MultiHeadAttention):
        subs = (layer.query_dense, layer.key_dense, layer.value_dense, layer.output_dense)
        return [item for sub in subs for item in kernel_weights(sub)]
    depthwise = isinstance(layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D))
    found = []
    for variable in layer.weights:
        attribute = INITIALIZER_ATTRIBUTES.get(_name(variable))
        if depthwise and attribute == "kernel_initializer":
            attribute = "depthwise_initializer"  # Keras names the variable "kernel"
        if attribute is not None:
            found.append((layer, variable, attribute))
    return found


def bias_weights(layer: Any) -> list[tuple[Any, Any]]:
    """`(owner, variable)` for each bias of a leaf layer (and of its wrapped layers)."""
    if isinstance(layer, keras.layers.Bidirectional):
        return bias_weights(layer.forward_layer) + bias_weights(layer.backward_layer)
    if isinstance(layer, keras.layers.Wrapper):
        return bias_weights(layer.layer)
    if isinstance(layer, keras.layers.RNN):
        return [(layer.cell, v) for _, v in bias_weights(layer.cell)]
    if isinstance(layer, keras.layers.MultiHeadAttention):
        subs = (layer.query_dense, layer.key_dense, layer.value_dense, layer.output_dense)
        return [item for sub in subs for item in bias_weights(sub)]
    return [(layer, v) for v in layer.weights if _name(v) == "bias"]


def fan_layer(owner: Any, layer: Any) -> Any:
    """The layer `compute_fans` should look at for a weight owned by `owner`."""
    return owner if isinstance(owner, keras.layers.Layer) else layer
