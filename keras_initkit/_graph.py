"""Reading an existing model: its layers, their weights, and the activation each one feeds.

The graph comes from `_trace`: a Functional or Sequential model's recorded one, a custom
layer's or subclassed model's traced symbolically. Layers, `keras.ops` operations
(`h + 1.0`, `ops.relu(h)`, `h * gate`), shared layers, nested models and several inputs
and outputs are all read; where the activation after a layer cannot be known, its context
says so instead of raising.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import keras

from keras_initkit._trace import Call, Graph, TraceError, model_graph, trace_call
from keras_initkit.initializers import calculate_gain, nonlinearities

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

def is_model(layer: Any) -> bool:
    return isinstance(layer, keras.Model)


def is_activation_layer(layer: Any) -> bool:
    """An activation layer: Keras's six, or a keras_initkit layer without its own kernel."""
    if isinstance(layer, nonlinearities.ACTIVATION_LAYER_CLASSES):
        return True
    spec = getattr(layer, "nonlinearity_spec", None)
    has_kernel = any(
        _name(v) in INITIALIZER_ATTRIBUTES for v in getattr(layer, "weights", ())
    )
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


# Leaf layers whose inner layers this module unpacks itself (kernel_weights, fans).
COMPOSITE_LEAVES = (
    keras.layers.MultiHeadAttention,
    keras.layers.RNN,
    keras.layers.Wrapper,
    keras.layers.Bidirectional,
)

# keras.ops operations that only move or re-type values: the activation after them is
# the one the layer before them feeds.
PASS_THROUGH_OPS = frozenset({
    "reshape", "transpose", "expand_dims", "squeeze", "cast", "moveaxis", "swapaxes",
    "get_item", "flatten", "copy", "identity", "stop_gradient", "convert_to_tensor",
})
# keras.ops operations that combine several tensors linearly (a residual sum).
SUM_OPS = frozenset({"add", "subtract", "concatenate", "stack", "append"})
# keras.ops operations that are an activation function.
ACTIVATION_OPS = frozenset({
    "relu", "relu6", "sigmoid", "softplus", "softsign", "silu", "swish", "gelu", "elu",
    "selu", "tanh", "hard_sigmoid", "hard_silu", "hard_swish", "leaky_relu", "mish",
    "celu", "softmax", "log_softmax", "exponential", "sparse_plus", "squareplus",
})


def sublayers(layer: Any) -> list[Any]:
    """The direct sublayers of `layer` (a model's `layers`, a custom layer's attributes)."""
    if is_model(layer):
        try:
            return list(layer.layers)
        except Exception:  # noqa: BLE001 - a model that hides its layers
            pass
    flatten = getattr(layer, "_flatten_layers", None)  # Keras has no public name for it
    if flatten is None:
        return []
    return list(flatten(include_self=False, recursive=False))


def is_container(layer: Any) -> bool:
    """A model, or a custom layer made of weighted sublayers (a Transformer block)."""
    if is_model(layer):
        return True
    if isinstance(layer, COMPOSITE_LEAVES) or callable(getattr(layer, "nonlinearity_spec", None)):
        return False
    return any(sub.weights for sub in sublayers(layer))


def _op_name(op: Any) -> str:
    """`LeakyRelu` -> `leaky_relu`: the keras.ops function an operation object comes from."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(op).__name__).lower()


def _op_activation(op: Any) -> Any:
    """The activation a `keras.ops` operation computes, or None."""
    if isinstance(op, keras.layers.Layer):
        return None
    name = _op_name(op)
    if name not in ACTIVATION_OPS:
        return None
    if name == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=float(getattr(op, "negative_slope", 0.2)))
    try:
        return keras.activations.get(name)
    except ValueError:
        return None


def _gain_key(activation: Any) -> Any:
    """What makes two activations call for the same initializer."""
    try:
        return round(calculate_gain(activation), 6)
    except Exception:  # noqa: BLE001 - an activation calculate_gain does not know
        return id(activation)


@dataclasses.dataclass
class LayerContext:
    """A layer of the model with what feeds on its output."""

    layer: Any
    path: str  # "outer/inner/dense"
    activation: Any  # the nonlinearity its output feeds: an object `calculate_gain` takes
    seen: str  # how that was found, for the report


Outside = Callable[[int], "tuple[Any, str] | None"]


def _describe(layer: Any) -> str:
    return f"{type(layer).__name__} {layer.name!r}"


def _describe_op(op: Any) -> str:
    if isinstance(op, keras.layers.Layer):
        return _describe(op)
    return f"operation {getattr(op, 'name', _op_name(op))!r}"


def _after_in_sequence(layers: list[Any], index: int) -> Outside:
    """What follows a nested model's outputs: the next layers of the Sequential holding it."""
    return lambda k: _follow_sequence(layers, index)


