"""Argument checks of the model operations, run before any weight changes.

Each public function (`reinitialize`, `lsuv`, `inspect`, `zero_init_residual`) calls its
checker first: every argument is validated, the whole `scheme` included, so an error
leaves the model untouched and names the argument, what is allowed and what was given.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_initkit import initializers as ki
from keras_initkit._checks import check_bool, check_int, check_number, check_seed
from keras_initkit._graph import layer_contexts

# |x| above this makes the float32 squares behind an activation std overflow (1e19^2 =
# 1e38), so LSUV would read inf or 0 and rescale the kernels to garbage.
MAX_ABS_INPUT = 1e15
# A target std this large makes the rescaled float32 kernels non-finite.
MAX_TARGET_STD = 1e6


def check_model(model: Any, need_weights: bool = True) -> keras.Model:
    """`model` if it is a `keras.Model` (built, with weights, when `need_weights`)."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model; got {type(model).__name__} {model!r:.60}")
    if need_weights:
        if not model.built:
            raise ValueError(
                f"model {model.name!r} is not built (it has no weights yet); call it on data "
                "or build it with an input shape first"
            )
        if not model.weights:
            raise ValueError(
                f"model {model.name!r} has no weighted layer (it has no weights at all), so "
                "there is nothing to initialize"
            )
    return model


def check_x(x: Any, limit: float | None = None, finite: bool = True) -> None:
    """`x` must be a non-empty numeric batch (a structure of arrays), finite, |x| <= limit."""
    if x is None or isinstance(x, (str, bytes)):
        raise ValueError(f"x must be a batch of arrays; got {x!r:.60}")
    for leaf in keras.tree.flatten(x):
        if isinstance(leaf, (str, bytes)) or leaf is None:
            raise ValueError(f"x must be a batch of arrays; got a leaf {leaf!r:.60}")
        try:
            array = np.asarray(keras.ops.convert_to_numpy(leaf))
        except Exception:  # noqa: BLE001 - whatever it is, it is not an array
            raise ValueError(f"x must be a batch of arrays; got {leaf!r:.60}") from None
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise ValueError(f"x must be numeric; got an array of dtype {array.dtype}")
        if array.size == 0 or (array.ndim and array.shape[0] == 0):
            raise ValueError(f"x must be a non-empty batch; got shape {array.shape}")
        if not finite:
            continue  # inspect reports NaN/Inf: they are data there
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            raise ValueError("x must be finite; it contains NaN or Inf")
        if limit is not None and np.issubdtype(array.dtype, np.number):
            largest = float(np.max(np.abs(array.astype("float64"))))
            if largest > limit:
                raise ValueError(
                    f"x must have |x| <= {limit:g} (activation statistics are computed in "
                    f"float32); got max |x| = {largest:.3g}. Standardize the batch first."
                )


def lsuv_arguments(  # noqa: PLR0913 - lsuv's own arguments
    model: Any, x: Any, target_std: Any, tol: Any, max_iter: Any, orthogonal: Any, seed: Any
) -> None:
    check_model(model)
    check_number("target_std", target_std, low=0, high=MAX_TARGET_STD, low_open=True)
    check_number("tol", tol, low=0, low_open=True)
    check_int("max_iter", max_iter, 1, 10_000)
    check_bool("orthogonal", orthogonal)
    check_seed("seed", seed)
    check_x(x, MAX_ABS_INPUT)


def inspect_arguments(model: Any, x: Any, saturation: Any) -> None:
    check_model(model, need_weights=False)
    check_number("saturation", saturation, low=0, high=1, low_open=True)
    check_x(x, finite=False)


