"""`calculate_gain`: the weight-scale factor that suits a nonlinearity."""

from __future__ import annotations

import functools
import math
from typing import Any

import keras
import numpy as np

from keras_initkit.initializers import nonlinearities
from keras_initkit.initializers._checks import check_choice

POLICIES = ("fixed_point", "torch")


# Closed forms of E[phi(z)^2], used where they exist, so that gains are float64-exact
# (relu: variance 2 / fan as Keras computes it). Maxout: E[(max of k unit normals)^2] is
# 1 (k=2), 1 + sqrt(3)/(2 pi) (k=3), 1 + sqrt(3)/pi (k=4).
_MAXOUT_MOMENTS = {
    2: 1.0,
    3: 1.0 + math.sqrt(3.0) / (2.0 * math.pi),
    4: 1.0 + math.sqrt(3.0) / math.pi,
}
_CLOSED_MOMENTS: dict[str, Any] = {
    "linear": lambda p: 1.0,
    "relu": lambda p: 0.5,
    "leaky_relu": lambda p: 0.5 * (1.0 + p * p),
    "prelu": lambda p: 0.5 * (1.0 + p * p),
    "selu": lambda p: 1.0,
    "maxout": lambda p: _MAXOUT_MOMENTS.get(p),
}


@functools.cache
def _second_moment(name: str, param: Any) -> float:
    closed = _CLOSED_MOMENTS.get(name)
    moment = closed(param) if closed is not None else None
    if moment is None:
        entry = nonlinearities.NONLINEARITIES[name]
        with np.errstate(over="ignore", invalid="ignore"):  # checked just below
            moment = nonlinearities.second_moment(entry, param)
    if not (math.isfinite(moment) and moment > 0):
        entry = nonlinearities.NONLINEARITIES[name]
        raise ValueError(
            f"param ({entry.param_name} of {name!r}) is out of the range where the gain is "
            f"finite: E[{name}(z)^2] is {moment!r}; got param={param!r}"
        )
    return moment


def _fixed_point_gain(name: str, param: Any) -> float:
    if name in ("leaky_relu", "prelu"):
        return math.sqrt(2.0) / math.hypot(1.0, param)  # no overflow for a huge slope
    return math.sqrt(1.0 / _second_moment(name, param))


def squared_gain(nonlinearity: Any, param: Any) -> float:
    """`calculate_gain(nonlinearity, param) ** 2`, exact where a closed form exists.

    For initializers: with it, `HeNormal` computes `2 / fan` to the last bit, as Keras does.
    """
    target, param = resolve(nonlinearity, param)
    if isinstance(target, nonlinearities.Nonlinearity):
        return 1.0 / _second_moment(target.name, param)
    return _numeric_gain(target) ** 2


def _numeric_gain(fn: Any) -> float:
    """Fixed-point gain of an arbitrary elementwise callable, evaluated through Keras."""
    grid = nonlinearities.integration_grid().astype("float32")
    values = keras.ops.convert_to_numpy(fn(keras.ops.convert_to_tensor(grid)))
    values = np.asarray(values, dtype=np.float64)
    if values.shape != grid.shape or not np.all(np.isfinite(values)):
        raise ValueError(
            f"nonlinearity {fn!r} is not an elementwise function with finite values on "
            "[-12, 12]; pass one of the known names instead: "
            + ", ".join(nonlinearities.names())
        )
    moment = nonlinearities.gaussian_second_moment(values)
    if moment <= 0:
        raise ValueError(f"nonlinearity {fn!r} is zero everywhere; it has no gain")
    return 1.0 / math.sqrt(moment)


def _constant_of(initializer: Any) -> float | None:
    """The value of a constant Keras initializer (Zeros, Ones, Constant), else None."""
    if isinstance(initializer, keras.initializers.Zeros):
        return 0.0
    if isinstance(initializer, keras.initializers.Ones):
        return 1.0
    if isinstance(initializer, keras.initializers.Constant):
        value = np.asarray(keras.ops.convert_to_numpy(initializer.value))
        if value.size == 1:
            return float(value.reshape(()))
    return None


