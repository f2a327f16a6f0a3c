"""`Snake`: `x + sin(a x)^2 / a`, with a learnable frequency per channel."""

from __future__ import annotations

from typing import Any

import keras

from keras_initkit.activations.functions import snake_core
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
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        compute = "float32" if dtype in ("float16", "bfloat16") else dtype
        # In float16 the derivative of sinc (1 / u^2) overflows for |u| ~ 1e-3: compute
        # in float32 and cast back (mixed_float16 models would otherwise skip every step).
        x = keras.ops.cast(inputs, compute)
        a = keras.ops.cast(self.current(), compute)
        return keras.ops.cast(snake_core(x, a), dtype)
