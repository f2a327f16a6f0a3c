"""`reinitialize`: give an existing model the initialization its activations call for."""

from __future__ import annotations

import contextlib
from typing import Any

import keras
import numpy as np

from keras_initkit import initializers as ki
from keras_initkit._graph import (
    bias_weights,
    kernel_weights,
    layer_contexts,
)
from keras_initkit.model_init import _validate
from keras_initkit.model_init.report import Report

_SEPARABLE = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)

COLUMNS = ["layer", "class", "activation seen", "initializer", "fan_in", "fan_out", "std"]


def check_built(model: keras.Model) -> None:
    if not isinstance(model, keras.Model):
        raise ValueError(f"model must be a keras.Model; got {type(model).__name__}")
    if not model.built or not model.weights:
        raise ValueError(
            f"model {model.name!r} is not built (it has no weights yet); call it on data "
            "or build it with an input shape first"
        )


def _matches(key: Any, path: str, layer: Any) -> bool:
    if isinstance(key, str):
        return key in (path, layer.name)
    if isinstance(key, type):
        return isinstance(layer, key)
    return key is layer


def _with_seed(initializer: Any, seed: int | None) -> Any:
    """A fresh copy of `initializer` (with `seed` when given and the initializer has one)."""
    config = initializer.get_config()
    if seed is not None and "seed" in config:
        config["seed"] = seed
    return type(initializer).from_config(config)


def _auto(context: Any, owner: Any, attribute: str, seed: int | None) -> Any:
    if attribute == "recurrent_initializer":
        return ki.Orthogonal(seed=seed)  # Keras's default for recurrent kernels (Saxe)
    spec = getattr(owner, "nonlinearity_spec", None)
    if callable(spec):  # a layer with its own kernel and activation (MaxoutDense)
        return ki.initializer_for(owner, seed=seed)
    if attribute == "depthwise_initializer" and isinstance(owner, _SEPARABLE):
        return ki.LecunNormal(seed=seed)  # feeds the pointwise kernel, not the activation
    if owner is not context.layer:  # inside a composite layer
        if isinstance(context.layer, keras.layers.MultiHeadAttention):
            return ki.LecunNormal(seed=seed)  # projections feed attention, not an activation
        activation = getattr(owner, "activation", None)  # an RNN cell's tanh
        return ki.initializer_for(activation, seed=seed)
    return ki.initializer_for(context.activation, seed=seed)


def _fans_and_init(init: Any, owner: Any, variable: keras.Variable) -> tuple[Any, Any, str]:
    """Layer-aware fans when the layer kind is known, else the shape's."""
    shape = tuple(int(d) for d in variable.shape)
    fans: Any
    try:
        fans = ki.compute_fans(owner, weight=variable)
        note = ""
    except ValueError:
        fans = ki.compute_fans(shape) if len(shape) >= 2 else (shape[0], shape[0])
        note = " (fans from the shape)"
    if hasattr(init, "for_layer"):
        with contextlib.suppress(ValueError):
            init = init.for_layer(owner, variable)
    return fans, init, note


