"""`VarianceScaling` and the named schemes that specialize it: LeCun, Glorot/Xavier, He/Kaiming."""

from __future__ import annotations

import math
from typing import Any

import keras

from keras_initkit.initializers import gain as gain_lib
from keras_initkit.initializers._checks import (
    check_axes,
    check_choice,
    check_dtype,
    check_positive,
    check_shape,
    dtype_max,
)
from keras_initkit.initializers._config import VersionedConfig, versioned
from keras_initkit.initializers.fans import Fans, compute_fans

MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform", "normal")

# Std of a unit normal truncated to (-2, 2): dividing by it restores the target variance
# after truncation at two standard deviations (Keras, JAX and TF all use this constant).
TRUNCATED_STD = 0.87962566103423978


def _serializable_seed(seed: Any) -> Any:
    return keras.saving.serialize_keras_object(seed) if seed is not None else None


@keras.saving.register_keras_serializable(package="keras_initkit")
class VarianceScaling(VersionedConfig, keras.initializers.VarianceScaling):
    """Draws weights with variance `scale * gain^2 * calculate_gain(nonlinearity)^2 / fan`.

    The one core every named initializer specializes (as in JAX). It accepts every
    argument of `keras.initializers.VarianceScaling` with the same meaning, so it is a
    drop-in replacement (and an instance of it: `EinsumDense` and `MultiHeadAttention`
    give it their equation's fan axes, as they do Keras's own), and adds what Keras lacks:
    a gain for the activation that follows (`nonlinearity`, `param`, `gain`), the mode
    `fan_geo_avg` (`sqrt(fan_in * fan_out)`, as in JAX), and explicit `fans` for the
    layer-aware path.

    With `n` the chosen fan and `v = scale * gain^2 * g^2 / n`:

    - `"truncated_normal"`: a normal with std `sqrt(v) / 0.8796`, cut at two of those
      standard deviations; the cut removes 4.6% of the mass and the 0.8796 puts the
      variance back at exactly `v` (Keras's behaviour).
    - `"untruncated_normal"`: N(0, v), what PyTorch's `xavier_normal_`/`kaiming_normal_`
      draw.
    - `"uniform"`: U(-sqrt(3v), sqrt(3v)).
    - `"normal"` is accepted for compatibility with Keras and means `"truncated_normal"`
      there and here, so that a config written for Keras keeps its meaning. Ask for
      `"untruncated_normal"` when you want PyTorch's or JAX's plain normal.

    Seeds follow Keras: an int seed gives the same values at every call, a
    `keras.random.SeedGenerator` advances at every call, and `seed=None` draws a seed
    from Python's `random` at construction, so `keras.utils.set_random_seed` makes it
    reproducible. `get_config` keeps the seed as passed, so a clone of an unseeded
    initializer draws new values.

    Args:
        scale: positive float; multiplies the variance. Defaults to `1.0`.
        mode: `"fan_in"`, `"fan_out"`, `"fan_avg"` or `"fan_geo_avg"`. Defaults to
            `"fan_in"`.
        distribution: `"truncated_normal"`, `"untruncated_normal"` or `"uniform"`
            (`"normal"` as in Keras). Defaults to `"truncated_normal"`.
        seed: int, `keras.random.SeedGenerator` or `None`.
        input_axes: kernel axes that count for fan_in (Keras 3.15); `None` for Keras's
            shape convention.
        output_axes: kernel axes that count for fan_out.
        gain: positive float multiplying the standard deviation (PyTorch's `gain`).
            Defaults to `1.0`.
        nonlinearity: the activation that follows, as accepted by `calculate_gain`
            (a name such as `"tanh"`, or `None` for linear). Its fixed-point gain
            multiplies the standard deviation. Defaults to `None`.
        param: the nonlinearity's parameter (leaky slope, ELU alpha, maxout pieces...).
        fans: optional `(fan_in, fan_out)` that overrides the shape's fans, e.g. from
            `compute_fans(layer)`; stored in the config so a reloaded layer draws alike.

    Example:
    >>> init = keras_initkit.initializers.VarianceScaling(
    ...     mode="fan_in", distribution="untruncated_normal", nonlinearity="tanh")
    >>> w = init((1000, 1000))
    >>> round(init.variance_scale, 4)  # 1.5925 ** 2
    2.5362

    Reference:
    - [He et al., 2015](https://arxiv.org/abs/1502.01852)
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html)
    """

    def __init__(
        self,
        scale: float = 1.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        seed: Any = None,
        input_axes: Any = None,
        output_axes: Any = None,
        gain: float = 1.0,
        nonlinearity: Any = None,
        param: Any = None,
        fans: Any = None,
    ) -> None:
        scale = check_positive("scale", scale)
        mode = check_choice("mode", mode, MODES)
        if isinstance(distribution, str):
            distribution = distribution.lower()
        distribution = check_choice("distribution", distribution, DISTRIBUTIONS)
        if distribution == "normal":
            distribution = "truncated_normal"
        gain = check_positive("gain", gain)
        input_axes = check_axes("input_axes", input_axes)
        output_axes = check_axes("output_axes", output_axes)
        # Resolving now raises early for an unknown name or a bad param.
        nonlinearity, nonlinearity_gain = gain_lib.named_gain(nonlinearity, param)
        if fans is not None:
            try:
                fan_in, fan_out = (check_positive("fans", f) for f in fans)
            except (TypeError, ValueError):
                raise ValueError(
                    f"fans must be None or (fan_in, fan_out) with positive entries; got {fans!r}"
                ) from None
            fans = Fans(fan_in, fan_out)
        effective = gain * nonlinearity_gain
        if not math.isfinite(scale * effective * effective * 9):
            raise ValueError(
                "scale and gain are too large: the weights' standard deviation "
                "sqrt(scale) * gain * calculate_gain(nonlinearity) overflows; "
                f"got scale={scale!r}, gain={gain!r}, nonlinearity={nonlinearity!r}"
            )
        # Keras's own constructor handles the seed contract; it knows only three modes.
        super().__init__(
            scale=scale,
            mode=mode if mode != "fan_geo_avg" else "fan_in",
            distribution=distribution,
            seed=seed,
            input_axes=input_axes,
            output_axes=output_axes,
        )
        self.mode = mode
        self.gain = gain
        self.nonlinearity = nonlinearity
        self.param = param
        self.fans = fans
        self._nonlinearity_gain = nonlinearity_gain
        self._squared_gain = gain_lib.squared_gain(nonlinearity, param)

    @property
    def variance_scale(self) -> float:
        """The numerator of the variance: `scale * gain^2 * calculate_gain(nonlinearity)^2`."""
        # Products, not `**`: a huge gain gives inf, never OverflowError.
        return self.scale * (self.gain * self.gain) * self._squared_gain

    def fan(self, shape: Any) -> float:
        """The fan that divides the variance, for `shape` (or `fans` when given)."""
        fan_in, fan_out = self.fans or compute_fans(
            check_shape(shape), self.input_axes, self.output_axes
        )
        if self.mode == "fan_in":
            fan = fan_in
        elif self.mode == "fan_out":
            fan = fan_out
        elif self.mode == "fan_avg":
            fan = (fan_in + fan_out) / 2.0
        else:
            fan = math.sqrt(fan_in * fan_out)
        return max(1.0, float(fan))

    def _variance(self, shape: Any) -> float:
        # As Keras: scale / fan, then the square root (float32 draws stay bit-equal).
        return self.variance_scale / self.fan(shape)

    def stddev(self, shape: Any) -> float:
        """The standard deviation the drawn weights have, for `shape`."""
        return math.sqrt(self._variance(shape))

    def __call__(self, shape: Any, dtype: Any = None) -> Any:
        shape = check_shape(shape, allow_empty=True)
        dtype = check_dtype(dtype)
        if 0 in shape:  # an empty weight, as Keras returns it
            return keras.ops.zeros(shape, dtype=dtype)
        # Drawn in the requested dtype, as Keras does, so float16/bfloat16 draws match.
        variance = self._variance(shape)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            self._check_fits(limit, dtype)
            return keras.random.uniform(
                shape, minval=-limit, maxval=limit, dtype=dtype, seed=self.seed
            )
        if self.distribution == "untruncated_normal":
            std = math.sqrt(variance)
            self._check_fits(8.0 * std, dtype)
            return keras.random.normal(shape, mean=0.0, stddev=std, dtype=dtype, seed=self.seed)
        wide = math.sqrt(variance) / TRUNCATED_STD
        self._check_fits(2.0 * wide, dtype)
        values = keras.random.truncated_normal(
            shape, mean=0.0, stddev=wide, dtype=dtype, seed=self.seed
        )
        if keras.backend.backend() == "torch":
            # Keras's torch backend keeps the first of four draws when all four fall
            # outside the cut (~4 values per million); we clip those to the cut.
            values = keras.ops.clip(values, -2.0 * wide, 2.0 * wide)
        return values

    def _check_fits(self, bound: float, dtype: str) -> None:
        if not bound <= dtype_max(dtype):
            raise ValueError(
                f"scale and gain are too large for dtype {dtype}: the weights would reach "
                f"{bound:.3g}, beyond its largest value {dtype_max(dtype):.5g}; got "
                f"scale={self.scale!r}, gain={self.gain!r}, nonlinearity={self.nonlinearity!r}"
            )

    def get_config(self) -> dict[str, Any]:
        return versioned({
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "seed": super().get_config()["seed"],
            "input_axes": self.input_axes,
            "output_axes": self.output_axes,
            "gain": self.gain,
            "nonlinearity": self.nonlinearity,
            "param": self.param,
            "fans": list(self.fans) if self.fans is not None else None,
        })

    def for_layer(self, layer: keras.layers.Layer, weight: Any = None) -> VarianceScaling:
        """Returns a copy whose `fans` are the layer-aware fans of `layer`'s weight.

        Inside `Dense(kernel_initializer=...)` an initializer only sees a shape; this is
        the path that knows the layer (a depthwise kernel's fan_in is `k*k`, a transposed
        convolution's fans are swapped, an LSTM kernel's fan_out is per gate). The copy
        keeps the seed and stores the fans in its config.

        Args:
            layer: a built Keras layer.
            weight: which weight (see `compute_fans`); defaults to the main kernel.
        """
        config = self.get_config()
        config["seed"] = self.seed
        config["fans"] = list(compute_fans(layer, weight=weight))
        return self.__class__.from_config(config)


