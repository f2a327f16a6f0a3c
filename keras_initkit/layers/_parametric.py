"""The shared base of activations with one per-channel parameter (Swish's beta, Snake's a)."""

from __future__ import annotations

from typing import Any

import keras

from keras_initkit._checks import FLOAT16_MAX, check_number
from keras_initkit.layers._elementwise import ElementwiseActivation


class PerChannelActivation(ElementwiseActivation):
    """A fixed scalar parameter, or a weight with one value per channel (last axis).

    Two choices are kept apart: `per_channel` (is the parameter a weight? fixed at
    construction, it decides the layer's variables) and Keras's `trainable` (is that
    weight updated now? users flip it to freeze a trained layer). `per_channel` defaults
    to the `trainable` given at construction, so `Swish(trainable=True)` learns its beta,
    and a frozen layer still saves, reloads and clones with its learned weight.
    """

    _PARAM = "beta"  # the constructor argument and the weight's name
    _NONLINEARITY = "silu"

    def __init__(
        self,
        value: float,
        trainable: bool,
        per_channel: bool | None,
        positive: bool,
        **kwargs: Any,
    ) -> None:
        # Bounded by float16's largest value, so `value * x` stays finite in any dtype.
        if positive:
            check_number(self._PARAM, value, low=0, high=FLOAT16_MAX, low_open=True)
        else:
            check_number(self._PARAM, value, low=-FLOAT16_MAX, high=FLOAT16_MAX)
        if not isinstance(trainable, bool):
            raise ValueError(f"trainable must be True or False; got {trainable!r}")
        if per_channel is None:
            per_channel = trainable
        if not isinstance(per_channel, bool):
            raise ValueError(f"per_channel must be None, True or False; got {per_channel!r}")
        super().__init__(trainable=trainable, **kwargs)
        self.value = float(value)
        self.per_channel = per_channel
        self.parameter = None
        if not per_channel:
            self.built = True

    def build(self, input_shape: Any) -> None:
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                f"a per-channel {type(self).__name__} needs a known last dimension (one "
                f"{self._PARAM} per channel); got input shape {input_shape}"
            )
        self.parameter = self.add_weight(
            name=self._PARAM,
            shape=(channels,),
            initializer=keras.initializers.Constant(self.value),
        )

    def current(self) -> Any:
        """The parameter to use in `call`: the per-channel weight, or the fixed value."""
        return self.value if self.parameter is None else self.parameter

    def nonlinearity_spec(self) -> tuple[str, Any]:
        # Initialization advice uses the initial value: what the network starts with.
        return self._NONLINEARITY, self.value

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), self._PARAM: self.value, "per_channel": self.per_channel}
