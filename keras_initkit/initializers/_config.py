"""Versioned configs: every keras_initkit config starts with the version that wrote it.

The key is first on purpose. Loading a model without `import keras_initkit`, Keras falls
back to its own class of the same name (`HeNormal`), whose constructor rejects the first
unknown key: the error then reads "got an unexpected keyword argument
'keras_initkit_version'", which says what to import. The version also lets a later
release migrate old configs.
"""

from __future__ import annotations

from typing import Any

from keras_initkit.version import __version__

VERSION_KEY = "keras_initkit_version"


def versioned(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with the version key first."""
    return {VERSION_KEY: __version__, **config}


class VersionedConfig:
    """Mixin: `from_config` accepts (and drops) the version key that `get_config` adds."""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Any:
        config = {k: v for k, v in config.items() if k != VERSION_KEY}
        return cls(**config)
