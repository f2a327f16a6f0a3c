"""`lsuv`: layer-sequential unit-variance initialization (Mishkin & Matas, 2016)."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from keras_initkit import initializers as ki
from keras_initkit._capture import intercept_calls
from keras_initkit._graph import (
    bias_weights,
    kernel_weights,
    layer_contexts,
    own_activation,
)
from keras_initkit.model_init import _validate
from keras_initkit.model_init.inspection import check_batch
from keras_initkit.model_init.report import Report

COLUMNS = ["layer", "class", "iterations", "std before", "std after", "status"]


_RECURRENT = (keras.layers.RNN, keras.layers.Bidirectional)


def _scaled_kernel(layer: Any) -> Any:
    """The kernel whose scale sets the layer's output scale (linearly)."""
    if isinstance(layer, keras.layers.MultiHeadAttention):
        return layer.output_dense.kernel
    kernels = kernel_weights(layer)
    names = [v.path.split("/")[-1] for _, v, _ in kernels]
    for preferred in ("pointwise_kernel", "kernel"):
        if preferred in names:
            return kernels[names.index(preferred)][1]
    return kernels[0][1]


def lsuv(
    model: keras.Model,
    x: Any,
    *,
    target_std: float = 1.0,
    tol: float = 0.1,
    max_iter: int = 10,
    orthogonal: bool = True,
    seed: int | None = None,
) -> Report:
    """Rescales each weighted layer until its output std on `x` is `target_std`.

    Mishkin & Matas' LSUV: (1) give every kernel an orthogonal initialization and zero
    the biases (`orthogonal=True`); (2) in model order, for each weighted layer run the
    model on `x` (inference mode), read the std of that layer's output and divide its
    kernel by `std / target_std`, until `|std - target_std| <= tol` or `max_iter` tries.
    The std is that of the layer's linear output: for a layer with a fused
    `activation=`, measured with the activation switched off, as the paper measures a
    convolution's output before its ReLU (a tanh or softmax output could never reach
    std 1). Works on any backend and any model kind (it reads layer outputs by wrapping
    their `call` during the pass). If anything fails, every weight is put back.

    Args:
        model: a built Keras model.
        x: a batch the model accepts (a few hundred samples).
        target_std: the output std to reach. Defaults to `1.0`.
        tol: the tolerance on the std. Defaults to `0.1`.
        max_iter: at most this many rescalings per layer. Defaults to `10`.
        orthogonal: whether to start from orthogonal kernels. Defaults to `True`.
        seed: int seed for the orthogonal pre-initialization, or `None`.

    Returns:
        A `Report` with the iterations and the std before and after, per layer.

    Example:
    >>> model = keras.Sequential([keras.Input((16,)),
    ...                           keras.layers.Dense(32, activation="tanh")])
    >>> x = np.random.default_rng(0).standard_normal((256, 16)).astype("float32")
    >>> report = keras_initkit.lsuv(model, x, seed=0)
    >>> row = report[0]
    >>> abs(row["std after"] - 1.0) <= 0.1
    True

    Reference:
    - [Mishkin & Matas, 2016](https://arxiv.org/abs/1511.06422)
    """
    _validate.lsuv_arguments(model, x, target_std, tol, max_iter, orthogonal, seed)
    if isinstance(target_std, bool) or not isinstance(target_std, (int, float)) or not (
        math.isfinite(target_std) and target_std > 0
    ):
        raise ValueError(f"target_std must be a positive number; got {target_std!r}")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol > 0:
        raise ValueError(f"tol must be a positive number; got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be an int >= 1; got {max_iter!r}")
    check_batch(x)
    for leaf in keras.tree.flatten(x):
        array = np.asarray(keras.ops.convert_to_numpy(leaf))
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            raise ValueError("x must be finite; it contains NaN or Inf")
    try:
        model(x, training=False)
    except Exception as error:  # noqa: BLE001 - any failure means x does not fit
        raise ValueError(f"x does not fit the model {model.name!r}: {error}") from error

    saved = [np.array(keras.ops.convert_to_numpy(v.value)) for v in model.weights]
    try:
        return _lsuv(model, x, target_std, tol, max_iter, orthogonal, seed)
    except BaseException:
        for variable, value in zip(model.weights, saved, strict=True):
            variable.assign(value)
        raise


def _is_table(layer: Any) -> bool:
    """An embedding lookup: its output is rows of its table, not a projection to rescale."""
    kernels = kernel_weights(layer)
    return bool(kernels) and all(a == "embeddings_initializer" for _, _, a in kernels)


def _std(values: Any) -> float:
    return float(np.asarray(keras.ops.convert_to_numpy(values), np.float64).std())


def _first(outputs: Any) -> Any:
    flat = keras.tree.flatten(outputs)
    return flat[0] if flat else None


