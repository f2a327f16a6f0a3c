"""A denoising autoencoder (Vincent et al., 2008) around one layer's kernel, as a Keras layer.

The encoder is the layer itself: `h = activation(v W + c)`, with the activation the layer's
output really feeds, whatever it is. A fraction `noise` of each input is set to zero
(masking noise) before encoding; the decoder `W^T` (tied) or its own matrix (untied, starting
at `W^T`) reconstructs the clean input: through a sigmoid with cross-entropy for data in
[0, 1], linearly with squared error otherwise (data divided by its per-feature std). The
layer's output is the per-sample reconstruction loss; any Keras optimizer minimizing its
mean trains it, compiled, on every backend (the gradients are Keras's own).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops


class DenoisingAutoencoder(keras.layers.Layer):
    """Encoder `W`, `c` (the layer's), decoder `W^T` or `W'`, visible bias `b`."""

    def __init__(
        self,
        kernel: np.ndarray,
        hidden_bias: np.ndarray,
        visible_bias: np.ndarray,
        *,
        activation: Callable[[Any], Any],
        bernoulli: bool,
        noise: float,
        tied: bool,
        train_hidden_bias: bool,
        seed: int | None,
    ) -> None:
        super().__init__(dtype="float32")
        # a closure, not an attribute: an activation layer with weights (PReLU) belongs to
        # the model and must not become a weight of this autoencoder
        self._activation = lambda tensor: activation(tensor)
        self.bernoulli, self.noise, self.tied = bernoulli, noise, tied
        self.kernel = self._weight("kernel", kernel, True)
        self.hidden_bias = self._weight("hidden_bias", hidden_bias, train_hidden_bias)
        self.visible_bias = self._weight("visible_bias", visible_bias, True)
        self.decoder = None if tied else self._weight("decoder", kernel.T.copy(), True)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _weight(self, name: str, value: np.ndarray, trainable: bool) -> Any:
        variable = self.add_weight(
            shape=value.shape, initializer="zeros", trainable=trainable, name=name
        )
        variable.assign(value.astype("float32"))
        return variable

    def _logits(self, visible: Any) -> Any:
        hidden = self._activation(ops.matmul(visible, self.kernel) + self.hidden_bias)
        decoder = ops.transpose(self.kernel) if self.decoder is None else self.decoder
        return ops.matmul(hidden, decoder) + self.visible_bias

    def call(self, visible: Any) -> Any:
        corrupted = visible
        if self.noise > 0:
            keep = keras.random.uniform(ops.shape(visible), seed=self.seed_generator)
            corrupted = visible * ops.cast(keep >= self.noise, visible.dtype)
        logits = self._logits(corrupted)
        if self.bernoulli:  # cross-entropy of sigmoid(logits), computed stably
            loss = ops.softplus(logits) - visible * logits
        else:
            loss = 0.5 * ops.square(logits - visible)
        return ops.sum(loss, axis=-1, keepdims=True)

    def reconstruct(self, visible: Any) -> Any:
        """The reconstruction of the clean input."""
        logits = self._logits(visible)
        return ops.sigmoid(logits) if self.bernoulli else logits
