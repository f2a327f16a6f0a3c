"""The activation and initializer names the `keras-initkit` command accepts."""

from __future__ import annotations

import argparse
import math
from typing import Any

import keras

from keras_initkit import activations as ki_activations
from keras_initkit import initializers as ki
from keras_initkit.initializers import nonlinearity_names

# Activations that are not elementwise (or need a layer's parameters) cannot fill a plain
# `Dense(width, activation=...)` stack of constant width.
_NOT_ELEMENTWISE = ("glu", "log_softmax", "maxout", "prelu", "softmax", "sparsemax")
ACTIVATIONS = tuple(n for n in nonlinearity_names() if n not in _NOT_ELEMENTWISE)

_NAMED = {
    "glorot_normal": ki.GlorotNormal,
    "glorot_uniform": ki.GlorotUniform,
    "xavier_normal": ki.XavierNormal,
    "xavier_uniform": ki.XavierUniform,
    "he_normal": ki.HeNormal,
    "he_uniform": ki.HeUniform,
    "kaiming_normal": ki.KaimingNormal,
    "kaiming_uniform": ki.KaimingUniform,
    "lecun_normal": ki.LecunNormal,
    "lecun_uniform": ki.LecunUniform,
    "orthogonal": ki.Orthogonal,
}
# `auto`: initializer_for(activation); `lsuv`: orthogonal, then LSUV on the study's data;
# `standard`: Glorot & Bengio's "standard" U[-1/sqrt(fan_in), 1/sqrt(fan_in)].
INITS = ("normal:STD", "uniform:LIMIT", "constant:C", "zeros", "standard", *_NAMED, "auto",
         "lsuv")


def check_init(spec: str) -> None:
    """Raises `argparse.ArgumentTypeError` unless `spec` names an initializer in `INITS`."""
    name, _, value = spec.partition(":")
    if name in ("normal", "uniform"):
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not number > 0 or number == float("inf"):
            raise argparse.ArgumentTypeError(
                f"{name}:X needs a positive number X (e.g. {name}:0.01); got {spec!r}"
            )
        return
    if name == "constant":
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not math.isfinite(number):
            raise argparse.ArgumentTypeError(
                f"constant:C needs a finite number C (e.g. constant:0.1); got {spec!r}"
            )
        return
    if spec not in INITS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(INITS)}; got {spec!r}")


def make_initializer(spec: str, activation: str, seed: int) -> Any:
    """The kernel initializer `spec` names, seeded with the int `seed`."""
    name, _, value = spec.partition(":")
    if name == "normal":
        return keras.initializers.RandomNormal(mean=0.0, stddev=float(value), seed=seed)
    if name == "uniform":
        return keras.initializers.RandomUniform(-float(value), float(value), seed=seed)
    if name == "constant":
        return keras.initializers.Constant(float(value))
    if name == "zeros":
        return keras.initializers.Zeros()
    if name == "standard":  # limit sqrt(3 * scale / fan_in) = 1 / sqrt(fan_in)
        return keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform", seed=seed)
    if name == "auto":
        return ki.initializer_for(activation, seed=seed)
    if name == "lsuv":
        return ki.Orthogonal(seed=seed)
    return _NAMED[name](seed=seed)


def activation_function(name: str) -> Any:
    """The activation function for a name in `ACTIVATIONS`."""
    return ki_activations.get(name)