def _input_kernels(layer: Any) -> list[Any]:
    """An RNN's (or Bidirectional's) input kernels: `x_t @ kernel` is its pre-activation."""
    return [v for _, v, a in kernel_weights(layer) if a == "kernel_initializer"]


class _Pass:
    """One forward pass that rescales each weighted layer when the pass reaches it.

    The layers before a layer are final when it runs, so this is LSUV's layer-by-layer
    loop (Mishkin & Matas, Algorithm 1) with one forward pass in all, not one per layer:
    each layer's own call is repeated on its (final) input until its std is right.
    """

    def __init__(self, target_std: float, tol: float, max_iter: int) -> None:
        self.target_std, self.tol, self.max_iter = target_std, tol, max_iter
        self.results: dict[int, dict[str, Any]] = {}

    def __call__(self, layer: Any, call: Any, args: Any, kwargs: Any) -> Any:
        if id(layer) in self.results:  # a shared layer: rescaled at its first call
            return call(*args, **kwargs)
        if _is_table(layer):
            self.results[id(layer)] = {"status": "skipped: an embedding table (kept)"}
            return call(*args, **kwargs)
        if isinstance(layer, _RECURRENT):
            return self._recurrent(layer, call, args, kwargs)
        kernel = _scaled_kernel(layer)
        activation = own_activation(layer)
        before, std, iterations, status, outputs = None, math.nan, 0, "ok", None
        for iterations in range(self.max_iter + 1):  # noqa: B007 - read after the loop
            if activation is not None:  # the linear output, as the paper measures it
                layer.activation = keras.activations.linear
            try:
                outputs = call(*args, **kwargs)
            finally:
                if activation is not None:
                    layer.activation = activation
            std = _std(_first(outputs))
            before = std if before is None else before
            if not math.isfinite(std) or std == 0.0:
                status = "output is constant: not rescaled" if std == 0 else "non-finite"
                break
            if abs(std - self.target_std) <= self.tol or iterations == self.max_iter:
                if abs(std - self.target_std) > self.tol:
                    status = f"not within tol after {self.max_iter} iterations"
                break
            kernel.assign(kernel.value * (self.target_std / std))
        self.results[id(layer)] = {
            "iterations": iterations, "std before": before, "std after": std, "status": status
        }
        if activation is not None or outputs is None:
            outputs = call(*args, **kwargs)
        return outputs

    def _recurrent(self, layer: Any, call: Any, args: Any, kwargs: Any) -> Any:
        """Scales the input kernel so that `x_t @ kernel` has the target std."""
        sequences = np.asarray(keras.ops.convert_to_numpy(_first(args)), np.float64)
        kernels = _input_kernels(layer)
        stds = []
        for kernel in kernels:
            w = np.asarray(keras.ops.convert_to_numpy(kernel.value), np.float64)
            std = float((sequences.reshape(-1, sequences.shape[-1]) @ w).std())
            stds.append(std)
            if math.isfinite(std) and std > 0:
                kernel.assign(kernel.value * (self.target_std / std))
        after = [
            float((sequences.reshape(-1, sequences.shape[-1])
                   @ np.asarray(keras.ops.convert_to_numpy(k.value), np.float64)).std())
            for k in kernels
        ]
        self.results[id(layer)] = {
            "iterations": 1 if any(s > 0 for s in stds) else 0,
            "std before": float(np.mean(stds)) if stds else math.nan,
            "std after": float(np.mean(after)) if after else math.nan,
            "status": "ok: input projection x @ kernel measured; recurrent kernel kept",
        }
        return call(*args, **kwargs)


def _lsuv(model, x, target_std, tol, max_iter, orthogonal, seed):  # noqa: ANN001, ANN202
    weighted = [c for c in layer_contexts(model) if kernel_weights(c.layer)]
    if not weighted:
        raise ValueError(f"model {model.name!r} has no weighted layer to rescale")
    if orthogonal:
        for index, context in enumerate(weighted):
            if _is_table(context.layer):
                continue
            for _, variable, _ in kernel_weights(context.layer):
                init = ki.Orthogonal(seed=None if seed is None else seed + index)
                shape = tuple(int(d) for d in variable.shape)
                if len(shape) >= 2:
                    variable.assign(init(shape, dtype=variable.dtype))
            for _, variable in bias_weights(context.layer):
                variable.assign(keras.ops.zeros_like(variable.value))
    rescale = _Pass(target_std, tol, max_iter)
    with intercept_calls([c.layer for c in weighted], rescale):
        model(x, training=False)
    rows = []
    for context in weighted:
        layer = context.layer
        result = rescale.results.get(id(layer), {"status": "not called on x: kept"})
        rows.append(
            {
                "layer": context.path,
                "class": type(layer).__name__,
                "iterations": result.get("iterations"),
                "std before": result.get("std before"),
                "std after": result.get("std after"),
                "status": result["status"],
            }
        )
    return Report(f"lsuv({model.name})", COLUMNS, rows)
