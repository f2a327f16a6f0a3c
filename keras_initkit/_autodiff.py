"""One loss, differentiated by the backend's own autodiff: the package's one backend switch
for gradients outside `fit` (`inspect(model, x, y)` and `keras-initkit study --gradients`).

Keras 3 has no backend-agnostic gradient in `keras.ops` (each trainer's `train_step` takes
its gradients its own way), and `GradientStats` reads the weight gradients a trainer hands
to its optimizer, not those of a pass without a step. So this module does as the trainers
do, one branch per backend, each imported only when used: `tf.GradientTape`, `jax.grad`
(the variables' values passed into a `keras.StatelessScope`, never assigned, the losses
layers add collected as JAX's `fit` does) or `torch.autograd.grad` (the parameters' `.grad`
left alone). The back-propagated gradient of an output is read with a zero "probe" added to
it: the derivative with respect to the probe is the derivative with respect to the output,
on every backend alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np


def loss_and_gradients(
    loss_of: Callable[[list[Any]], Any],
    variables: Sequence[keras.Variable],
    probe_shapes: Sequence[tuple[int, ...]] = (),
    state: Sequence[keras.Variable] = (),
) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
    """`loss_of(probes)` and its gradients with respect to `variables` and the probes.

    Args:
        loss_of: computes a scalar loss with Keras layers that read `variables`, adding
            `probes[i]` (zeros of `probe_shapes[i]`) where the gradient of an output is
            wanted.
        variables: the Keras variables to differentiate with respect to.
        probe_shapes: the shapes of the zero probes.
        state: other variables `loss_of` reads (non-trainable and metric variables); on
            JAX they are passed into the stateless scope with their current values.

    Returns:
        The loss, the gradients of the variables and those of the probes, as float64 NumPy.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        probes = [tf.zeros(shape) for shape in probe_shapes]
        with tf.GradientTape() as tape:
            tape.watch(probes)
            loss = loss_of(probes)
        grads = tape.gradient(loss, [v.value for v in variables] + probes)
    elif backend == "jax":
        import jax
        import jax.numpy as jnp

        state_mapping = [(v, v.value) for v in state]

        def loss_of_values(values: list[Any], probes: list[Any]) -> Any:
            mapping = list(zip(variables, values, strict=True)) + state_mapping
            with keras.StatelessScope(state_mapping=mapping, collect_losses=True):
                return loss_of(probes)

        probes = [jnp.zeros(shape) for shape in probe_shapes]
        loss, (variable_grads, probe_grads) = jax.value_and_grad(
            loss_of_values, argnums=(0, 1))([v.value for v in variables], probes)
        grads = [*variable_grads, *probe_grads]
    elif backend == "torch":
        import torch

        with torch.enable_grad():
            probes = [torch.zeros(shape, requires_grad=True) for shape in probe_shapes]
            loss = loss_of(probes)
            grads = list(torch.autograd.grad(loss, [v.value for v in variables] + probes,
                                             allow_unused=True))
    else:
        raise NotImplementedError(
            f"gradients outside fit run on tensorflow, jax or torch; Keras runs on "
            f"{backend!r}")
    shapes = [tuple(v.shape) for v in variables] + [tuple(s) for s in probe_shapes]
    arrays = [np.zeros(shape) if g is None
              else np.asarray(keras.ops.convert_to_numpy(g), dtype="float64")
              for g, shape in zip(grads, shapes, strict=True)]
    loss_value = float(keras.ops.convert_to_numpy(loss))
    return loss_value, arrays[:len(variables)], arrays[len(variables):]
