"""`SELU`: the scaled exponential linear unit as a layer."""

from __future__ import annotations

from typing import Any

import keras

from keras_initkit.layers._elementwise import ElementwiseActivation


@keras.saving.register_keras_serializable(package="keras_initkit")
class SELU(ElementwiseActivation):
    """SELU: `scale * elu(x, alpha)` with the constants that make it self-normalizing.

    Self-normalization holds for standardized inputs, LeCun-normal weights
    (`initializer_for(SELU())` returns `LecunNormal()`; PyTorch's gain 3/4 is not
    self-normalizing) and `keras.layers.AlphaDropout` instead of Dropout.

    Args:
        **kwargs: the base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:
    >>> y = keras_initkit.layers.SELU()(np.array([[-1.0, 1.0]]))
    >>> np.round(keras.ops.convert_to_numpy(y).astype("float64"), 4).tolist()
    [[-1.1113, 1.0507]]

    Reference:
    - [Klambauer et al., 2017](https://arxiv.org/abs/1706.02515)
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.built = True

    def call(self, inputs: Any) -> Any:
        return keras.activations.selu(inputs)

    def nonlinearity_spec(self) -> tuple[str, Any]:
        return "selu", None
