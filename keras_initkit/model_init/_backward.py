"""One forward and backward pass without an optimizer step: the weight gradients `inspect`
shows, through the package's one autodiff switch (`keras_initkit._autodiff`).

Nothing is assigned: no weight, no optimizer variable, no non-trainable state (the pass
runs in inference mode); metric variables a compiled loss touches are restored.
"""

from __future__ import annotations

import inspect as pyinspect
from collections.abc import Callable
from typing import Any

import keras
from keras import ops

from keras_initkit._autodiff import loss_and_gradients

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

    Returns NumPy arrays (zeros where a variable does not reach the loss), in the order of
    `model.trainable_variables`. The model's variables keep their values: the pass runs in
    inference mode, and metric variables a compiled loss updates are restored.
    """
    objective, _ = loss_function(model, loss)
    metrics = [(v, ops.convert_to_numpy(v)) for v in model.metrics_variables]
    try:
        _, grads, _ = loss_and_gradients(
            lambda probes: objective(x, y, model(x, training=False)),
            model.trainable_variables,
            state=model.non_trainable_variables + model.metrics_variables,
        )
    finally:
        for variable, value in metrics:
            variable.assign(value)
    return grads


def _accepts(method: Any, name: str) -> bool:
    try:
        parameters = pyinspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in parameters)
