"""Fans: how many weights feed each output unit (fan_in) and leave each input unit (fan_out)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import keras

from keras_initkit.initializers._checks import check_axes, check_shape


class Fans(NamedTuple):
    """`(fan_in, fan_out)`, unpackable like the tuple Keras's `compute_fans` returns.

    Attributes:
        fan_in: the number of weights that feed each output unit.
        fan_out: the number of weights each input unit feeds.

    Example:
    >>> fan_in, fan_out = keras_initkit.initializers.Fans(9, 18)
    >>> fan_in
    9

    Reference:
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html)
    """

    fan_in: float
    fan_out: float


def _prod(values: Any) -> int:
    return int(math.prod(int(v) for v in values))


def _shape_fans(shape: tuple[int, ...], input_axes: Any, output_axes: Any) -> Fans:
    """Keras's convention for a bare shape (`keras.src.initializers.compute_fans`)."""
    rank = len(shape)
    input_axes = check_axes("input_axes", input_axes)
    output_axes = check_axes("output_axes", output_axes)
    if input_axes is not None and output_axes is not None:
        for argument, axes in (("input_axes", input_axes), ("output_axes", output_axes)):
            for axis in axes:
                if not -rank <= axis < rank:
                    raise ValueError(
                        f"{argument} must index the kernel's {rank} axes "
                        f"(from {-rank} to {rank - 1}); got {axes!r} for shape {shape}"
                    )
        return Fans(
            _prod(shape[a] for a in input_axes), _prod(shape[a] for a in output_axes)
        )
    if rank == 0:
        return Fans(1, 1)
    if rank == 1:
        return Fans(shape[0], shape[0])
    if rank == 2:
        return Fans(shape[0], shape[1])
    receptive_field = _prod(shape[:-2])
    return Fans(shape[-2] * receptive_field, shape[-1] * receptive_field)


def compute_fans(
    shape_or_layer: Any,
    input_axes: Any = None,
    output_axes: Any = None,
    *,
    weight: Any = None,
) -> Fans:
    """Returns `(fan_in, fan_out)` for a kernel shape or for a weight of a built layer.

    **Given a shape**, it follows Keras exactly (what an initializer sees inside
    `Dense(kernel_initializer=...)`): rank 2 is `(in, out)`; rank >= 3 is a convolution
    kernel `(*kernel_size, in, out)` whose fans are multiplied by the receptive field;
    with both `input_axes` and `output_axes`, the fans are the products of those axes.

    **Given a layer**, it counts the connections the layer really makes, which a shape
    cannot tell:

    | layer | kernel | fan_in | fan_out |
    |---|---|---|---|
    | Dense | (in, out) | in | out |
    | Conv1D/2D/3D (groups g, strides s) | (*k, in/g, f) | in/g * prod(k) | f/g * prod(k)/prod(s) |
    | DepthwiseConv1D/2D | (*k, C, m) | prod(k) (Keras: C * prod(k)) | m * prod(k) / prod(s) |
    | SeparableConv (depthwise / pointwise) | | as depthwise / C*m | / filters |
    | Conv1D/2D/3DTranspose | (*k, filters, in) | in * prod(k) / prod(s) | filters * prod(k) |
    | EinsumDense, MultiHeadAttention | from the equation | product of input axes | of output axes |
    | Embedding | (vocab, dim) | 1 (one row per token) | dim |
    | LSTM / GRU (kernel, recurrent_kernel) | (in, gates * units) | in (units) | units per gate |
    | ConvLSTM1D/2D/3D | (*k, in, 4 * filters) | in * prod(k) | filters * prod(k) |

    Strides divide the fan that counts, per unit, connections that only every s-th
    position makes (the average number of taps), so a stride-1 layer gets the textbook
    value. Bidirectional and other wrappers are searched for the weight.

    Args:
        shape_or_layer: a kernel shape (tuple of ints), or a built `keras.layers.Layer`.
        input_axes: shape only: the kernel axes that count for fan_in (Keras 3.15).
        output_axes: shape only: the kernel axes that count for fan_out.
        weight: layer only: which weight, as a variable of the layer or its name
            (`"kernel"`, `"recurrent_kernel"`, `"depthwise_kernel"`, `"pointwise_kernel"`,
            `"embeddings"`, or a path such as `"query/kernel"`). Defaults to the layer's
            main kernel.

    Returns:
        A `Fans(fan_in, fan_out)` named tuple.

    Example:
    >>> from keras_initkit.initializers import compute_fans
    >>> compute_fans((3, 3, 32, 1))
    Fans(fan_in=288, fan_out=9)
    >>> layer = keras.layers.DepthwiseConv2D(3)
    >>> layer.build((None, 8, 8, 32))
    >>> compute_fans(layer)
    Fans(fan_in=9, fan_out=9)

    Reference:
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html)
    - [keras-team/keras#11773](https://github.com/keras-team/keras/issues/11773)
      (depthwise fan_in)
    """
    if isinstance(shape_or_layer, keras.layers.Layer):
        if input_axes is not None or output_axes is not None:
            raise ValueError(
                "input_axes and output_axes apply to a shape; a layer's fans come from "
                "its own structure. Pass the kernel shape to set axes yourself."
            )
        return _layer_fans(shape_or_layer, weight)
    if weight is not None:
        raise ValueError("weight applies to a layer; got a shape with weight=" f"{weight!r}")
    if isinstance(shape_or_layer, (str, bytes)):
        raise ValueError(
            "shape_or_layer must be a kernel shape (tuple of ints) or a built Keras layer; "
            f"got {shape_or_layer!r}"
        )
    return _shape_fans(check_shape(shape_or_layer), input_axes, output_axes)


