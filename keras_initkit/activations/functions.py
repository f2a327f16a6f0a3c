"""The activation functions: elementwise, parameter-free or with a fixed parameter."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


def _spec(name: str, param: Any = None) -> Any:
    """Gives a function the `nonlinearity_spec` that `calculate_gain` reads."""

    def mark(fn: Any) -> Any:
        fn.nonlinearity_spec = lambda: (name, param)
        return fn

    return mark


@keras.saving.register_keras_serializable(package="keras_initkit")
@_spec("snake", 1.0)
def snake(x: Any, frequency: float = 1.0) -> Any:
    """Snake: `x + sin(frequency * x)^2 / frequency`, periodic with a linear trend.

    Learns periodic functions and extrapolates them, where ReLU and tanh flatten out.
    For a trainable, per-channel frequency use `keras_initkit.layers.Snake`.

    Args:
        x: input tensor.
        frequency: positive float, `a`. Defaults to `1.0`.

    Example:
    >>> y = keras_initkit.activations.snake(np.array([0.0, 1.0]))
    >>> np.round(keras.ops.convert_to_numpy(y).astype("float64"), 4).tolist()
    [0.0, 1.7081]

    Reference:
    - [Ziyin, Hartwig & Ueda, 2020](https://arxiv.org/abs/2006.08195)
    """
    x = ops.convert_to_tensor(x)
    return x + ops.square(ops.sin(frequency * x)) / frequency


@keras.saving.register_keras_serializable(package="keras_initkit")
@_spec("tanhexp")
def tanhexp(x: Any) -> Any:
    """TanhExp: `x * tanh(exp(x))`.

    Args:
        x: input tensor.

    Example:
    >>> y = keras_initkit.activations.tanhexp(np.array([0.0, 1.0]))
    >>> np.round(keras.ops.convert_to_numpy(y).astype("float64"), 4).tolist()
    [0.0, 0.9913]

    Reference:
    - [Liu & Di, 2020](https://arxiv.org/abs/2003.09855)
    """
    x = ops.convert_to_tensor(x)
    # exp overflows for large x, where tanh(exp(x)) is 1 anyway.
    return x * ops.tanh(ops.exp(ops.minimum(x, 20.0)))


@keras.saving.register_keras_serializable(package="keras_initkit")
@_spec("lisht")
def lisht(x: Any) -> Any:
    """LiSHT: `x * tanh(x)`, non-negative and unbounded.

    Args:
        x: input tensor.

    Example:
    >>> y = keras_initkit.activations.lisht(np.array([-1.0, 1.0]))
    >>> np.round(keras.ops.convert_to_numpy(y).astype("float64"), 4).tolist()
    [0.7616, 0.7616]

    Reference:
    - [Roy et al., 2019](https://arxiv.org/abs/1901.05894)
    """
    x = ops.convert_to_tensor(x)
    return x * ops.tanh(x)


@keras.saving.register_keras_serializable(package="keras_initkit")
@_spec("gelu_approximate")
def gelu_approximate(x: Any) -> Any:
    """GELU, tanh approximation: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.

    `keras.activations.gelu` (the string `"gelu"`) is the exact GELU; this is the
    approximation BERT and GPT-2 were trained with, under a name that serializes (as
    keras-hub's `gelu_approximate`).

    Args:
        x: input tensor.

    Example:
    >>> y = keras_initkit.activations.gelu_approximate(np.array([1.0]))
    >>> np.round(keras.ops.convert_to_numpy(y).astype("float64"), 4).tolist()
    [0.8412]

    Reference:
    - [Hendrycks & Gimpel, 2016](https://arxiv.org/abs/1606.08415)
    """
    return ops.gelu(ops.convert_to_tensor(x), approximate=True)
