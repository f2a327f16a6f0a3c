"""Activation functions Keras lacks, registered so that models using them save and load.

Use them as callables, `Dense(activation=keras_initkit.activations.snake)`, or look them up
with `keras_initkit.activations.get("snake")`, which also resolves every Keras name. Keras's
own string lookup (`Dense(activation="snake")`) only knows Keras's built-ins, and
keras_initkit does not patch Keras's private tables to change that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from keras_initkit.activations.functions import gelu_approximate, lisht, snake, tanhexp

_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "snake": snake,
    "tanhexp": tanhexp,
    "lisht": lisht,
    "gelu_approximate": gelu_approximate,
}
_PREFIX = "keras_initkit>"


def get(identifier: Any) -> Callable[..., Any]:
    """Returns an activation function for a name, ours or Keras's.

    Args:
        identifier: a name (`"snake"`, `"keras_initkit>snake"`, `"relu"`, `"gelu"`, ...),
            a callable (returned as is), or `None` (linear).

    Returns:
        The activation function.

    Example:
    >>> keras_initkit.activations.get("snake").__name__
    'snake'
    >>> keras_initkit.activations.get("relu") is keras.activations.relu
    True

    Reference:
    - [Keras activations](https://keras.io/api/layers/activations/)
    """
    if isinstance(identifier, str):
        key = identifier[len(_PREFIX):] if identifier.startswith(_PREFIX) else identifier
        if key in _FUNCTIONS:
            return _FUNCTIONS[key]
        try:
            return keras.activations.get(identifier)
        except ValueError:
            raise ValueError(
                f"activation must be one of {', '.join(sorted(_FUNCTIONS))} or a "
                f"keras.activations name; got {identifier!r}"
            ) from None
    return keras.activations.get(identifier)


def names() -> list[str]:
    """The names of keras_initkit's own activation functions.

    Example:
    >>> keras_initkit.activations.names()
    ['gelu_approximate', 'lisht', 'snake', 'tanhexp']

    Reference:
    - [Keras activations](https://keras.io/api/layers/activations/)
    """
    return sorted(_FUNCTIONS)


__all__ = ["gelu_approximate", "get", "lisht", "names", "snake", "tanhexp"]
