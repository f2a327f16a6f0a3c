"""Initializers, gains and fans: `keras_initkit.initializers`.

Importing it registers every initializer with Keras under `"keras_initkit>ClassName"`, so
`Dense(kernel_initializer="keras_initkit>HeNormal")` works and saved models load.
"""

from __future__ import annotations

from typing import Any

import keras

from keras_initkit.initializers.fans import Fans, compute_fans
from keras_initkit.initializers.gain import calculate_gain
from keras_initkit.initializers.nonlinearities import names as nonlinearity_names
from keras_initkit.initializers.orthogonal import Orthogonal
from keras_initkit.initializers.recommend import initializer_for
from keras_initkit.initializers.residual import Fixup, ResidualZeros
from keras_initkit.initializers.variance_scaling import (
    GlorotNormal,
    GlorotUniform,
    HeNormal,
    HeUniform,
    KaimingNormal,
    KaimingUniform,
    LecunNormal,
    LecunUniform,
    VarianceScaling,
    XavierNormal,
    XavierUniform,
)

_CLASSES: dict[str, type[keras.initializers.Initializer]] = {
    "VarianceScaling": VarianceScaling,
    "LecunNormal": LecunNormal,
    "LecunUniform": LecunUniform,
    "GlorotNormal": GlorotNormal,
    "GlorotUniform": GlorotUniform,
    "XavierNormal": XavierNormal,
    "XavierUniform": XavierUniform,
    "HeNormal": HeNormal,
    "HeUniform": HeUniform,
    "KaimingNormal": KaimingNormal,
    "KaimingUniform": KaimingUniform,
    "Orthogonal": Orthogonal,
    "ResidualZeros": ResidualZeros,
    "Fixup": Fixup,
}


def _snake(name: str) -> str:
    out = []
    for i, char in enumerate(name):
        if char.isupper() and i:
            out.append("_")
        out.append(char.lower())
    return "".join(out)


ALL_OBJECTS: dict[str, type] = {**_CLASSES, **{_snake(k): v for k, v in _CLASSES.items()}}
# Keras's compatibility alias of a class we replace resolves to ours too.
_KERAS_ALIASES: dict[str, type[keras.initializers.Initializer]] = {
    "OrthogonalInitializer": Orthogonal
}

# Aliases are the same classes (as in JAX); their names also resolve in Keras strings.
for _name in ("XavierNormal", "XavierUniform", "KaimingNormal", "KaimingUniform"):
    keras.saving.get_custom_objects()[f"keras_initkit>{_name}"] = _CLASSES[_name]

_PREFIX = "keras_initkit>"


def get(identifier: Any) -> Any:
    """Returns an initializer for an identifier, preferring keras_initkit's classes.

    Resolves our class names and snake-case ids (`"he_normal"`, `"xavier_uniform"`,
    `"kaiming_normal"`, `"orthogonal"`, Keras's alias `"OrthogonalInitializer"`,
    `"fixup"`), with or without the `"keras_initkit>"` prefix, to keras_initkit's
    initializers; config dicts, whether `serialize` or Keras wrote them (see
    `deserialize`); instances (returned as they are); and, failing those, anything
    `keras.initializers.get` accepts (`"random_normal"`, `"zeros"`, ...).

    Args:
        identifier: a string, a config dict, an initializer, or `None`.

    Returns:
        An initializer instance, or `None` for `None`.

    Example:
    >>> keras_initkit.initializers.get("kaiming_normal")
    HeNormal()
    >>> keras_initkit.initializers.get("zeros")  # doctest: +ELLIPSIS
    <keras...Zeros object at ...>

    Reference:
    - [Keras initializers](https://keras.io/api/layers/initializers/)
    """
    return get_as("initializer", identifier)


