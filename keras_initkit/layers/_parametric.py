"""The shared base of activations with one per-channel parameter (Swish's beta, Snake's a)."""

from __future__ import annotations

import math
from typing import Any

import keras

from keras_initkit.layers._elementwise import ElementwiseActivation


class PerChannelActivation(ElementwiseActivation):
    """A scalar parameter, or a trainable one per channel (last axis) when `trainable`."""

    _PARAM = "beta"  # the constructor argument and the weight's name

    def __init__(self, value: float, trainable: bool, positive: bool, **kwargs: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{self._PARAM} must be a finite number; got {value!r}")
        if not math.isfinite(value) or (positive and value <= 0):
            need = "a positive number" if positive else "a finite number"
            raise ValueError(f"{self._PARAM} must be {need}; got {value!r}")
        if not isinstance(trainable, bool):
            raise ValueError(f"trainable must be True or False; got {trainable!r}")
        super().__init__(trainable=trainable, **kwargs)
        self.value = float(value)
        self.parameter = None
        if not trainable:
            self.built = True

    def build(self, input_shape: Any) -> None:
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                f"a trainable {type(self).__name__} needs a known last dimension (one "
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

    _NONLINEARITY = "silu"
