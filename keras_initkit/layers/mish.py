"""`Mish`: `x * tanh(softplus(x))` as a layer."""

from __future__ import annotations

from typing import Any

import keras

from keras_initkit.layers._elementwise import ElementwiseActivation


@keras.saving.register_keras_serializable(package="keras_initkit")
class Mish(ElementwiseActivation):
    """Mish: `x * tanh(softplus(x))`, a smooth, non-monotonic ReLU-like activation.

    Its fixed-point gain is 1.4868; like GELU and Swish its variance fixed point is
    unstable in deep plain stacks.

    Args:
        **kwargs: the base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:
    >>> y = keras_initkit.layers.Mish()(np.array([[1.0]]))
    >>> round(float(keras.ops.convert_to_numpy(y)[0, 0]), 4)
    0.8651

    Reference:
    - [Misra, 2019](https://arxiv.org/abs/1908.08681)
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.built = True

    def call(self, inputs: Any) -> Any:
        return keras.activations.mish(inputs)

    def nonlinearity_spec(self) -> tuple[str, Any]:
        return "mish", None
