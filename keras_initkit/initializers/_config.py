"""Versioned configs: every keras_initkit config starts with the version that wrote it.

The key is first on purpose. Loading a model without `import keras_initkit`, Keras falls
back to its own class of the same name (`HeNormal`), whose constructor rejects the first
unknown key: the error then reads "got an unexpected keyword argument
'keras_initkit_version'", which says what to import. The version also lets a later
release migrate old configs.
"""

from __future__ import annotations

import inspect
from typing import Any

from keras_initkit.version import __version__

VERSION_KEY = "keras_initkit_version"


def versioned(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with the version key first."""
    return {VERSION_KEY: __version__, **config}


class VersionedConfig:
    """Mixin: `from_config` drops the version key `get_config` adds; a readable repr."""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        config = {k: v for k, v in config.items() if k != VERSION_KEY}
        return cls(**config)

    def __repr__(self) -> str:
        """`ClassName(arg=value, ...)` with the arguments that differ from the defaults."""
        defaults = {
            name: parameter.default
            for name, parameter in inspect.signature(type(self).__init__).parameters.items()
        }
        defaults["nonlinearity"] = getattr(self, "_NONLINEARITY", defaults.get("nonlinearity"))
        shown = [
            f"{key}={self._repr_value(key, value)}"
            for key, value in self.get_config().items()  # type: ignore[attr-defined]
            if key != VERSION_KEY and (key not in defaults or defaults[key] != value)
        ]
        return f"{type(self).__name__}({', '.join(shown)})"

    def _repr_value(self, key: str, value: Any) -> str:
        attribute = getattr(self, key, None)
        if isinstance(value, dict) and attribute is not None:
            return repr(attribute)  # a nested object: show its repr, not its config
        return repr(value)
