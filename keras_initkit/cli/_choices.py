"""The objects behind the names the `keras-initkit` command accepts (the names themselves
are in `_args.py`, which must not import Keras)."""

from __future__ import annotations

from typing import Any

import keras

from keras_initkit import activations as ki_activations
from keras_initkit import initializers as ki
from keras_initkit.cli._args import ACTIVATIONS, INITS, check_init

# One class per name of `_args.NAMED_INITS` (tests/test_cli.py checks both lists agree).
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
__all__ = ["ACTIVATIONS", "INITS", "check_init", "activation_function", "make_initializer"]


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
