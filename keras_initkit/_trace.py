"""The call graph of a model or of a custom layer, as Keras records it symbolically.

A Functional (or built Sequential) model already holds its graph: each output tensor
remembers the operation call (`Node`) that made it. A custom layer or a subclassed model
does not, so its `call` is run once on symbolic `KerasTensor`s: every sublayer and every
`keras.ops` operation it calls (`x + attn(x)`, `ops.relu(h)`) records a node, exactly as
when building a Functional model. Only the layer's own `call` is traced; its sublayers
stay single operations, and are traced in turn if they are custom layers themselves.

Keras keeps this graph in two attributes it has no public accessor for: a tensor's
`_keras_history` (operation, node index, tensor index) and an operation's
`_inbound_nodes`. They are read here and nowhere else; if they change, tracing fails and
the callers report the graph as not visible instead of raising.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import keras


class TraceError(Exception):
    """The graph of a model or layer could not be read."""


@dataclasses.dataclass(eq=False)
class Call:
    """One call of an operation (a layer or a `keras.ops` function) in a graph."""

    op: Any
    inputs: list[int]  # ids of the KerasTensors it took, flattened in argument order
    outputs: list[int]  # ids of the KerasTensors it returned
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclasses.dataclass(eq=False)
class Graph:
    """Operation calls in topological order, between input and output tensors."""

    calls: list[Call]
    inputs: list[int]
    outputs: list[int]
    tensors: dict[int, Any]  # keeps the tensors alive, so their ids stay unique

    def __post_init__(self) -> None:
        self._consumers: dict[int, list[Call]] = {}
        self._producer: dict[int, Call] = {}
        for call in self.calls:
            for tensor in call.inputs:
                users = self._consumers.setdefault(tensor, [])
                if call not in users:
                    users.append(call)
            for tensor in call.outputs:
                self._producer[tensor] = call

    def consumers(self, tensor: int) -> list[Call]:
        return self._consumers.get(tensor, [])

    def producer(self, tensor: int) -> Call | None:
        return self._producer.get(tensor)

    def calls_of(self, op: Any) -> list[Call]:
        return [call for call in self.calls if call.op is op]


def _direct_sublayers(layer: Any) -> list[Any]:
    flatten = getattr(layer, "_flatten_layers", None)  # Keras has no public name for it
    return [] if flatten is None else list(flatten(include_self=False, recursive=False))


def _keras_tensors(structure: Any) -> list[Any]:
    return [t for t in keras.tree.flatten(structure) if isinstance(t, keras.KerasTensor)]


def _node_of(tensor: Any) -> Any:
    history = getattr(tensor, "_keras_history", None)
    if history is None or history.operation is None:
        return None
    return history.operation._inbound_nodes[history.node_index]


def graph_between(inputs: Any, outputs: Any) -> Graph:
    """The calls that lead from the `inputs` tensors to the `outputs` tensors."""
    try:
        flat_in, flat_out = _keras_tensors(inputs), _keras_tensors(outputs)
        stop = {id(t) for t in flat_in}
        tensors = {id(t): t for t in flat_in + flat_out}
        done: set[int] = set()
        order: list[Any] = []
        # iterative post-order walk (DenseNet graphs are deeper than Python's recursion)
        stack: list[tuple[Any, bool]] = [(_node_of(t), False) for t in reversed(flat_out)
                                         if id(t) not in stop]
        while stack:
            node, expanded = stack.pop()
            if node is None or id(node) in done:
                continue
            if expanded:
                done.add(id(node))
                order.append(node)
                continue
            stack.append((node, True))
            for parent in reversed(list(node.input_tensors)):
                if id(parent) not in stop:
                    stack.append((_node_of(parent), False))
        calls = []
        for node in order:
            if getattr(node, "is_input", False) and not node.input_tensors:
                continue  # an InputLayer's own node
            ins = list(node.input_tensors)
            outs = list(node.output_tensors)
            for tensor in ins + outs:
                tensors[id(tensor)] = tensor
            calls.append(
                Call(node.operation, [id(t) for t in ins], [id(t) for t in outs],
                     tuple(node.arguments.args), dict(node.arguments.kwargs))
            )
    except Exception as error:  # noqa: BLE001 - a graph Keras did not record as expected
        raise TraceError(f"could not read the graph ({type(error).__name__}: {error})") from error
    return Graph(calls, [id(t) for t in flat_in], [id(t) for t in flat_out], tensors)


def model_graph(model: keras.Model) -> Graph:
    """The graph of a Functional model or a built Sequential model."""
    try:
        inputs, outputs = model.inputs, model.outputs
    except Exception as error:  # noqa: BLE001 - Sequential without a defined input
        raise TraceError(f"{model.name!r} has no symbolic inputs ({error})") from error
    if not inputs or not outputs:
        raise TraceError(f"{model.name!r} has no symbolic inputs")
    return graph_between(inputs, outputs)


def _inputs_from_build_config(layer: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Fresh symbolic inputs with the shapes the layer was built with."""
    try:
        config = layer.get_build_config() or {}
    except Exception as error:  # noqa: BLE001
        raise TraceError(f"{layer.name!r} has no build config ({error})") from error

    def symbolic(shape: Any) -> Any:
        if isinstance(shape, (list, tuple)) and all(
            d is None or isinstance(d, int) for d in shape
        ):
            return keras.KerasTensor(tuple(shape))
        if isinstance(shape, dict):
            return {key: symbolic(value) for key, value in shape.items()}
        if isinstance(shape, (list, tuple)):
            return [symbolic(value) for value in shape]
        raise TraceError(f"{layer.name!r} was built with an input shape it cannot read")

    if "input_shape" in config:
        return (symbolic(config["input_shape"]),), {}
    if "shapes_dict" in config:
        kwargs = {}
        for key, shape in config["shapes_dict"].items():
            name = key[: -len("_shape")] if key.endswith("_shape") else key
            kwargs[name] = symbolic(shape)
        return (), kwargs
    raise TraceError(f"{layer.name!r} records no input shape")


