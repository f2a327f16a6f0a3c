"""`Swish`: `x * sigmoid(beta * x)`, with an optional learnable beta per channel."""

from __future__ import annotations

from typing import Any

import keras

from keras_initkit.layers._parametric import PerChannelActivation


@keras.saving.register_keras_serializable(package="keras_initkit")
class Swish(PerChannelActivation):
    """Swish: `x * sigmoid(beta * x)`; `beta = 1` is SiLU (`keras.activations.silu`).

    With `trainable=True` each channel (last axis) learns its own beta, starting at
    `beta`, as Ramachandran et al. propose; with `trainable=False` (default) beta is a
    constant and the layer has no weights. Its gain depends on beta (1.6765 at beta = 1),
    and `calculate_gain(layer)` reads it.

    Args:
        beta: the (initial) beta, a finite float. Defaults to `1.0`.
        trainable: whether beta is learned, one value per channel. Defaults to `False`.
        per_channel: whether beta is a weight with one value per channel; defaults to
            `trainable`. Setting `layer.trainable = False` later freezes the learned
            betas and keeps them (they still save and load).

    Example:
    >>> y = keras_initkit.layers.Swish()(np.array([[1.0]]))
    >>> round(float(keras.ops.convert_to_numpy(y)[0, 0]), 4)
    0.7311

    Reference:
    - [Ramachandran, Zoph & Le, 2017](https://arxiv.org/abs/1710.05941)
    """

    _PARAM = "beta"
    _NONLINEARITY = "silu"

    def __init__(
        self,
        beta: float = 1.0,
        trainable: bool = False,
        per_channel: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(beta, trainable, per_channel, positive=False, **kwargs)

    @property
    def beta(self) -> float:
        """The initial (or fixed) beta."""
        return self.value

    def call(self, inputs: Any) -> Any:
        beta = keras.ops.cast(self.current(), inputs.dtype)
        return inputs * keras.ops.sigmoid(beta * inputs)