def inspect_targets(model: keras.Model, x: Any, y: Any, loss: Any) -> None:
    """`y` and `loss` of `inspect`'s backward pass (both optional; `loss` needs `y`)."""
    if y is None:
        if loss is not None:
            raise ValueError(
                f"loss: given ({loss!r:.60}) without y; the backward pass needs targets: "
                "inspect(model, x, y, loss=...)")
        return
    if isinstance(y, (str, bytes)):
        raise ValueError(f"y must be a batch of arrays (the targets of x); got {y!r:.60}")
    rows = {np.shape(keras.ops.convert_to_numpy(leaf))[:1] for leaf in keras.tree.flatten(x)}
    for leaf in keras.tree.flatten(y):
        try:
            array = np.asarray(keras.ops.convert_to_numpy(leaf))
        except Exception:  # noqa: BLE001 - whatever it is, it is not an array
            raise ValueError(f"y must be a batch of arrays; got {leaf!r:.60}") from None
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise ValueError(f"y must be numeric; got an array of dtype {array.dtype}")
        if array.ndim == 0 or array.shape[:1] not in rows:
            raise ValueError(
                f"y must have one target per example of x ({sorted(r[0] for r in rows if r)} "
                f"rows); got shape {array.shape}")
    if loss is not None:
        try:
            keras.losses.get(loss)
        except (ValueError, TypeError):
            raise ValueError(
                "loss must be a Keras loss name ('mse', 'sparse_categorical_crossentropy', "
                f"...), a keras.losses.Loss or a function (y_true, y_pred); got {loss!r:.60}"
            ) from None
        return
    overridden = type(model).compute_loss is not keras.Model.compute_loss
    compiled_loss = getattr(model, "loss", None) is not None or overridden
    if not (getattr(model, "compiled", False) and compiled_loss):
        raise ValueError(
            "loss: y was given, so inspect takes a backward pass, which needs a loss; "
            f"model {model.name!r} is not compiled with one. Pass loss= (a Keras loss name, "
            "Loss or function) or compile the model with loss=...")


def zero_init_residual_arguments(model: Any, fixup: Any) -> None:
    check_model(model)
    check_bool("fixup", fixup)


def reinitialize_arguments(model: Any, scheme: Any, layers: Any, bias: Any, seed: Any) -> None:
    """Validates all of `reinitialize`'s arguments, the whole scheme included."""
    from keras_initkit.model_init.reinitialize import _matches

    check_model(model)
    check_seed("seed", seed)
    if bias is not None:
        ki.get_as("bias", bias)
    contexts = None

    def contexts_() -> list[Any]:
        nonlocal contexts
        if contexts is None:
            contexts = list(layer_contexts(model))
        return contexts

    if layers is not None:
        keys = [layers] if not isinstance(layers, (list, tuple, set)) else list(layers)
        for key in keys:
            _check_key("layers", key)
            if not any(_matches(key, c.path, c.layer) for c in contexts_()):
                raise ValueError(
                    f"layers entry {key!r} matches no layer of model {model.name!r}, so no "
                    f"kernel would be re-initialized; layers: "
                    f"{', '.join(c.path for c in contexts_())}"
                )
    if isinstance(scheme, str) and scheme == "auto":
        return
    if isinstance(scheme, dict):
        if "class_name" in scheme and "config" in scheme:
            raise ValueError(
                "scheme looks like a serialized initializer config (it has 'class_name' and "
                "'config'); pass keras_initkit.initializers.deserialize(scheme) to use it for "
                "every kernel, or a dict {layer name or class: initializer}"
            )
        if not scheme:
            raise ValueError("scheme must not be an empty dict; it would change nothing")
        for key, value in scheme.items():
            _check_key("scheme", key)
            if not (isinstance(value, str) and value == "auto"):
                if value is None:
                    raise ValueError(f"scheme[{key!r}] must be 'auto' or an initializer; got None")
                ki.get_as(f"scheme[{key!r}]", value)
            if not any(_matches(key, c.path, c.layer) for c in contexts_()):
                raise ValueError(
                    f"scheme key {key!r} matches no layer of model {model.name!r}; "
                    f"layers: {', '.join(c.path for c in contexts_())}"
                )
        return
    if scheme is None:
        raise ValueError("scheme must be 'auto', an initializer, a name or a dict; got None")
    ki.get_as("scheme", scheme)


def _check_key(argument: str, key: Any) -> None:
    if not isinstance(key, (str, type, keras.layers.Layer)):
        raise ValueError(
            f"{argument} keys must be layer names, layer classes or layers; got {key!r}"
        )