# --- layer-aware fans -----------------------------------------------------------------------

_CONV = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_CONV_TRANSPOSE = (
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)
_DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
_SEPARABLE = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
_RNN_CELLS = (keras.layers.LSTMCell, keras.layers.GRUCell, keras.layers.SimpleRNNCell)
_CONV_LSTM = (keras.layers.ConvLSTM1D, keras.layers.ConvLSTM2D, keras.layers.ConvLSTM3D)
_GATES = {keras.layers.LSTMCell: 4, keras.layers.GRUCell: 3, keras.layers.SimpleRNNCell: 1}

_DEFAULT_WEIGHTS = ("kernel", "depthwise_kernel", "embeddings")


def _variable_name(variable: Any) -> str:
    return str(getattr(variable, "name", "")).split("/")[-1].split(":")[0]


def _find_weight(layer: keras.layers.Layer, weight: Any) -> Any:
    """Returns the variable of `layer` that `weight` designates."""
    if not layer.built:
        raise ValueError(
            f"layer {layer.name!r} is not built, so it has no weights to count fans for; "
            "call it on data or build the model first"
        )
    if not layer.weights:
        raise ValueError(f"layer {layer.name!r} has no weights, so no fans to count")
    candidates = list(layer.weights)
    if weight is None:
        for name in _DEFAULT_WEIGHTS:
            found = [v for v in candidates if _variable_name(v) == name]
            if found:
                return found[0]
        raise ValueError(
            f"weight must be given for layer {layer.name!r}: it has no kernel; its weights "
            f"are {[v.path for v in candidates]}"
        )
    if isinstance(weight, str):
        found = [
            v
            for v in candidates
            if _variable_name(v) == weight or str(v.path).endswith("/" + weight)
        ]
        if len(found) == 1:
            return found[0]
        problem = "matches no weight" if not found else "matches several weights"
        raise ValueError(
            f"weight {weight!r} {problem} of layer {layer.name!r}; its weights are "
            f"{[v.path for v in candidates]}"
        )
    for variable in candidates:
        if variable is weight:
            return variable
    raise ValueError(f"weight {weight!r} is not a weight of layer {layer.name!r}")


def _owns(layer: keras.layers.Layer, variable: Any) -> bool:
    return any(v is variable for v in layer.weights)


