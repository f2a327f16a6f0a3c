"""One forward and backward pass without an optimizer step: the weight gradients `inspect`
shows.

Keras 3 has no backend-independent "gradient of this loss" call (each trainer's
`train_step` takes its gradients its own way), so this module does as the trainers do, one
branch per backend, each imported only when used: `tf.GradientTape` (TensorFlow),
`jax.grad` of the model called in a `keras.StatelessScope` (JAX: the variables are passed
in, never assigned),
`torch.autograd.grad` (torch: the parameters' `.grad` is left alone). Nothing is assigned:
no weight, no optimizer variable, no non-trainable state (the pass runs in inference
mode); metric variables a compiled loss touches are restored.
"""

from __future__ import annotations

import inspect as pyinspect
from collections.abc import Callable
from typing import Any

import keras
from keras import ops

Objective = Callable[..., Any]


def loss_function(model: keras.Model, loss: Any) -> tuple[Objective, str]:
    """The scalar loss `f(x, y, y_pred)` of the backward pass, and words for it.

    `loss` given: its mean over the batch, summed over the model's outputs (no
    regularization terms). Otherwise the compiled loss, as `fit` computes it
    (`model.compute_loss`, regularization included).
    """
    if loss is not None:
        function = keras.losses.get(loss)

        def objective(x: Any, y: Any, y_pred: Any) -> Any:
            del x
            targets, outputs = keras.tree.flatten(y), keras.tree.flatten(y_pred)
            return sum(ops.mean(function(t, ops.cast(p, "float32")))
                       for t, p in zip(targets, outputs, strict=True))

        return objective, f"loss={getattr(loss, '__name__', loss)!r}"

    has_training = _accepts(model.compute_loss, "training")

    def compiled(x: Any, y: Any, y_pred: Any) -> Any:
        extra = {"training": False} if has_training else {}
        return model.compute_loss(x, y, y_pred, None, **extra)

    return compiled, "the compiled loss"


def gradients(model: keras.Model, x: Any, y: Any, loss: Any) -> list[Any]:
    """The gradient of the loss on `(x, y)` for each of `model.trainable_variables`.

    Returns NumPy arrays (`None` where a variable does not reach the loss), in the order of
    `model.trainable_variables`. The model's variables keep their values.
    """
    objective, _ = loss_function(model, loss)
    backend = keras.backend.backend()
    if backend == "jax":
        return _jax(model, x, y, objective)
    metrics = [(v, ops.convert_to_numpy(v)) for v in model.metrics_variables]
    try:
        if backend == "tensorflow":
            grads = _tensorflow(model, x, y, objective)
        elif backend == "torch":
            grads = _torch(model, x, y, objective)
        else:
            raise NotImplementedError(
                f"inspect(model, x, y): gradients on the {backend!r} backend are not "
                "supported; use tensorflow, jax or torch")
    finally:
        for variable, value in metrics:  # a compiled loss may update loss trackers
            variable.assign(value)
    return [None if g is None else ops.convert_to_numpy(g) for g in grads]


def _accepts(method: Any, name: str) -> bool:
    try:
        parameters = pyinspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in parameters)


def _tensorflow(model: keras.Model, x: Any, y: Any, objective: Objective) -> list[Any]:
    import tensorflow as tf

    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        y_pred = model(x, training=False)
        value = objective(x, y, y_pred)
    return tape.gradient(value, variables)


def _torch(model: keras.Model, x: Any, y: Any, objective: Objective) -> list[Any]:
    import torch

    parameters = [v.value for v in model.trainable_variables]
    with torch.enable_grad():
        y_pred = model(x, training=False)
        value = objective(x, y, y_pred)
        return list(torch.autograd.grad(value, parameters, allow_unused=True))


def _jax(model: keras.Model, x: Any, y: Any, objective: Objective) -> list[Any]:
    import jax

    state = model.non_trainable_variables + model.metrics_variables
    state_values = [v.value for v in state]

    def value(trainable_values: list[Any]) -> Any:
        # The forward pass and the loss in one stateless scope that collects the losses
        # layers add (activity regularization), so `model.losses` inside `compute_loss`
        # holds them and the regularizers of the passed-in values, as in JAX's `fit`.
        mapping = list(zip(model.trainable_variables, trainable_values, strict=True))
        mapping += list(zip(state, state_values, strict=True))
        with keras.StatelessScope(state_mapping=mapping, collect_losses=True):
            return objective(x, y, model(x, training=False))

    grads = jax.grad(value)([v.value for v in model.trainable_variables])
    return [ops.convert_to_numpy(g) for g in grads]
