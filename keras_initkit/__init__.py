"""keras_initkit: initializers, gains, layer-aware fans and activation layers for Keras 3.

Importing the package registers all its objects with Keras, so models that use them
save and load (`keras.saving.load_model(path, safe_mode=True)` after `import keras_initkit`).
"""

from keras_initkit import activations, callbacks, initializers, layers, model_init, stats
from keras_initkit.initializers import calculate_gain, compute_fans, initializer_for
from keras_initkit.model_init import (
    inspect,
    lsuv,
    pretrain,
    reinitialize,
    zero_init_residual,
)
from keras_initkit.version import __version__

__all__ = [
    "__version__",
    "calculate_gain",
    "compute_fans",
    "initializer_for",
    "activations",
    "callbacks",
    "initializers",
    "inspect",
    "layers",
    "lsuv",
    "model_init",
    "pretrain",
    "reinitialize",
    "stats",
    "zero_init_residual",
]