class _Named(VarianceScaling):
    """A fixed scale and distribution: the gain, seed, axes and fans are the user's."""

    _MODE = "fan_in"
    _DISTRIBUTION = "truncated_normal"
    _NONLINEARITY = "linear"
    _HAS_MODE = False

    def __init__(
        self,
        seed: Any = None,
        input_axes: Any = None,
        output_axes: Any = None,
        nonlinearity: Any = None,
        param: Any = None,
        gain: float = 1.0,
        fans: Any = None,
    ) -> None:
        self._setup(self._MODE, nonlinearity, param, gain, seed, input_axes, output_axes, fans)

    def _setup(
        self,
        mode: str,
        nonlinearity: Any,
        param: Any,
        gain: float,
        seed: Any,
        input_axes: Any,
        output_axes: Any,
        fans: Any,
    ) -> None:
        VarianceScaling.__init__(
            self,
            scale=1.0,
            mode=mode,
            distribution=self._DISTRIBUTION,
            seed=seed,
            input_axes=input_axes,
            output_axes=output_axes,
            gain=gain,
            nonlinearity=self._NONLINEARITY if nonlinearity is None else nonlinearity,
            param=param,
            fans=fans,
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        del config["scale"], config["distribution"]
        if not self._HAS_MODE:
            del config["mode"]
        return config


class _FanInNamed(_Named):
    """Named schemes on fan_in that, like PyTorch's kaiming, may switch to fan_out."""

    _HAS_MODE = True

    def __init__(
        self,
        seed: Any = None,
        input_axes: Any = None,
        output_axes: Any = None,
        nonlinearity: Any = None,
        param: Any = None,
        gain: float = 1.0,
        mode: str = "fan_in",
        fans: Any = None,
    ) -> None:
        self._setup(mode, nonlinearity, param, gain, seed, input_axes, output_axes, fans)


@keras.saving.register_keras_serializable(package="keras_initkit")
class LecunNormal(_FanInNamed):
    """LeCun normal: truncated normal with variance `gain^2 * g(nonlinearity)^2 / fan_in`.

    The variance-preserving scheme for a linear unit, and the one SELU's self-normalizing
    property assumes. With `nonlinearity=` it becomes the gain-scaled LeCun scheme that
    `initializer_for` recommends for tanh, ELU, GELU and friends.

    Args:
        nonlinearity: the activation that follows (see `calculate_gain`). Defaults to
            `"linear"` (gain 1).
        param: the nonlinearity's parameter.
        gain: extra positive factor on the standard deviation. Defaults to `1.0`.
        mode: `"fan_in"` (default), `"fan_out"`, `"fan_avg"` or `"fan_geo_avg"`.
        seed: int, `keras.random.SeedGenerator` or `None` (Keras's seed contract).
        input_axes: kernel axes that count for fan_in.
        output_axes: kernel axes that count for fan_out.
        fans: optional explicit `(fan_in, fan_out)`.

    Example:
    >>> init = keras_initkit.initializers.LecunNormal(seed=0)
    >>> layer = keras.layers.Dense(8, activation="selu", kernel_initializer=init)

    Reference:
    - [LeCun et al., 1998](http://yann.lecun.com/exdb/publis/pdf/lecun-98b.pdf)
    - [Klambauer et al., 2017](https://arxiv.org/abs/1706.02515)
    """


@keras.saving.register_keras_serializable(package="keras_initkit")
class LecunUniform(_FanInNamed):
    """LeCun uniform: U(-limit, limit), `limit = sqrt(3 * gain^2 * g^2 / fan_in)`.

    Args:
        nonlinearity: the activation that follows. Defaults to `"linear"`.
        param: the nonlinearity's parameter.
        gain: extra positive factor on the standard deviation. Defaults to `1.0`.
        mode: `"fan_in"` (default), `"fan_out"`, `"fan_avg"` or `"fan_geo_avg"`.
        seed: int, `keras.random.SeedGenerator` or `None`.
        input_axes: kernel axes that count for fan_in.
        output_axes: kernel axes that count for fan_out.
        fans: optional explicit `(fan_in, fan_out)`.

    Example:
    >>> init = keras_initkit.initializers.LecunUniform(seed=0)
    >>> float(keras.ops.max(init((100, 10)))) <= (3 / 100) ** 0.5
    True

    Reference:
    - [LeCun et al., 1998](http://yann.lecun.com/exdb/publis/pdf/lecun-98b.pdf)
    """

    _DISTRIBUTION = "uniform"


@keras.saving.register_keras_serializable(package="keras_initkit")
class HeNormal(_FanInNamed):
    """He (Kaiming) normal: truncated normal with variance `g(nonlinearity)^2 / fan_in`.

    By default `nonlinearity="relu"`, so the variance is `2 / fan_in`. For a leaky ReLU
    pass its slope: `HeNormal(nonlinearity="leaky_relu", param=0.2)` has variance
    `2 / ((1 + 0.2^2) * fan_in)`, which plain He over-scales (at slope 0.3 the std of a
    50-layer stack grows to ~7 instead of staying near 1).

    Args:
        nonlinearity: the activation that follows. Defaults to `"relu"`.
        param: the nonlinearity's parameter (the leaky slope, PReLU's initial alpha).
        gain: extra positive factor on the standard deviation. Defaults to `1.0`.
        mode: `"fan_in"` (default; preserves activations) or `"fan_out"` (preserves
            gradients, as torchvision's ResNets use), `"fan_avg"`, `"fan_geo_avg"`.
        seed: int, `keras.random.SeedGenerator` or `None`.
        input_axes: kernel axes that count for fan_in.
        output_axes: kernel axes that count for fan_out.
        fans: optional explicit `(fan_in, fan_out)`.

    Example:
    >>> init = keras_initkit.initializers.HeNormal(nonlinearity="leaky_relu", param=0.2)
    >>> round(init.stddev((1000, 1000)) ** 2 * 1000, 4)  # 2 / 1.04
    1.9231

    Reference:
    - [He et al., 2015](https://arxiv.org/abs/1502.01852)
    """

    _NONLINEARITY = "relu"


@keras.saving.register_keras_serializable(package="keras_initkit")
class HeUniform(_FanInNamed):
    """He (Kaiming) uniform: U(-limit, limit), `limit = sqrt(3 * g(nonlinearity)^2 / fan_in)`.

    Args:
        nonlinearity: the activation that follows. Defaults to `"relu"` (limit
            `sqrt(6 / fan_in)`).
        param: the nonlinearity's parameter.
        gain: extra positive factor on the standard deviation. Defaults to `1.0`.
        mode: `"fan_in"` (default), `"fan_out"`, `"fan_avg"` or `"fan_geo_avg"`.
        seed: int, `keras.random.SeedGenerator` or `None`.
        input_axes: kernel axes that count for fan_in.
        output_axes: kernel axes that count for fan_out.
        fans: optional explicit `(fan_in, fan_out)`.

    Example:
    >>> init = keras_initkit.initializers.HeUniform(seed=1)
    >>> float(keras.ops.max(keras.ops.abs(init((600, 50))))) <= (6 / 600) ** 0.5
    True

    Reference:
    - [He et al., 2015](https://arxiv.org/abs/1502.01852)
    """

    _DISTRIBUTION = "uniform"
    _NONLINEARITY = "relu"


@keras.saving.register_keras_serializable(package="keras_initkit")
class GlorotNormal(_Named):
    """Glorot (Xavier) normal: truncated normal, variance `2 * gain^2 * g^2 / (fan_in + fan_out)`.

    The compromise between preserving activations (fan_in) and gradients (fan_out) that
    Glorot & Bengio derived for tanh-like units near 0. `nonlinearity=` multiplies it by
    the activation's gain, as PyTorch's `xavier_normal_(gain=calculate_gain(...))`.

    Args:
        nonlinearity: the activation that follows. Defaults to `"linear"`.
        param: the nonlinearity's parameter.
        gain: extra positive factor on the standard deviation. Defaults to `1.0`.
        seed: int, `keras.random.SeedGenerator` or `None`.
        input_axes: kernel axes that count for fan_in.
        output_axes: kernel axes that count for fan_out.
        fans: optional explicit `(fan_in, fan_out)`.

    Example:
    >>> init = keras_initkit.initializers.XavierNormal(seed=0)  # alias
    >>> round(init.stddev((300, 100)) ** 2, 6)  # 2 / (300 + 100)
    0.005

    Reference:
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html)
    """

    _MODE = "fan_avg"


@keras.saving.register_keras_serializable(package="keras_initkit")
class GlorotUniform(_Named):
    """Glorot (Xavier) uniform: U(-limit, limit), `limit = gain * g * sqrt(6 / (fan_in + fan_out))`.

    Keras's default kernel initializer for Dense and Conv layers.

    Args:
        nonlinearity: the activation that follows. Defaults to `"linear"`.
        param: the nonlinearity's parameter.
        gain: extra positive factor on the standard deviation. Defaults to `1.0`.
        seed: int, `keras.random.SeedGenerator` or `None`.
        input_axes: kernel axes that count for fan_in.
        output_axes: kernel axes that count for fan_out.
        fans: optional explicit `(fan_in, fan_out)`.

    Example:
    >>> layer = keras.layers.Dense(
    ...     4, kernel_initializer="keras_initkit>GlorotUniform")
    >>> type(layer.kernel_initializer).__name__
    'GlorotUniform'

    Reference:
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html)
    """

    _MODE = "fan_avg"
    _DISTRIBUTION = "uniform"


# The literature's names, as in JAX (`xavier_uniform = glorot_uniform`).
XavierNormal = GlorotNormal
XavierUniform = GlorotUniform
KaimingNormal = HeNormal
KaimingUniform = HeUniform