def get_as(argument: str, identifier: Any) -> Any:
    """`get(identifier)`, with errors that name `argument` (e.g. `"kernel_initializer"`).

    Args:
        argument: the name of the argument the identifier was passed as.
        identifier: as for `get`.

    Example:
    >>> keras_initkit.initializers.get_as("base", "he_normal")
    HeNormal()

    Reference:
    - [Keras initializers](https://keras.io/api/layers/initializers/)
    """
    if identifier is None:
        return None
    if isinstance(identifier, str):
        key = identifier[len(_PREFIX):] if identifier.startswith(_PREFIX) else identifier
        if key in ALL_OBJECTS or key in _KERAS_ALIASES:
            return {**ALL_OBJECTS, **_KERAS_ALIASES}[key]()
        try:
            return keras.initializers.get(identifier)
        except (ValueError, TypeError):
            raise ValueError(
                f"{argument} must be one of {', '.join(sorted(ALL_OBJECTS))} or a "
                f"keras.initializers name; got {identifier!r}"
            ) from None
    if isinstance(identifier, dict):
        try:
            return deserialize(identifier)
        except (ValueError, TypeError, KeyError) as error:
            raise ValueError(
                f"{argument} could not be rebuilt from the config {identifier!r}: {error}"
            ) from None
    if callable(identifier) and not isinstance(identifier, type):
        return identifier  # an initializer instance or a function(shape, dtype)
    try:
        return keras.initializers.get(identifier)
    except (ValueError, TypeError):
        raise ValueError(
            f"{argument} must be an initializer, a name, a config dict, an array or None; "
            f"got {identifier!r}"
        ) from None


def serialize(initializer: Any) -> dict[str, Any]:
    """Returns the Keras config dict of an initializer (`keras.saving.serialize_keras_object`).

    Args:
        initializer: the initializer to serialize.

    Example:
    >>> keras_initkit.initializers.serialize(HeNormal())["registered_name"]
    'keras_initkit>HeNormal'

    Reference:
    - [Keras serialization](https://keras.io/guides/serialization_and_saving/)
    """
    return keras.saving.serialize_keras_object(initializer)


def deserialize(config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> Any:
    """Rebuilds an initializer from `serialize`'s dict; our class names take precedence.

    A dict that Keras wrote for one of the classes keras_initkit replaces (`HeNormal`,
    `VarianceScaling`, `Orthogonal`, ... with no `registered_name` or Keras's module)
    gives keras_initkit's class, built from the same arguments, as `get` does for names.

    Args:
        config: the dict `serialize` returns (or a `{"class_name", "config"}` dict).
        custom_objects: optional extra classes to resolve names against.

    Example:
    >>> init = keras_initkit.initializers.deserialize(
    ...     {"class_name": "HeNormal", "config": {"nonlinearity": "leaky_relu", "param": 0.2}})
    >>> init
    HeNormal(nonlinearity='leaky_relu', param=0.2)

    Reference:
    - [Keras serialization](https://keras.io/guides/serialization_and_saving/)
    """
    if not isinstance(config, dict):
        raise ValueError(f"config must be a dict from serialize(); got {config!r}")
    class_name = config.get("class_name")
    registered = config.get("registered_name")
    ours = {**_CLASSES, **_KERAS_ALIASES}.get(class_name) if isinstance(class_name, str) else None
    if ours is not None and (
        registered in (None, class_name) or str(registered).startswith(_PREFIX)
    ) and not (custom_objects and class_name in custom_objects):
        inner = config.get("config", {})
        if not isinstance(inner, dict):
            raise ValueError(f"config['config'] must be a dict; got {inner!r}")
        return ours.from_config(inner)
    return keras.saving.deserialize_keras_object(
        config, custom_objects={**_CLASSES, **(custom_objects or {})}
    )


__all__ = [
    "ALL_OBJECTS",
    "Fans",
    "Fixup",
    "GlorotNormal",
    "GlorotUniform",
    "HeNormal",
    "HeUniform",
    "KaimingNormal",
    "KaimingUniform",
    "LecunNormal",
    "LecunUniform",
    "Orthogonal",
    "ResidualZeros",
    "VarianceScaling",
    "XavierNormal",
    "XavierUniform",
    "calculate_gain",
    "compute_fans",
    "deserialize",
    "get",
    "initializer_for",
    "nonlinearity_names",
    "serialize",
]
