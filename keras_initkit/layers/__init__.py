"""Activation layers Keras lacks: `keras_initkit.layers`.

Each is registered (`"keras_initkit>ClassName"`), serializable, keeps masks, works under
mixed precision and on every backend, and tells `calculate_gain` / `initializer_for`
its parameters (Maxout's pieces, Swish's beta, Snake's frequency).
"""

from keras_initkit.layers.gelu import GELU
from keras_initkit.layers.maxout import Maxout
from keras_initkit.layers.maxout_dense import MaxoutDense
from keras_initkit.layers.mish import Mish
from keras_initkit.layers.selu import SELU
from keras_initkit.layers.snake import Snake
from keras_initkit.layers.swish import Swish

__all__ = ["GELU", "Maxout", "MaxoutDense", "Mish", "SELU", "Snake", "Swish"]
