"""`Snake`: `x + sin(a x)^2 / a`, with a learnable frequency per channel."""

from __future__ import annotations

from typing import Any

import keras

from keras_initkit.layers._parametric import PerChannelActivation


@keras.saving.register_keras_serializable(package="keras_initkit")
class Snake(PerChannelActivation):
    """Snake: `x + sin(a x)^2 / a`, periodic with a linear trend, for periodic data.

    With `trainable=True` (default) each channel (last axis) learns its own frequency
    `a`, starting at `frequency` (tensorflow-addons' `Snake` had one scalar). Its gain
    depends on the frequency (0.8746 at a = 1); `calculate_gain(layer)` reads it.

    Args:
        frequency: positive float, the (initial) `a`. Defaults to `1.0`.
        trainable: whether `a` is a trainable weight, one per channel. Defaults to `True`.

    Example:
    >>> y = keras_initkit.layers.Snake()(np.array([[1.0]], "float32"))
    >>> round(float(keras.ops.convert_to_numpy(y)[0, 0]), 4)
    1.7081

    Reference:
    - [Ziyin, Hartwig & Ueda, 2020](https://arxiv.org/abs/2006.08195)
    """

    _PARAM = "frequency"
    _NONLINEARITY = "snake"

    def __init__(self, frequency: float = 1.0, trainable: bool = True, **kwargs: Any) -> None:
        super().__init__(frequency, trainable, positive=True, **kwargs)

    @property
    def frequency(self) -> float:
        """The initial (or fixed) frequency."""
        return self.value

    def call(self, inputs: Any) -> Any:
        a = keras.ops.cast(self.current(), inputs.dtype)
        # A trained frequency can approach 0, where sin(a x)^2 / a -> 0: keep it finite.
        safe = keras.ops.where(keras.ops.abs(a) < 1e-6, 1e-6, a)
        return inputs + keras.ops.square(keras.ops.sin(safe * inputs)) / safe

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "frequency": self.value}
