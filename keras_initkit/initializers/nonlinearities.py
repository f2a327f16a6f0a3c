"""The nonlinearities keras_initkit knows: a NumPy reference and the rules for its parameter.

Each entry is what `calculate_gain` and `initializer_for` need to know about one activation:
its float64 NumPy definition (from which the fixed-point gain is integrated), the name, range
and default of its parameter, and PyTorch's gain where PyTorch defines one; and what the
statistics need: its output range, whether it saturates at the ends of that range, and the
histogram range its outputs are binned over. Names follow `keras.activations`; the
literature's and PyTorch's names are aliases. `KERAS_LAYERS` is the package's one list of
Keras's activation layers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

_erf = np.vectorize(math.erf, otypes=[float])


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


_erfc = np.vectorize(math.erfc, otypes=[float])


def _norm_sf(x: np.ndarray) -> np.ndarray:
    return 0.5 * _erfc(x / math.sqrt(2.0))  # 1 - cdf(x), accurate where cdf(x) ~ 1


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _elu(x: np.ndarray, alpha: float) -> np.ndarray:
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def _hard_sigmoid(x: np.ndarray) -> np.ndarray:
    return np.clip((x + 3.0) / 6.0, 0.0, 1.0)  # Keras 3: relu6(x + 3) / 6


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@dataclasses.dataclass(frozen=True)
class Nonlinearity:
    """What keras_initkit knows about one activation.

    Attributes:
        name: canonical name (a `keras.activations` name where Keras has one).
        fn: float64 NumPy reference `fn(x, param)`; `None` for output activations
            (softmax and friends), whose preceding layer is a linear read-out.
        param_name: what `param` means for this activation, or `None` if it takes none.
        default_param: the value used when `param` is omitted.
        param_check: `(test, description)`: `test(value)` is True for allowed values.
        torch_gain: PyTorch's `calculate_gain` value as a function of `param`, if defined.
        torch_default_param: PyTorch's default `param` (leaky_relu: 0.01).
        stability: how a deep bias-free stack behaves at the fixed-point gain
            (`activations.md` §2.4): "neutral", "stable", "unstable", "collapse" or "output".
        output_range: `(low, high)` the activation's outputs lie in at its default
            parameter (`±inf` for an unbounded end).
        saturates: True when the gradient vanishes at both (finite) ends of
            `output_range`, so outputs near them count as saturated (tanh, sigmoid).
        histogram_range: the range the statistics bin its outputs over, or None for the
            rule of the `histogram` property.
    """

    name: str
    fn: Callable[[np.ndarray, Any], np.ndarray] | None
    param_name: str | None = None
    default_param: Any = None
    param_check: tuple[Callable[[Any], Any], str] | None = None
    torch_gain: Callable[[Any], float] | None = None
    torch_default_param: Any = None
    stability: str = "stable"
    output_range: tuple[float, float] = (-math.inf, math.inf)
    saturates: bool = False
    histogram_range: tuple[float, float] | None = None

    @property
    def takes_param(self) -> bool:
        return self.param_name is not None

    @property
    def saturation_bounds(self) -> tuple[float, float] | None:
        """`output_range` for a saturating activation, else None."""
        return self.output_range if self.saturates else None

    @property
    def histogram(self) -> tuple[float, float]:
        """The histogram range: `histogram_range` if set, else a bounded `output_range`,
        else `DEFAULT_HISTOGRAM_RANGE` (under/overflow bins catch the rest)."""
        if self.histogram_range is not None:
            return self.histogram_range
        if all(math.isfinite(end) for end in self.output_range):
            return self.output_range
        return DEFAULT_HISTOGRAM_RANGE


# For an unbounded activation: wide enough for a well-initialized layer (std about 1).
DEFAULT_HISTOGRAM_RANGE = (-5.0, 5.0)
_INF = math.inf


def _number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int beyond float's range (10**400)
        return False


_ANY_REAL = (_number, "a finite number")
# Parameters that scale the input (beta, frequency) must keep `param * x` finite in float16.
_BOUNDED = (lambda v: _number(v) and abs(v) <= 65504.0, "a finite number in [-65504, 65504]")
_BOUNDED_POSITIVE = (
    lambda v: _number(v) and 0 < v <= 65504.0,
    "a finite number in (0, 65504]",
)
_NON_NEGATIVE = (lambda v: _number(v) and v >= 0, "a finite number >= 0")
_POSITIVE = (lambda v: _number(v) and v > 0, "a finite number > 0")
# Up to 2**63 pieces the largest of k unit normals stays well inside the integration grid.
MAX_PIECES = 2**63
_PIECES = (
    lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool)
    and 2 <= v <= MAX_PIECES,
    "an int in [2, 2**63] (the number of linear pieces)",
)

_ENTRIES = [
    Nonlinearity("linear", lambda x, p: x, torch_gain=lambda p: 1.0, stability="neutral"),
    Nonlinearity(
        "sigmoid", lambda x, p: _sigmoid(x), torch_gain=lambda p: 1.0, stability="collapse",
        output_range=(0.0, 1.0), saturates=True,
    ),
    Nonlinearity(
        "tanh", lambda x, p: np.tanh(x), torch_gain=lambda p: 5.0 / 3.0,
        output_range=(-1.0, 1.0), saturates=True,
    ),
    Nonlinearity(
        "relu", lambda x, p: np.maximum(x, 0.0), torch_gain=lambda p: math.sqrt(2.0),
        stability="neutral", output_range=(0.0, _INF), histogram_range=(0.0, 5.0),
    ),
    Nonlinearity(
        "relu6", lambda x, p: np.clip(x, 0.0, 6.0), stability="neutral",
        output_range=(0.0, 6.0),
    ),
    Nonlinearity(
        "leaky_relu",
        lambda x, p: np.where(x > 0, x, p * x),
        param_name="negative_slope",
        default_param=0.2,  # keras.activations.leaky_relu; the LeakyReLU layer uses 0.3
        param_check=_NON_NEGATIVE,
        torch_gain=lambda p: math.sqrt(2.0 / (1.0 + p**2)),
        torch_default_param=0.01,
        stability="neutral",
    ),
    Nonlinearity(
        "prelu",
        lambda x, p: np.where(x > 0, x, p * x),
        param_name="initial alpha",
        default_param=0.0,  # keras.layers.PReLU starts at alpha = 0 (He et al. used 0.25)
        param_check=_ANY_REAL,
        stability="neutral",
    ),
    Nonlinearity(
        "elu", _elu, param_name="alpha", default_param=1.0, param_check=_NON_NEGATIVE
    ),
    Nonlinearity(
        "celu",
        lambda x, p: np.maximum(x, 0.0) + np.minimum(0.0, p * np.expm1(np.minimum(x, 0.0) / p)),
        param_name="alpha",
        default_param=1.0,
        param_check=_POSITIVE,
    ),
    Nonlinearity(
        "selu", lambda x, p: _SELU_SCALE * _elu(x, _SELU_ALPHA), torch_gain=lambda p: 0.75
    ),
    Nonlinearity("gelu", lambda x, p: x * _norm_cdf(x), stability="unstable"),
    Nonlinearity(
        "gelu_approximate",
        lambda x, p: 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3))),
        stability="unstable",
    ),
    Nonlinearity(
        "silu",
        lambda x, p: x * _sigmoid(p * x),
        param_name="beta",
        default_param=1.0,
        param_check=_BOUNDED,
        stability="unstable",
    ),
    Nonlinearity("mish", lambda x, p: x * np.tanh(_softplus(x)), stability="unstable"),
    Nonlinearity(
        "softplus", lambda x, p: _softplus(x), stability="collapse",
        output_range=(0.0, _INF), histogram_range=(0.0, 5.0),
    ),
    Nonlinearity(
        "softsign", lambda x, p: x / (1.0 + np.abs(x)), output_range=(-1.0, 1.0),
        saturates=True,
    ),
    Nonlinearity(
        "hard_sigmoid", lambda x, p: _hard_sigmoid(x), stability="collapse",
        output_range=(0.0, 1.0), saturates=True,
    ),
    Nonlinearity("hard_silu", lambda x, p: x * _hard_sigmoid(x), stability="unstable"),
    Nonlinearity(
        "hard_tanh", lambda x, p: np.clip(x, -1.0, 1.0), output_range=(-1.0, 1.0),
        saturates=True,
    ),
    Nonlinearity("tanh_shrink", lambda x, p: x - np.tanh(x)),
    Nonlinearity(
        "log_sigmoid", lambda x, p: -_softplus(-x), stability="collapse",
        output_range=(-_INF, 0.0),
    ),
    Nonlinearity(
        "exponential", lambda x, p: np.exp(x), stability="collapse", output_range=(0.0, _INF)
    ),
    Nonlinearity(
        "sparse_plus",
        lambda x, p: np.where(x <= -1, 0.0, np.where(x >= 1, x, (x + 1.0) ** 2 / 4.0)),
        stability="unstable",
    ),
    Nonlinearity(
        "sparse_sigmoid",
        lambda x, p: np.clip(0.5 * (x + 1.0), 0.0, 1.0),
        stability="collapse",
        output_range=(0.0, 1.0),
        saturates=True,
    ),
    Nonlinearity(
        "squareplus",
        lambda x, p: 0.5 * (x + np.sqrt(x**2 + p)),
        param_name="b",
        default_param=4.0,
        param_check=_NON_NEGATIVE,
        stability="unstable",
    ),
    Nonlinearity(
        "soft_shrink",
        lambda x, p: np.sign(x) * np.maximum(np.abs(x) - p, 0.0),
        param_name="threshold",
        default_param=0.5,
        param_check=_NON_NEGATIVE,
    ),
    Nonlinearity(
        "hard_shrink",
        lambda x, p: np.where(np.abs(x) > p, x, 0.0),
        param_name="threshold",
        default_param=0.5,
        param_check=_NON_NEGATIVE,
    ),
    # GLU halves its input: a * sigmoid(b) with a, b independent unit normals, so
    # E[glu^2] = E[a^2] * E[sigmoid(b)^2] = E[sigmoid(z)^2].
    Nonlinearity("glu", lambda x, p: _sigmoid(x), stability="collapse"),
    Nonlinearity(
        "snake",
        lambda x, p: x + np.sin(p * x) ** 2 / p,
        param_name="frequency",
        default_param=1.0,
        param_check=_BOUNDED_POSITIVE,
    ),
    Nonlinearity("tanhexp", lambda x, p: x * np.tanh(np.exp(np.minimum(x, 30.0)))),
    Nonlinearity("lisht", lambda x, p: x * np.tanh(x), stability="collapse"),
    # Maxout's second moment is that of the largest of k unit normals; see `second_moment`.
    Nonlinearity(
        "maxout",
        None,
        param_name="pieces",
        default_param=2,
        param_check=_PIECES,
        stability="neutral",
    ),
    # Output activations: the layer before them is a linear read-out (gain 1).
    # Softmax's outputs lie in [0, 1] but sum to 1: near 1 is confidence, not saturation.
    Nonlinearity("softmax", None, stability="output", output_range=(0.0, 1.0)),
    Nonlinearity("log_softmax", None, stability="output"),
    Nonlinearity("sparsemax", None, stability="output"),
]

NONLINEARITIES: dict[str, Nonlinearity] = {entry.name: entry for entry in _ENTRIES}

ALIASES: dict[str, str] = {
    "identity": "linear",
    "none": "linear",
    # PyTorch's calculate_gain names for linear maps.
    "conv1d": "linear",
    "conv2d": "linear",
    "conv3d": "linear",
    "conv_transpose1d": "linear",
    "conv_transpose2d": "linear",
    "conv_transpose3d": "linear",
    "swish": "silu",
    "hard_swish": "hard_silu",
    "gelu_tanh": "gelu_approximate",
    "leakyrelu": "leaky_relu",
    "tanh_exp": "tanhexp",
}


# Keras's activation layers and the entry each computes (`keras.layers.Activation` computes
# its `activation`'s): the package's one list of them.
KERAS_LAYERS: dict[type, str] = {
    keras.layers.ReLU: "relu",
    keras.layers.LeakyReLU: "leaky_relu",
    keras.layers.PReLU: "prelu",
    keras.layers.ELU: "elu",
    keras.layers.Softmax: "softmax",
}
ACTIVATION_LAYER_CLASSES: tuple[type, ...] = (keras.layers.Activation, *KERAS_LAYERS)


def keras_layer_name(layer: Any) -> str | None:
    """The entry name of a Keras activation layer other than `Activation` (`ReLU` with
    `max_value=6` is relu6), or None for any other layer."""
    for cls, name in KERAS_LAYERS.items():
        if isinstance(layer, cls):
            if name == "relu" and getattr(layer, "max_value", None) == 6.0:
                return "relu6"
            return name
    return None


def find(name: str) -> Nonlinearity | None:
    """The entry for a name or alias, or None when the table does not know it."""
    key = name.strip().lower()
    return NONLINEARITIES.get(ALIASES.get(key, key))


def names() -> list[str]:
    """The canonical names `calculate_gain` accepts (aliases resolve to these).

    Example:
    >>> "tanh" in keras_initkit.initializers.nonlinearity_names()
    True

    Reference:
    - `research/activations.md` §2.2 (the gains table these names index)
    """
    return sorted(NONLINEARITIES)


def lookup(name: str) -> Nonlinearity:
    """Returns the entry for a name or alias, or raises listing the known names."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in NONLINEARITIES:
        raise ValueError(
            f"nonlinearity must be one of {', '.join(names())} "
            f"(aliases: {', '.join(sorted(ALIASES))}); got {name!r}"
        )
    return NONLINEARITIES[key]


