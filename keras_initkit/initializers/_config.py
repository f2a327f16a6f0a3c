"""Versioned configs: every keras_initkit config starts with the version that wrote it.

The key is first on purpose. Loading a model without `import keras_initkit`, Keras falls
back to its own class of the same name (`HeNormal`), whose constructor rejects the first
unknown key: the error then reads "got an unexpected keyword argument
'keras_initkit_version'", which says what to import. The version also lets a later
release migrate old configs.
"""

from __future__ import annotations

import inspect
import re
import warnings
from typing import Any

from keras_initkit.version import __version__

VERSION_KEY = "keras_initkit_version"


def _parse(version: Any) -> tuple[int, ...]:
    """`"0.1.0"` -> `(0, 1, 0)`; raises naming the key for anything that is not a version."""
    match = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?\S*", version) if isinstance(
        version, str
    ) else None
    if match is None:
        raise ValueError(
            f"{VERSION_KEY} in the config must be a version string such as "
            f"{__version__!r}; got {version!r}. The config is malformed."
        )
    return tuple(int(part or 0) for part in match.groups())


def versioned(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with the version key first."""
    return {VERSION_KEY: __version__, **config}


class VersionedConfig:
    """Mixin: `from_config` drops the version key `get_config` adds; a readable repr."""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        if not isinstance(config, dict):
            raise ValueError(f"config of {cls.__name__} must be a dict; got {config!r}")
        config = dict(config)
        written_by = config.pop(VERSION_KEY, None)
        if written_by is not None and _parse(written_by) > _parse(__version__):
            accepted = inspect.signature(cls.__init__).parameters
            unknown = sorted(k for k in config if k not in accepted)
            dropped = f"; ignoring its unknown arguments {unknown}" if unknown else ""
            warnings.warn(
                f"{cls.__name__} config was written by keras_initkit {written_by}, newer than "
                f"the installed {__version__}{dropped}. Upgrade keras_initkit to load it as "
                "it was saved.",
                stacklevel=2,
            )
            config = {k: v for k, v in config.items() if k in accepted}
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
