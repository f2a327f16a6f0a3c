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
        trainable: whether `a` is learned, one value per channel. Defaults to `True`.
        per_channel: whether `a` is a weight with one value per channel; defaults to
            `trainable`. Setting `layer.trainable = False` later freezes the learned
            frequencies and keeps them (they still save and load).

    Example:
    >>> y = keras_initkit.layers.Snake()(np.array([[1.0]], "float32"))
    >>> round(float(keras.ops.convert_to_numpy(y)[0, 0]), 4)
    1.7081

    Reference:
    - [Ziyin, Hartwig & Ueda, 2020](https://arxiv.org/abs/2006.08195)
    """

    _PARAM = "frequency"
    _NONLINEARITY = "snake"

    def __init__(
        self,
        frequency: float = 1.0,
        trainable: bool = True,
        per_channel: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(frequency, trainable, per_channel, positive=True, **kwargs)

    @property
    def frequency(self) -> float:
        """The initial (or fixed) frequency."""
        return self.value

    def call(self, inputs: Any) -> Any:
        ops = keras.ops
        a = ops.cast(self.current(), inputs.dtype)
        # sin(a x)^2 / a = sin(u) * x * sinc(u), u = a x: finite at a = 0, where a learned
        # frequency may pass, and differentiable there (d/da -> x^2). sinc uses its
        # series near 0; the unselected branch divides by 1, so no NaN gradients.
        u = a * inputs
        small = ops.abs(u) < 1e-3
        u_safe = ops.where(small, ops.ones_like(u), u)
        sinc = ops.where(small, 1.0 - ops.square(u) / 6.0, ops.sin(u_safe) / u_safe)
        return inputs + ops.sin(u) * inputs * sinc