def _follow_sequence(layers: list[Any], index: int) -> tuple[Any, str]:
    """A plain list of layers: the first layer after `index` that is not a pass-through."""
    for following in layers[index + 1:]:
        if isinstance(following, PASS_THROUGH):
            continue
        if is_activation_layer(following):
            return following, f"next layer {_describe(following)}"
        return None, f"linear (next is {_describe(following)})"
    return None, "linear (model output)"


class _Reader:
    """Walks a model's layers, nested models and custom layers, with their graphs."""

    def __init__(self) -> None:
        self.contexts: list[LayerContext] = []
        self.visited: set[int] = set()
        # every container read: (path prefix, container, its graph or None, why not)
        self.graphs: list[tuple[str, Any, Graph | None, str]] = []

    def visit(self, container: Any, prefix: str, outside: Outside | None,
              call: Call | None = None) -> None:
        graph, why = self._graph(container, call)
        self.graphs.append((prefix, container, graph, why))
        layers = self._order(container, graph)
        for index, layer in enumerate(layers):
            if id(layer) in self.visited:
                continue  # shared with an earlier model or layer: read once
            self.visited.add(id(layer))
            path = f"{prefix}{layer.name}"
            calls = graph.calls_of(layer) if graph is not None else []
            if is_container(layer):
                inner_outside: Outside | None = None
                if calls and graph is not None:
                    inner_outside = self._outputs_of(graph, calls[0], outside)
                elif graph is None and isinstance(container, keras.Sequential):
                    inner_outside = _after_in_sequence(layers, index)
                self.visit(layer, path + "/", inner_outside, calls[0] if calls else None)
                continue
            activation, seen = self._activation(layer, container, graph, why, calls,
                                                layers, index, outside)
            self.contexts.append(LayerContext(layer, path, activation, seen))

    def _graph(self, container: Any, call: Call | None) -> tuple[Graph | None, str]:
        try:
            if is_model(container) and (
                isinstance(container, keras.Sequential) or is_functional_model(container)
            ):
                return model_graph(container), ""
            if call is not None:
                return trace_call(container, call.args, call.kwargs), ""
            return trace_call(container), ""
        except TraceError as error:
            kind = "subclassed model" if is_model(container) else "custom layer"
            return None, f"{kind} {container.name!r}: {error}"

    def _order(self, container: Any, graph: Graph | None) -> list[Any]:
        """The container's layers: a model's in its order, a custom layer's in call order."""
        direct = sublayers(container)
        if is_model(container) or graph is None:
            return direct
        ordered: list[Any] = []
        for call in graph.calls:
            if (
                isinstance(call.op, keras.layers.Layer)
                and all(call.op is not o for o in ordered)
                and any(call.op is d for d in direct)
            ):
                ordered.append(call.op)
        return ordered + [d for d in direct if all(d is not o for o in ordered)]

    def _activation(self, layer: Any, container: Any, graph: Graph | None, why: str,
                    calls: list[Call], layers: list[Any], index: int,
                    outside: Outside | None) -> tuple[Any, str]:
        activation = own_activation(layer)
        spec = getattr(layer, "nonlinearity_spec", None)
        if callable(spec) and kernel_weights(layer):  # MaxoutDense: kernel and max in one
            name, param = spec()
            return layer, f"own {name}" + ("" if param is None else f"({param})")
        if activation is not None:
            return activation, f"own activation {getattr(activation, '__name__', activation)!s}"
        if graph is None:
            if isinstance(container, keras.Sequential):
                return _follow_sequence(layers, index)
            return None, f"not visible ({why}): assumed linear"
        if not calls:
            return None, "not called by its model's call: assumed linear"
        results = [self.follow(graph, call.outputs[0], outside) for call in calls
                   if call.outputs]
        if not results:
            return None, "linear (no output)"
        if len(results) == 1 or len({str(_gain_key(a)) for a, _ in results}) == 1:
            return results[0]
        return None, f"differs between its {len(results)} calls: assumed linear"

    def _outputs_of(self, graph: Graph, call: Call, outside: Outside | None) -> Outside:
        """What follows a nested model's k-th output: whatever follows the call's output."""

        def after(k: int) -> tuple[Any, str] | None:
            if k >= len(call.outputs):
                return None
            return self.follow(graph, call.outputs[k], outside)

        return after

    def follow(self, graph: Graph, tensor: int, outside: Outside | None,
               depth: int = 0) -> tuple[Any, str]:
        """The activation the tensor feeds, looking through pass-through layers and ops."""
        users = graph.consumers(tensor)
        is_output = tensor in graph.outputs
        if not users:
            if is_output and outside is not None:
                found = outside(graph.outputs.index(tensor))
                if found is not None:
                    return found
            return None, "linear (model output)" if is_output else "linear (output unused)"
        if depth > 200:
            return None, "linear (too deep to follow)"
        results = [self._through(graph, user, tensor, outside, depth) for user in users]
        if len(results) == 1 and not is_output:
            return results[0]
        count = len(results) + int(is_output)
        keys = {str(_gain_key(a)) for a, _ in results}
        if not is_output and all(a is not None for a, _ in results) and len(keys) == 1:
            return results[0][0], f"{results[0][1]} (all {count} consumers)"
        return None, f"linear (output feeds {count} layers)"

    def _through(self, graph: Graph, call: Call, tensor: int, outside: Outside | None,
                 depth: int) -> tuple[Any, str]:
        op = call.op
        name = _op_name(op)
        tensor_inputs = len(set(call.inputs))
        if isinstance(op, keras.layers.Activation) and own_activation(op) is None:
            return self.follow(graph, call.outputs[0], outside, depth + 1)
        if isinstance(op, PASS_THROUGH) or (
            not isinstance(op, keras.layers.Layer)
            and (name in PASS_THROUGH_OPS or (name in ("add", "subtract") and tensor_inputs == 1))
        ):
            if not call.outputs:
                return None, f"linear (next is {_describe_op(op)})"
            return self.follow(graph, call.outputs[0], outside, depth + 1)
        if is_activation_layer(op):
            return op, f"next layer {_describe(op)}"
        activation = _op_activation(op)
        if activation is not None:
            return activation, f"next {_describe_op(op)}"
        if isinstance(op, keras.layers.Layer) or name in SUM_OPS:
            return None, f"linear (next is {_describe_op(op)})"
        return None, f"unknown (next is {_describe_op(op)}): assumed linear"


def layer_contexts(model: keras.Model, prefix: str = "") -> list[LayerContext]:
    """Every leaf layer of `model` once, nested models and custom layers expanded.

    Each comes with the activation its output feeds, read from the graph: a Functional or
    Sequential model's own, a custom layer's or subclassed model's traced symbolically.
    Where that cannot be known the context says so (`seen`) and the activation is None.
    """
    return read_model(model, prefix)[0]


def read_model(
    model: keras.Model, prefix: str = ""
) -> tuple[list[LayerContext], list[tuple[str, Any, Graph | None, str]]]:
    """`layer_contexts`, and every container's graph: `(prefix, container, graph, why)`."""
    reader = _Reader()
    reader.visit(model, prefix, None)
    return reader.contexts, reader.graphs


def is_functional_model(model: keras.Model) -> bool:
    """A Functional model: its graph is recorded (`inputs`/`outputs` and `operations`)."""
    if isinstance(model, keras.Sequential) or not isinstance(model, keras.Model):
        return False
    try:
        return bool(model.inputs) and hasattr(model, "operations")
    except Exception:  # noqa: BLE001 - subclassed models raise on `.inputs`
        return False


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