def reinitialize(
    model: keras.Model,
    scheme: Any = "auto",
    *,
    layers: Any = None,
    bias: Any = "zeros",
    seed: int | None = None,
) -> Report:
    """Re-initializes the kernels of an existing, built model; returns what it did.

    With `scheme="auto"` each weighted layer gets the initializer that the activation
    its output feeds calls for (`initializer_for`): its own `activation=`, or the
    activation layer that consumes its output in a Sequential or Functional graph,
    looking through dropout, normalization, reshaping and pooling layers. So
    `Dense -> LeakyReLU(0.3)` gets He with slope 0.3, `Dense -> SELU` LeCun normal,
    `Dense(tanh)` the tanh gain, `Dense -> Maxout` the maxout scale, a `MaxoutDense`'s
    own kernel the maxout scale, and a layer whose output feeds another weighted layer,
    an `Add`, or the model output gets gain 1 (a `Dense` feeding a `MaxoutDense` feeds its
    linear kernel, not a max, so gain 1 too). Recurrent kernels get `Orthogonal`; an
    RNN's input kernel its cell's activation; attention projections gain 1. In a
    subclassed model the call graph is not visible: layers without their own activation
    are treated as linear, and the report says so.

    Fans are layer-aware (`compute_fans(layer)`): depthwise, transposed, grouped and
    strided convolutions, EinsumDense/MultiHeadAttention, Embedding, LSTM/GRU gates.
    Each changed layer's initializer attribute (`kernel_initializer`,
    `depthwise_initializer`, ...; an RNN's cell) is set to the initializer used, with
    those fans stored in it, so `model.get_config()` and saved `.keras` files reference
    it. `MultiHeadAttention` has no public attribute for its projections' initializer, so
    its saved config keeps the original (the report notes it). Biases are reset to `bias`.
    Layers with weights that are not kernels (normalization scales, PReLU's alpha) are
    kept; layers whose weights it does not understand are reported, not skipped silently.

    Args:
        model: a built `keras.Model`: Sequential, Functional, subclassed, nested.
        scheme: `"auto"`, one initializer (object or name, e.g. `"he_normal"`) for every
            kernel, or a dict `{layer name or class: initializer or "auto"}`; layers that
            match no key keep their weights.
        layers: optional list of layer names, classes or instances to limit the change to.
        bias: initializer for the biases (default `"zeros"`), or `None` to keep them.
        seed: int for reproducible weights (each kernel gets its own derived seed), or
            `None` (follows `keras.utils.set_random_seed`).

    Returns:
        A `Report` with one row per kernel: layer, class, activation seen, initializer,
        fan_in, fan_out and the std of the new weights.

    Example:
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16),
    ...                           keras.layers.LeakyReLU(0.3), keras.layers.Dense(2)])
    >>> report = keras_initkit.reinitialize(model, seed=0)
    >>> for initializer in report.column("initializer"):
    ...     print(initializer)
    HeNormal(seed=0, nonlinearity='leaky_relu', param=0.3, fans=[8.0, 16.0])
    LecunNormal(seed=1, fans=[16.0, 2.0])

    Reference:
    - [He et al., 2015](https://arxiv.org/abs/1502.01852)
    - [Mishkin & Matas, 2016](https://arxiv.org/abs/1511.06422) (initializing existing nets)
    """
    _validate.reinitialize_arguments(model, scheme, layers, bias, seed)  # all before any change
    check_built(model)
    chooser: Any
    if isinstance(scheme, str) and scheme == "auto":
        chooser = "auto"
    elif isinstance(scheme, dict):
        chooser = {key: value for key, value in scheme.items()}
    else:
        chooser = ki.get(scheme)
        if chooser is None:
            raise ValueError("scheme must be 'auto', an initializer, a name or a dict; got None")
    bias_init = ki.get(bias) if bias is not None else None
    if layers is not None and not isinstance(layers, (list, tuple, set)):
        layers = [layers]

    rows, notes = [], []
    assigned: dict[int, str] = {}  # variable id -> the row that set it
    counter = 0
    for context in layer_contexts(model):
        layer, path = context.layer, context.path
        if layers is not None and not any(_matches(k, path, layer) for k in layers):
            continue
        kernels = kernel_weights(layer)
        if not kernels:
            if layer.weights:
                names = sorted({v.name for v in layer.weights})
                rows.append(_row(path, layer, context.seen, f"kept (no kernel: {names})"))
            continue
        entry = "auto" if chooser == "auto" else chooser
        if isinstance(chooser, dict):
            entry = next((v for k, v in chooser.items() if _matches(k, path, layer)), None)
            if entry is None:
                rows.append(_row(path, layer, context.seen, "kept (not in scheme)"))
                continue
        lasts = [v.path.split("/")[-1] for _, v, _ in kernels]
        short = len(set(lasts)) == len(lasts)  # "lstm/kernel" unless names repeat (MHA)
        for owner, variable, attribute in kernels:
            weight_seed = None if seed is None else seed + counter
            counter += 1
            label = path if len(kernels) == 1 else f"{path}/{_relative(variable, layer, short)}"
            if id(variable) in assigned:  # tied weights: one variable, two layers
                rows.append(_row(label, layer, context.seen,
                                 f"kept (the same variable as {assigned[id(variable)]})"))
                continue
            assigned[id(variable)] = label
            auto = isinstance(entry, str) and entry == "auto"
            kept = _kept_embedding(layer, attribute) if auto else None
            if kept is not None:
                rows.append(_row(label, layer, context.seen, kept))
                notes.append(f"{label}: {kept}")
                continue
            if auto:
                init = _auto(context, owner, attribute, weight_seed)
            else:
                init = _with_seed(ki.get(entry), weight_seed)
            fans, init, note = _fans_and_init(init, owner, variable)
            values = init(tuple(int(d) for d in variable.shape), dtype=variable.dtype)
            variable.assign(values)
            if hasattr(owner, attribute) and not isinstance(
                layer, keras.layers.MultiHeadAttention
            ):
                setattr(owner, attribute, init)
            rows.append(
                {
                    "layer": label,
                    "class": type(layer).__name__,
                    "activation seen": context.seen,
                    "initializer": repr(init) + note,
                    "fan_in": fans[0],
                    "fan_out": fans[1],
                    "std": float(np.std(keras.ops.convert_to_numpy(variable.value))),
                }
            )
        if isinstance(layer, keras.layers.MultiHeadAttention):
            notes.append(
                f"{path}: weights set; its saved config keeps the original "
                "kernel_initializer (MultiHeadAttention exposes no public attribute for it)"
            )
        if bias_init is not None:
            for owner, variable in bias_weights(layer):
                shape = tuple(int(d) for d in variable.shape)
                variable.assign(bias_init(shape, dtype=variable.dtype))
                if hasattr(owner, "bias_initializer"):
                    owner.bias_initializer = bias_init
    if not rows:
        raise ValueError(
            "reinitialize found no kernel to re-initialize"
            + ("" if layers is None else f" among layers={layers!r}")
        )
    return Report(f"reinitialize({model.name})", COLUMNS, rows, notes)


def _kept_embedding(layer: Any, attribute: str) -> str | None:
    """Why `"auto"` keeps an embedding table, or None to redraw it.

    A plain `Embedding` is redrawn with fan_in 1 (unit std). A table that is also the
    output projection (keras-hub's `ReversibleEmbedding(tie_weights=True)`) would turn
    unit-std rows into logits of std sqrt(dim), and a custom layer's table (a learned
    position embedding) has no fan to read: both keep the scale their authors chose.
    """
    if attribute != "embeddings_initializer":
        return None
    if getattr(layer, "tie_weights", False):
        return "kept (tied: the table is also the output projection)"
    if not isinstance(layer, keras.layers.Embedding):
        return "kept (embedding table of a custom layer: no fan to read)"
    return None


def _relative(variable: keras.Variable, layer: Any, short: bool) -> str:
    """The variable's path below its layer: `kernel`, `query/kernel`, `forward_lstm/...`."""
    prefix = f"{layer.path}/"
    if not short and variable.path.startswith(prefix):
        return variable.path[len(prefix):]
    return variable.path.split("/")[-1]


def _row(path: str, layer: Any, seen: str, what: str) -> dict[str, Any]:
    return {
        "layer": path,
        "class": type(layer).__name__,
        "activation seen": seen,
        "initializer": what,
        "fan_in": None,
        "fan_out": None,
        "std": None,
    }