_BATCH, _LENGTH = 2, 8  # sizes for unknown dimensions when tracing


def _concrete(value: Any) -> Any:
    """A new symbolic input like `value`, with unknown dimensions made concrete."""
    if not isinstance(value, keras.KerasTensor):
        return value
    shape = tuple(
        (_BATCH if axis == 0 else _LENGTH) if d is None else d
        for axis, d in enumerate(value.shape)
    )
    return keras.Input(batch_shape=shape, dtype=value.dtype)


def trace_call(layer: Any, args: Any = None, kwargs: Any = None) -> Graph:
    """Runs `layer.call` on symbolic tensors and returns the graph of what it called.

    `args`/`kwargs` are the symbolic arguments of a call of `layer` in an enclosing graph
    (so masks and extra inputs are the real ones); without them, inputs with the shapes
    the layer was built with are made.
    """
    if args is None and kwargs is None:
        args, kwargs = _inputs_from_build_config(layer)
    # fresh inputs of concrete sizes: code such as a causal mask built from
    # `ops.shape(x)` cannot run on unknown (None) dimensions
    args, kwargs = keras.tree.map_structure(_concrete, (tuple(args or ()), dict(kwargs or {})))
    if not _keras_tensors((args, kwargs)):
        raise TraceError(f"{layer.name!r} takes no tensor input to trace")
    # A sublayer called on symbolic tensors reports its output through its own
    # `compute_output_spec`, which may not take every argument its `call` takes
    # (keras-hub's CachedMultiHeadAttention and `cache=`); the generic one runs `call`.
    patched = []
    for sub in _direct_sublayers(layer):
        if "compute_output_spec" not in vars(sub):
            spec = functools.partial(keras.Operation.compute_output_spec, sub)
            object.__setattr__(sub, "compute_output_spec", spec)
            patched.append(sub)
    try:
        outputs = layer.call(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - code that only runs on real tensors
        raise TraceError(
            f"its call could not run symbolically ({type(error).__name__}: "
            f"{str(error).strip().splitlines()[0] if str(error).strip() else ''})"
        ) from error
    finally:
        for sub in patched:
            object.__delattr__(sub, "compute_output_spec")
    if not _keras_tensors(outputs):
        raise TraceError("its call returned no symbolic tensor")
    return graph_between((args, kwargs), outputs)
