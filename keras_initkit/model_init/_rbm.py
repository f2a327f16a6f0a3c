"""A restricted Boltzmann machine trained by contrastive divergence (CD-k), as a Keras layer.

The layer's output is, per sample, the free-energy difference `F(v) - F(v_k)` between the
data `v` and the end `v_k` of a k-step Gibbs chain started at `v` (held constant). Its
gradient is exactly the CD-k update (Hinton, 2002), so any Keras optimizer minimizing its
mean trains the RBM, compiled, on every backend: for the weights,
`-dF/dW = v^T sigmoid(v W + c)`, the positive minus the negative statistics.

Hidden units are Bernoulli. Visible units are Bernoulli (data in [0, 1]) or Gaussian with
unit variance (data divided by its per-feature std beforehand; reconstructions are the
noise-free means, as Hinton's practical guide advises).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops


class RBM(keras.layers.Layer):
    """`W` (visible x hidden), hidden bias `c`, visible bias `b`; call gives `F(v) - F(v_k)`."""

    def __init__(
        self,
        kernel: np.ndarray,
        hidden_bias: np.ndarray,
        visible_bias: np.ndarray,
        *,
        gaussian: bool,
        k: int,
        train_hidden_bias: bool,
        seed: int | None,
    ) -> None:
        super().__init__(dtype="float32")
        self.gaussian, self.k = gaussian, k
        self.kernel = self._weight("kernel", kernel, True)
        self.hidden_bias = self._weight("hidden_bias", hidden_bias, train_hidden_bias)
        self.visible_bias = self._weight("visible_bias", visible_bias, True)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _weight(self, name: str, value: np.ndarray, trainable: bool) -> Any:
        variable = self.add_weight(
            shape=value.shape, initializer="zeros", trainable=trainable, name=name
        )
        variable.assign(value.astype("float32"))
        return variable

    def hidden_probabilities(self, visible: Any) -> Any:
        return ops.sigmoid(ops.matmul(visible, self.kernel) + self.hidden_bias)

    def visible_means(self, hidden: Any) -> Any:
        linear = ops.matmul(hidden, ops.transpose(self.kernel)) + self.visible_bias
        return linear if self.gaussian else ops.sigmoid(linear)

    def free_energy(self, visible: Any) -> Any:
        hidden = ops.sum(ops.softplus(ops.matmul(visible, self.kernel) + self.hidden_bias), -1)
        if self.gaussian:
            return 0.5 * ops.sum(ops.square(visible - self.visible_bias), -1) - hidden
        return -ops.sum(visible * self.visible_bias, -1) - hidden

    def call(self, visible: Any) -> Any:
        chain = visible
        probabilities = self.hidden_probabilities(visible)
        for _ in range(self.k):
            noise = keras.random.uniform(ops.shape(probabilities), seed=self.seed_generator)
            hidden = ops.cast(noise < probabilities, probabilities.dtype)
            chain = self.visible_means(hidden)
            probabilities = self.hidden_probabilities(chain)
        chain = ops.stop_gradient(chain)
        return ops.expand_dims(self.free_energy(visible) - self.free_energy(chain), -1)

    def reconstruct(self, visible: Any) -> Any:
        """The mean-field reconstruction `E[v | p(h | v)]`."""
        return self.visible_means(self.hidden_probabilities(visible))
