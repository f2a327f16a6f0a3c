"""The shared base of the elementwise activation layers."""

from __future__ import annotations

from typing import Any

import keras


class ElementwiseActivation(keras.layers.Layer):
    """An activation that keeps the shape: masks pass through, output shape = input shape."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def nonlinearity_spec(self) -> tuple[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError
