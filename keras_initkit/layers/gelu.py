"""`GELU`: the Gaussian error linear unit as a layer."""

from __future__ import annotations

from typing import Any

import keras

from keras_initkit.activations.functions import gelu_approximate
from keras_initkit.layers._elementwise import ElementwiseActivation


@keras.saving.register_keras_serializable(package="keras_initkit")
class GELU(ElementwiseActivation):
    """GELU: `x * Phi(x)`, Phi the standard normal CDF (or its tanh approximation).

    `approximate=False` by default, as `keras.activations.gelu` (the string `"gelu"`);
    note that `keras.ops.gelu` and tensorflow-addons' `GELU` default to the tanh
    approximation. The two differ by less than 1e-3 and have the same gain (1.5335).

    GELU's variance fixed point is unstable: at the fixed-point gain a plain stack keeps
    its scale for ~10-20 layers, deeper ones need normalization or residual connections.

    Args:
        approximate: whether to use the tanh approximation. Defaults to `False`.

    Example:
    >>> y = keras_initkit.layers.GELU()(np.array([[1.0]]))
    >>> round(float(keras.ops.convert_to_numpy(y)[0, 0]), 4)
    0.8413

    Reference:
    - [Hendrycks & Gimpel, 2016](https://arxiv.org/abs/1606.08415)
    """

    def __init__(self, approximate: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(approximate, bool):
            raise ValueError(f"approximate must be True or False; got {approximate!r}")
        self.approximate = approximate
        self.built = True

    def call(self, inputs: Any) -> Any:
        if self.approximate:
            return gelu_approximate(inputs)  # float16-safe: x^3 computed in float32
        return keras.activations.gelu(inputs, approximate=False)

    def nonlinearity_spec(self) -> tuple[str, Any]:
        return ("gelu_approximate" if self.approximate else "gelu"), None

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "approximate": self.approximate}
