"""The activation functions: elementwise, parameter-free or with a fixed parameter."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from keras_initkit._checks import FLOAT16_MAX

_LOW_PRECISION = ("float16", "bfloat16")


def in_float32(fn: Any) -> Any:
    """Runs `fn(x, *args)` in float32 when `x` is float16/bfloat16, and casts back.

    Intermediates such as `x^3` (tanh-GELU), `exp(x)` (tanhexp) or `1 / u^2` (the
    derivative of Snake's sinc) overflow float16 where the result itself is finite; the
    cast costs one elementwise pass and keeps values and gradients finite.
    """

    def wrapped(x: Any, *args: Any, **kwargs: Any) -> Any:
        x = ops.convert_to_tensor(x)
        dtype = keras.backend.standardize_dtype(x.dtype)
        if dtype not in _LOW_PRECISION:
            return fn(x, *args, **kwargs)
        return ops.cast(fn(ops.cast(x, "float32"), *args, **kwargs), dtype)

    return wrapped


def snake_core(x: Any, a: Any) -> Any:
    """`x + sin(a x)^2 / a`, written `x + sin(u) x sinc(u)` (u = a x): finite at a = 0.

    sinc uses its series near 0; the unselected branch divides by 1, so no NaN gradients.
    Called in float32 or float64 (see `in_float32`).
    """
    u = a * x
    small = ops.abs(u) < 1e-3
    u_safe = ops.where(small, ops.ones_like(u), u)
    sinc = ops.where(small, 1.0 - ops.square(u) / 6.0, ops.sin(u_safe) / u_safe)
    return x + ops.sin(u) * x * sinc


def _spec(name: str, param: Any = None) -> Any:
    """Gives a function the `nonlinearity_spec` that `calculate_gain` reads."""

    def mark(fn: Any) -> Any:
        fn.nonlinearity_spec = lambda: (name, param)
        return fn

    return mark


@keras.saving.register_keras_serializable(package="keras_initkit")
@_spec("snake", 1.0)
def snake(x: Any, frequency: object = 1.0) -> Any:
    """Snake: `x + sin(frequency * x)^2 / frequency`, periodic with a linear trend.

    Learns periodic functions and extrapolates them, where ReLU and tanh flatten out.
    For a trainable, per-channel frequency use `keras_initkit.layers.Snake`.

    Args:
        x: input tensor.
        frequency: positive float, `a` (or a tensor of them, as the `Snake` layer passes).
            Defaults to `1.0`.

    Example:
    >>> y = keras_initkit.activations.snake(np.array([0.0, 1.0]))
    >>> np.round(keras.ops.convert_to_numpy(y).astype("float64"), 4).tolist()
    [0.0, 1.7081]

    Reference:
    - [Ziyin, Hartwig & Ueda, 2020](https://arxiv.org/abs/2006.08195)
    """
    if isinstance(frequency, (int, float)) and not isinstance(frequency, bool):
        if not (math.isfinite(frequency) and 0 < frequency <= FLOAT16_MAX):
            raise ValueError(
                f"frequency must be a finite number in (0, 65504]; got {frequency!r}"
            )
    elif isinstance(frequency, (bool, str)) or frequency is None:
        raise ValueError(f"frequency must be a finite number in (0, 65504]; got {frequency!r}")
    return _snake(x, frequency)


@in_float32
def _snake(x: Any, frequency: Any) -> Any:
    return snake_core(x, ops.cast(frequency, x.dtype))


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
    return _tanhexp(x)


@in_float32
def _tanhexp(x: Any) -> Any:
    # tanh(exp(x)) is 1 to float64 precision from x = 3 on (1 - tanh(e^3) ~ 8e-18), so
    # capping there is exact, and exp never overflows (its gradient would be 0 * inf).
    return x * ops.tanh(ops.exp(ops.minimum(x, 3.0)))


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
    return _gelu_approximate(x)


@in_float32
def _gelu_approximate(x: Any) -> Any:
    return ops.gelu(x, approximate=True)  # x^3 overflows float16 beyond |x| ~ 40