def resolve(nonlinearity: Any, param: Any = None) -> tuple[Any, Any]:
    """Turns an activation identifier into `(Nonlinearity entry or callable, param)`.

    Accepts a name, `None` (linear), a Keras activation function, a Keras activation layer,
    or any object with a `nonlinearity_spec()` method returning `(name, param)` (the
    protocol keras_initkit's own layers follow). The returned param is checked against the
    activation's range; an unknown plain callable comes back as itself (gain integrated
    numerically).
    """
    spec = getattr(nonlinearity, "nonlinearity_spec", None)
    if callable(spec) and not isinstance(nonlinearity, type):
        name, layer_param = spec()
        return _from_object(nonlinearity, name, layer_param, param)
    if nonlinearity is None:
        nonlinearity = "linear"
    if isinstance(nonlinearity, str):
        entry = nonlinearities.lookup(nonlinearity)
        return entry, nonlinearities.check_param(entry, param)
    if isinstance(nonlinearity, keras.layers.Layer):
        return _resolve_layer(nonlinearity, param)
    if callable(nonlinearity):
        name = _keras_activation_name(nonlinearity)
        if name is not None:
            entry = nonlinearities.lookup(name)
            return entry, nonlinearities.check_param(entry, param)
        if param is not None:
            raise ValueError(
                f"param must be None for a custom callable nonlinearity; got param={param!r}"
            )
        return nonlinearity, None
    raise ValueError(
        "nonlinearity must be a name, None, a Keras activation function or an activation "
        f"layer; got {nonlinearity!r}"
    )


def _from_object(obj: Any, name: str, layer_param: Any, param: Any) -> tuple[Any, Any]:
    if param is not None:
        raise ValueError(
            f"param must be None when nonlinearity is the layer {obj!r}: its parameter is "
            f"read from the layer; got param={param!r}"
        )
    entry = nonlinearities.lookup(name)
    return entry, nonlinearities.check_param(entry, layer_param)


def _keras_activation_name(fn: Any) -> str | None:
    """The name of a built-in Keras activation function, or None for anything else."""
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str):
        return None
    try:
        if keras.activations.get(name) is fn:
            return keras.activations.serialize(fn) if name in ("swish", "hard_swish") else name
    except (ValueError, TypeError):
        return None
    return None


def _resolve_layer(layer: keras.layers.Layer, param: Any) -> tuple[Any, Any]:
    if isinstance(layer, keras.layers.Activation):
        return resolve(layer.activation, param)
    name = next((n for cls, n in nonlinearities.KERAS_LAYERS.items() if isinstance(layer, cls)),
                None)
    if name == "leaky_relu":
        return _from_object(layer, name, float(layer.negative_slope), param)
    if name == "elu":
        return _from_object(layer, name, float(layer.alpha), param)
    if name == "softmax":
        return _from_object(layer, name, None, param)
    if name == "prelu":
        alpha = _constant_of(layer.alpha_initializer)
        if alpha is None and layer.built:
            alpha = float(np.mean(keras.ops.convert_to_numpy(layer.alpha)))
        if alpha is None:
            raise ValueError(
                "nonlinearity is a PReLU whose alpha_initializer is not constant and which "
                "is not built yet; build it or pass nonlinearity='prelu', param=<alpha>"
            )
        return _from_object(layer, name, alpha, param)
    if name == "relu":
        slope = float(layer.negative_slope)
        if layer.max_value is None and float(layer.threshold) == 0.0:
            if slope == 0.0:
                return _from_object(layer, "relu", None, param)
            return _from_object(layer, "leaky_relu", slope, param)
        if param is not None:
            raise ValueError(f"param must be None for the layer {layer!r}; got {param!r}")
        return (
            lambda x: keras.activations.relu(
                x,
                negative_slope=slope,
                max_value=layer.max_value,
                threshold=float(layer.threshold),
            ),
            None,
        )
    known = ", ".join(cls.__name__ for cls in nonlinearities.ACTIVATION_LAYER_CLASSES)
    raise ValueError(
        f"nonlinearity {layer.__class__.__name__} is not an activation layer keras_initkit "
        f"knows ({known}, keras_initkit.layers)"
    )


