"""`initializer_for`: the initializer an activation calls for."""

from __future__ import annotations

from typing import Any

from keras_initkit.initializers import gain as gain_lib
from keras_initkit.initializers import nonlinearities
from keras_initkit.initializers._checks import check_choice
from keras_initkit.initializers.variance_scaling import (
    DISTRIBUTIONS,
    MODES,
    HeNormal,
    HeUniform,
    LecunNormal,
    LecunUniform,
    VarianceScaling,
)

_RECTIFIERS = ("relu", "relu6", "leaky_relu", "prelu")


def initializer_for(
    activation: Any,
    param: Any = None,
    *,
    distribution: str = "truncated_normal",
    mode: str = "fan_in",
    policy: str = "fixed_point",
    seed: Any = None,
) -> VarianceScaling:
    """Returns the recommended kernel initializer for the layer that feeds `activation`.

    Every recommendation is a fan-in variance-scaling scheme with the activation's gain
    (`calculate_gain`), under the name the literature gives it:

    | activation | returns | variance |
    |---|---|---|
    | selu | `LecunNormal()` | 1 / fan_in (self-normalizing; not PyTorch's 3/4) |
    | relu, relu6 | `HeNormal()` | 2 / fan_in |
    | leaky_relu(a), prelu(a0) | `HeNormal(nonlinearity=..., param=a)` | 2 / ((1 + a^2) fan_in) |
    | linear, softmax (read-out) | `LecunNormal()` | 1 / fan_in |
    | maxout(k) | `LecunNormal(nonlinearity="maxout", param=k)` | 1 / (E[max_k^2] fan_in) |
    | tanh, elu, gelu, ... | `LecunNormal(nonlinearity=...)` | g^2 / fan_in |

    `distribution="uniform"` gives the `*Uniform` twins; `"untruncated_normal"` a
    `VarianceScaling` with the same variance. A custom elementwise callable gets a
    `VarianceScaling` with its numerically integrated gain.

    Sigmoid, hard_sigmoid, softplus and exponential keep their variance at this gain but
    not their information: their non-zero mean makes every input look alike after ~20
    layers, whatever the gain. GELU, SiLU, Mish and hard-swish have an unstable fixed
    point: fine to ~10-20 plain layers, deeper stacks need normalization or residuals.

    Args:
        activation: anything `calculate_gain` accepts: a name, `None`, a Keras activation
            function or layer, or a keras_initkit activation layer.
        param: the activation's parameter when `activation` is a name.
        distribution: `"truncated_normal"` (default), `"uniform"` or
            `"untruncated_normal"`.
        mode: which fan divides the variance. Defaults to `"fan_in"` (forward signal).
        policy: `"fixed_point"` (default) or `"torch"` (PyTorch's gains).
        seed: passed to the initializer (Keras's seed contract).

    Returns:
        An initializer of the `VarianceScaling` family.

    Example:
    >>> from keras_initkit.initializers import initializer_for
    >>> initializer_for("selu")
    LecunNormal()
    >>> initializer_for(keras.layers.LeakyReLU(negative_slope=0.3))
    HeNormal(nonlinearity='leaky_relu', param=0.3)
    >>> initializer_for("tanh", distribution="uniform")
    LecunUniform(nonlinearity='tanh')

    Reference:
    - [He et al., 2015](https://arxiv.org/abs/1502.01852)
    - [Klambauer et al., 2017](https://arxiv.org/abs/1706.02515)
    - [Tseran & Montufar, 2023](https://arxiv.org/abs/2301.06956)
    """
    check_choice("distribution", distribution, DISTRIBUTIONS)
    check_choice("mode", mode, MODES)
    check_choice("policy", policy, gain_lib.POLICIES)
    if distribution == "normal":
        distribution = "truncated_normal"
    user_param = param
    target, param = gain_lib.resolve(activation, param)
    name, gain = "linear", 1.0
    if not isinstance(target, nonlinearities.Nonlinearity):
        gain = gain_lib.calculate_gain(activation)  # a custom callable, integrated
    elif target.name in _RECTIFIERS:
        name = target.name
        if policy == "torch" and user_param is None and isinstance(activation, str):
            param = target.torch_default_param  # PyTorch's leaky slope 0.01
    elif policy == "torch":
        gain = gain_lib.calculate_gain(activation, user_param, policy="torch")
        param = None
    elif target.name == "selu" or target.stability == "output":
        param = None
    else:
        name = target.name

    common: dict[str, Any] = {"nonlinearity": name, "param": param, "gain": gain}
    common.update(mode=mode, seed=seed)
    if distribution == "untruncated_normal":
        return VarianceScaling(distribution=distribution, **common)
    uniform = distribution == "uniform"
    if name in _RECTIFIERS:
        cls: type[VarianceScaling] = HeUniform if uniform else HeNormal
    else:
        cls = LecunUniform if uniform else LecunNormal
    return cls(**common)