def _tuple(value: Any, rank: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * rank
    return tuple(int(v) for v in value)


def _layer_fans(layer: keras.layers.Layer, weight: Any) -> Fans:
    variable = _find_weight(layer, weight)
    shape = tuple(int(d) for d in variable.shape)
    role = _variable_name(variable)
    if role == "bias" or len(shape) < 2:
        raise ValueError(
            f"weight {variable.path!r} has shape {shape}: fans are defined for kernels "
            "(rank >= 2), not for biases or scales"
        )
    if isinstance(layer, keras.layers.Bidirectional):
        for sub in (layer.forward_layer, layer.backward_layer):
            if _owns(sub, variable):
                return _layer_fans(sub, variable)
    if isinstance(layer, keras.layers.Wrapper):  # TimeDistributed and friends
        return _layer_fans(layer.layer, variable)
    if isinstance(layer, keras.layers.MultiHeadAttention):
        for sub in (layer.query_dense, layer.key_dense, layer.value_dense, layer.output_dense):
            if _owns(sub, variable):
                return _layer_fans(sub, variable)
    if isinstance(layer, _CONV_LSTM):
        rf = _prod(shape[:-2])
        return Fans(shape[-2] * rf, shape[-1] // 4 * rf)
    if isinstance(layer, keras.layers.RNN) and isinstance(layer.cell, _RNN_CELLS):
        return _layer_fans(layer.cell, variable)
    if isinstance(layer, _RNN_CELLS):
        gates = next(g for cls, g in _GATES.items() if isinstance(layer, cls))
        return Fans(shape[0], shape[1] // gates)
    if isinstance(layer, keras.layers.Dense) and len(shape) == 2:
        return Fans(shape[0], shape[1])
    if callable(getattr(layer, "nonlinearity_spec", None)) and len(shape) == 2:
        return Fans(shape[0], shape[1])  # a Dense-like kernel feeding its own activation
    if isinstance(layer, keras.layers.EinsumDense):
        return _einsum_fans(layer.equation, shape)
    if isinstance(layer, keras.layers.Embedding):
        return Fans(1, shape[-1])
    if isinstance(layer, _DEPTHWISE) or (
        isinstance(layer, _SEPARABLE) and role == "depthwise_kernel"
    ):
        kernel = shape[:-2]
        strides = _prod(_tuple(layer.strides, len(kernel)))
        return Fans(_prod(kernel), _fraction(shape[-1] * _prod(kernel), strides))
    if isinstance(layer, _SEPARABLE):  # pointwise kernel (1, ..., C * m, filters)
        return Fans(shape[-2], shape[-1])
    if isinstance(layer, _CONV_TRANSPOSE):
        kernel = shape[:-2]
        strides = _prod(_tuple(layer.strides, len(kernel)))
        return Fans(_fraction(shape[-1] * _prod(kernel), strides), shape[-2] * _prod(kernel))
    if isinstance(layer, _CONV):
        kernel = shape[:-2]
        groups = int(getattr(layer, "groups", 1) or 1)
        strides = _prod(_tuple(layer.strides, len(kernel)))
        return Fans(
            shape[-2] * _prod(kernel), _fraction(shape[-1] // groups * _prod(kernel), strides)
        )
    raise ValueError(
        f"compute_fans does not know the layer class {type(layer).__name__} "
        "(it knows Dense, EinsumDense, MultiHeadAttention, Conv*, Conv*Transpose, "
        "DepthwiseConv*, SeparableConv*, Embedding, LSTM, GRU, SimpleRNN, ConvLSTM*, "
        "Bidirectional); pass the kernel shape instead: compute_fans(variable.shape)"
    )


def _fraction(numerator: int, denominator: int) -> float:
    """`numerator / denominator`, as an int when it divides exactly."""
    if numerator % denominator == 0:
        return numerator // denominator
    return numerator / denominator


def _einsum_fans(equation: str, shape: tuple[int, ...]) -> Fans:
    """Fans of an EinsumDense kernel: its axes shared with the output are output axes."""
    inputs, output_spec = equation.split("->")
    _, weight_spec = inputs.split(",")
    weight_spec = weight_spec.replace("...", "")
    output_spec = output_spec.replace("...", "")
    fan_in, fan_out = 1, 1
    for axis, letter in enumerate(weight_spec):
        if letter in output_spec:
            fan_out *= shape[axis]
        else:
            fan_in *= shape[axis]
    return Fans(fan_in, fan_out)