def check_param(entry: Nonlinearity, param: Any) -> Any:
    """Returns the parameter to use for `entry`: `param`, or the default if it is None."""
    if not entry.takes_param:
        if param is not None:
            raise ValueError(
                f"param must be None for nonlinearity {entry.name!r}, which takes no "
                f"parameter; got param={param!r}"
            )
        return None
    if param is None:
        return entry.default_param
    test, description = entry.param_check or _ANY_REAL
    if not test(param):
        raise ValueError(
            f"param ({entry.param_name} of {entry.name!r}) must be {description}; "
            f"got {param!r}"
        )
    return int(param) if entry.name == "maxout" else float(param)


# The integration grid: Simpson's rule on [-12, 12] with step 1e-3. Every kink of the
# table's activations (0, ±1, ±3, 6) is a grid node, so the error is far below 1e-6.
_GRID = np.linspace(-12.0, 12.0, 24001)
_WEIGHTS = np.ones_like(_GRID)
_WEIGHTS[1:-1:2] = 4.0
_WEIGHTS[2:-1:2] = 2.0
_WEIGHTS *= (_GRID[1] - _GRID[0]) / 3.0
_DENSITY = np.exp(-0.5 * _GRID**2) / math.sqrt(2.0 * math.pi)


def gaussian_second_moment(values: np.ndarray) -> float:
    """E[f(z)^2] for z ~ N(0, 1), given `values = f(grid)` on the integration grid."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.sum(_WEIGHTS * _DENSITY * values**2))


def integration_grid() -> np.ndarray:
    """The points at which `gaussian_second_moment` expects `f` to be evaluated."""
    return _GRID.copy()


def second_moment(entry: Nonlinearity, param: Any) -> float:
    """E[phi(z)^2], z ~ N(0, 1): the quantity whose inverse square root is the gain."""
    if entry.name == "maxout":
        # Density of the largest of k unit normals: k * pdf(x) * cdf(x)^(k-1), in logs:
        # for large k, cdf(x) near 1 must be written 1 - sf(x) with sf computed directly.
        with np.errstate(divide="ignore"):  # log(cdf) = -inf far left: density 0 there
            log_cdf = np.log1p(-_norm_sf(_GRID))
        density = np.exp(math.log(param) + (float(param) - 1.0) * log_cdf) * _DENSITY
        return float(np.sum(_WEIGHTS * density * _GRID**2))
    if entry.fn is None:
        return 1.0
    return gaussian_second_moment(entry.fn(_GRID, param))