def calculate_gain(nonlinearity: Any, param: Any = None, policy: str = "fixed_point") -> float:
    """Returns the recommended gain for a nonlinearity.

    The gain `g` multiplies the standard deviation of a fan-in-scaled weight
    (`Var(w) = g^2 / fan_in`). With the default policy it is the second-moment fixed
    point `g = 1 / sqrt(E[phi(z)^2])`, `z ~ N(0, 1)`: the gain that keeps the
    pre-activations of a deep stack at unit second moment (He et al. 2015 derive it for
    ReLU). It is computed by quadrature from each activation's definition, so parametric
    activations get the value for their parameter:

    | nonlinearity | param | fixed-point gain | PyTorch |
    |---|---|---|---|
    | linear, softmax (read-out) | - | 1 | 1 |
    | sigmoid | - | 1.8462 | 1 |
    | tanh | - | 1.5925 | 5/3 |
    | relu, relu6 | - | sqrt(2) | sqrt(2) |
    | leaky_relu | slope (0.2) | sqrt(2 / (1 + slope^2)) | same, slope 0.01 |
    | prelu | initial alpha (0) | sqrt(2 / (1 + alpha^2)) | - |
    | elu | alpha (1) | 1.2452 | - |
    | selu | - | 1 | 3/4 |
    | gelu, gelu_approximate | - | 1.5335, 1.5336 | - |
    | silu/swish | beta (1) | 1.6765 | - |
    | mish, softplus, softsign | - | 1.4868, 1.0419, 2.3375 | - |
    | hard_sigmoid, hard_silu | - | 1.8978, 1.7367 | - |
    | snake | frequency (1) | 0.8746 | - |
    | tanhexp | - | 1.3748 | - |
    | maxout | pieces k (2) | 1, 0.8854, 0.8029, 0.7454 (k=2..5) | - |

    Every other elementwise `keras.activations` function is known too (`names()` lists
    them), and a custom elementwise callable gets its gain integrated numerically.
    `policy="torch"` returns `torch.nn.init.calculate_gain`'s values (defined for linear,
    conv*, sigmoid, tanh, relu, leaky_relu with default slope 0.01, and selu).

    Args:
        nonlinearity: a name (`"tanh"`, `"leaky_relu"`, aliases such as `"swish"`), `None`
            (linear), a Keras activation function (`keras.activations.gelu`), a Keras
            activation layer (`LeakyReLU`, `PReLU`, `ELU`, `ReLU`, `Softmax`,
            `Activation`), or a keras_initkit activation layer. Layers supply their own
            parameter (slope, alpha, pieces).
        param: the activation's parameter when `nonlinearity` is a name: the negative slope
            of `leaky_relu` (default 0.2, Keras's function; PyTorch policy: 0.01), the
            initial alpha of `prelu` (0), `alpha` of `elu`/`celu` (1), `beta` of `silu`
            (1), the frequency of `snake` (1), the number of pieces of `maxout` (2).
            Must be `None` for activations without a parameter.
        policy: `"fixed_point"` (default) or `"torch"`.

    Returns:
        The gain, a Python float.

    Example:
    >>> from keras_initkit.initializers import calculate_gain
    >>> round(calculate_gain("relu"), 4)
    1.4142
    >>> round(calculate_gain("leaky_relu", 0.2), 4)
    1.3868
    >>> round(calculate_gain("tanh"), 4), round(calculate_gain("tanh", policy="torch"), 4)
    (1.5925, 1.6667)
    >>> round(calculate_gain(keras.layers.LeakyReLU(negative_slope=0.3)), 4)
    1.3546

    Reference:
    - [He et al., 2015](https://arxiv.org/abs/1502.01852) (the ReLU/leaky fixed point)
    - [Klambauer et al., 2017](https://arxiv.org/abs/1706.02515) (SELU: gain 1)
    - [Tseran & Montufar, 2023](https://arxiv.org/abs/2301.06956) (maxout scale)
    """
    check_choice("policy", policy, POLICIES)
    # A name given without param takes the policy's default (PyTorch: leaky slope 0.01).
    param_omitted = param is None and isinstance(nonlinearity, str)
    target, param = resolve(nonlinearity, param)
    if not isinstance(target, nonlinearities.Nonlinearity):
        if policy == "torch":
            raise ValueError(
                "policy='torch' defines gains only for: linear, conv1d/2d/3d, "
                "conv_transpose1d/2d/3d, sigmoid, tanh, relu, leaky_relu, selu; "
                f"got the callable {target!r}"
            )
        return _numeric_gain(target)
    if policy == "torch":
        if target.torch_gain is None:
            raise ValueError(
                "policy='torch' defines gains only for: linear, conv1d/2d/3d, "
                "conv_transpose1d/2d/3d, sigmoid, tanh, relu, leaky_relu, selu; "
                f"got {target.name!r}"
            )
        if target.takes_param and param_omitted:
            param = target.torch_default_param
        return float(target.torch_gain(param))
    return _fixed_point_gain(target.name, param)



def named_gain(nonlinearity: Any, param: Any) -> tuple[str | None, float]:
    """For initializers: `(lower-cased name, gain)`; the nonlinearity must be a name or None.

    Initializers store the nonlinearity in their config, so only a name keeps them
    serializable; pass `gain=calculate_gain(obj)` for a layer or function object.
    """
    if isinstance(nonlinearity, str):
        nonlinearity = nonlinearity.lower()
    elif nonlinearity is not None:
        raise ValueError(
            "nonlinearity must be a name (a string, to stay serializable) or None; "
            f"got {nonlinearity!r}. Use gain=calculate_gain(obj) for an object."
        )
    return nonlinearity, calculate_gain(nonlinearity, param)
