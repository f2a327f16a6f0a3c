"""`pretrain`: greedy layer-wise pretraining of a model's Dense layers (RBMs or autoencoders)."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from keras_initkit._capture import intercept_calls
from keras_initkit._checks import (
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_positive,
    check_seed,
)
from keras_initkit._graph import (
    LayerContext,
    bias_weights,
    kernel_weights,
    layer_contexts,
    own_activation,
)
from keras_initkit.model_init import _validate
from keras_initkit.model_init._autoencoder import DenoisingAutoencoder
from keras_initkit.model_init._rbm import RBM
from keras_initkit.model_init.reinitialize import _matches
from keras_initkit.model_init.report import Report

COLUMNS = [
    "layer", "class", "shape", "visible", "hidden", "error before", "error after", "seconds",
    "status",
]
METHODS = ("rbm", "autoencoder")
VISIBLE = ("auto", "bernoulli", "gaussian")
CHUNK = 1024  # samples per eager forward pass when reading a layer's input
MIN_STD = 1e-6  # a Gaussian visible unit with a smaller std is constant: left unscaled
DEFAULT_K, DEFAULT_NOISE, DEFAULT_TIED = 1, 0.25, True


def pretrain(  # noqa: PLR0913 - the hyperparameters of both methods
    model: keras.Model,
    x: Any,
    method: str = "rbm",
    *,
    epochs: int = 10,
    learning_rate: float = 0.1,
    batch_size: int = 32,
    momentum: float = 0.5,
    k: int | None = None,
    noise: float | None = None,
    tied: bool | None = None,
    visible: str = "auto",
    layers: Any = None,
    seed: int | None = None,
    verbose: int = 1,
) -> Report:
    """Greedy layer-wise unsupervised pretraining of the model's Dense layers, in place.

    The classic answer to "we initialized the weights in a stupid way": each Dense layer,
    in model order, is trained without labels on the input it really receives from the
    model (the previous, already pretrained layers and whatever sits between, run in
    inference mode), and its kernel and bias are then written back. Supervised training
    starts from there.

    - `method="rbm"` (Hinton, Osindero & Teh, 2006): the layer is a restricted Boltzmann
      machine with Bernoulli hidden units, trained by contrastive divergence (CD-`k`) with
      minibatch SGD. Its visible units are Bernoulli when its input lies in [0, 1] (pixels
      scaled to [0, 1], a sigmoid layer's output) and Gaussian with unit variance
      otherwise (the input is divided by its per-feature std for training and the kernel
      written back divided by it too, so the layer sees the raw input). `visible` forces
      the choice for the first pretrained layer; deeper layers are decided from their
      input. The RBM's hidden units are sigmoid whatever the layer's activation.
    - `method="autoencoder"` (Bengio et al., 2007; Vincent et al., 2008): the layer is the
      encoder of a denoising autoencoder, with the activation its output really feeds
      (its own `activation=` or the activation layer after it), `noise` the fraction of
      inputs set to zero, a tied (`W^T`) or untied decoder, sigmoid with cross-entropy for
      inputs in [0, 1], linear with squared error otherwise.

    By default every Dense layer is pretrained except the last one, the output layer,
    which supervised training starts from its own initialization (Bengio et al., 2007);
    `layers` selects them explicitly. Layers that are not Dense (convolutions, attention,
    embeddings, recurrent layers) are left alone and named in the report. The
    reconstruction error (mean squared error between the layer's input and its
    mean-field reconstruction) is measured before training and after every epoch. A
    layer whose error becomes NaN or Inf keeps its weights (a warning and the report
    say so). If anything raises, every weight is put back.

    Args:
        model: a built `keras.Model` (Sequential, Functional, subclassed, nested).
        x: the unlabeled training inputs (an array or the structure the model takes).
        method: `"rbm"` or `"autoencoder"`. Defaults to `"rbm"`.
        epochs: passes over `x` per layer. Defaults to `10`.
        learning_rate: SGD learning rate. Defaults to `0.1` (Gaussian visible units
            often need 10 times less).
        batch_size: minibatch size, at most the number of samples. Defaults to `32`.
        momentum: SGD momentum in [0, 1). Defaults to `0.5`, where Hinton's guide starts
            (it raises it to 0.9 once the weights have settled).
        k: Gibbs steps of contrastive divergence (`method="rbm"` only). Defaults to `1`.
        noise: fraction of inputs masked to zero (`method="autoencoder"` only), in [0, 1).
            Defaults to `0.25`.
        tied: whether the decoder is the transposed kernel (`method="autoencoder"` only).
            Defaults to `True`.
        visible: `"auto"`, `"bernoulli"` or `"gaussian"`: the visible units of the first
            pretrained layer; `"bernoulli"` needs its input in [0, 1]. Defaults to `"auto"`.
        layers: `None`, or a list of Dense layer names, classes or instances to pretrain.
        seed: int for repeatable results (shuffling, Gibbs sampling, masking noise), or
            `None` (follows `keras.utils.set_random_seed`).
        verbose: `0` silent, `1` one line per layer, `2` also one line per epoch.

    Returns:
        A `Report` with one row per weighted layer: its shape, visible and hidden units,
        the reconstruction error before and after, the seconds it took and its status.
        Each pretrained row also holds `"errors"`, the error before and after each epoch.

    Example:
    >>> model = keras.Sequential([keras.Input((16,)),
    ...                           keras.layers.Dense(8, activation="sigmoid"),
    ...                           keras.layers.Dense(2, activation="softmax")])
    >>> x = np.random.default_rng(0).uniform(size=(64, 16)).astype("float32")
    >>> report = keras_initkit.pretrain(model, x, epochs=2, seed=0, verbose=0)
    >>> report.column("status")
    ['ok', 'skipped: the output layer (pass layers= to include it)']
    >>> first = report[0]
    >>> first["visible"]
    'bernoulli'

    Reference:
    - [Hinton, Osindero & Teh, 2006](https://doi.org/10.1162/neco.2006.18.7.1527)
    - [Bengio, Lamblin, Popovici & Larochelle, 2007](
      https://papers.nips.cc/paper/3048-greedy-layer-wise-training-of-deep-networks)
    - [Vincent, Larochelle, Bengio & Manzagol, 2008](
      https://doi.org/10.1145/1390156.1390294)
    - [Hinton, 2010, A practical guide to training RBMs](
      https://www.cs.toronto.edu/~hinton/absps/guideTR.pdf)
    """
    method, k, noise, tied, verbose = _check_arguments(
        model, x, method, epochs, learning_rate, batch_size, momentum, k, noise, tied,
        visible, seed, verbose,
    )
    contexts = [c for c in layer_contexts(model) if kernel_weights(c.layer)]
    chosen = _chosen(model, contexts, layers)
    samples = _samples(x, batch_size)
    _check_fits(model, x)
    saved = [np.array(keras.ops.convert_to_numpy(v.value)) for v in model.weights]
    try:
        first = _layer_input(model, x, chosen[0].layer, samples)
        if visible == "bernoulli" and first is not None and not _in_unit_interval(first):
            raise ValueError(
                "visible='bernoulli' needs the first pretrained layer's input in [0, 1]; got "
                f"values in [{float(first.min()):.3g}, {float(first.max()):.3g}]. Use "
                "visible='auto' or 'gaussian', or scale x"
            )
        settings = {
            "method": method, "epochs": epochs, "learning_rate": learning_rate,
            "batch_size": batch_size, "momentum": momentum, "k": k, "noise": noise,
            "tied": tied, "verbose": verbose,
        }
        results = _pretrain(model, x, chosen, first, visible, seed, samples, settings)
    except BaseException:
        for variable, value in zip(model.weights, saved, strict=True):
            variable.assign(value)
        raise
    rows = []
    for context in contexts:
        result = results.get(id(context.layer)) or {"status": _why_not(context, chosen, layers)}
        rows.append({"layer": context.path, "class": type(context.layer).__name__, **result})
    title = f"pretrain({model.name}, method={method!r}, epochs={epochs})"
    return Report(title, COLUMNS, rows)


def _check_arguments(  # noqa: PLR0913 - pretrain's own arguments
    model: Any, x: Any, method: Any, epochs: Any, learning_rate: Any, batch_size: Any,
    momentum: Any, k: Any, noise: Any, tied: Any, visible: Any, seed: Any, verbose: Any,
) -> tuple[str, int, float, bool, int]:
    """Every argument checked before any work; returns method, k, noise, tied, verbose."""
    _validate.check_model(model)
    check_choice("method", method, METHODS)
    check_int("epochs", epochs, 1, 100_000)
    check_positive("learning_rate", learning_rate, high=1e4)
    check_int("batch_size", batch_size, 1)
    check_number("momentum", momentum, low=0, high=1, need="a number in [0, 1)")
    if momentum >= 1:
        raise ValueError(f"momentum must be a number in [0, 1); got {momentum!r}")
    for name, value in (("k", k), ("noise", noise), ("tied", tied)):
        owner = "rbm" if name == "k" else "autoencoder"
        if value is not None and method != owner:
            raise ValueError(
                f"{name} is an argument of method={owner!r}; got {name}={value!r} with "
                f"method={method!r}"
            )
    k = DEFAULT_K if k is None else check_int("k", k, 1, 1000)
    if noise is None:
        noise = DEFAULT_NOISE
    check_number("noise", noise, low=0, high=1, need="a number in [0, 1)")
    if noise >= 1:
        raise ValueError(f"noise must be a number in [0, 1); got {noise!r}")
    tied = DEFAULT_TIED if tied is None else check_bool("tied", tied)
    check_choice("visible", visible, VISIBLE)
    check_seed("seed", seed)
    if isinstance(verbose, bool):
        verbose = int(verbose)
    verbose = check_int("verbose", verbose, 0, 2)
    _validate.check_x(x, _validate.MAX_ABS_INPUT)
    return method, k, float(noise), tied, verbose


def _is_dense(layer: Any) -> bool:
    return isinstance(layer, keras.layers.Dense)


def _chosen(model: keras.Model, contexts: list[LayerContext], layers: Any) -> list[LayerContext]:
    dense = [c for c in contexts if _is_dense(c.layer)]
    if layers is None:
        if len(dense) < 2:
            raise ValueError(
                f"model {model.name!r} has {len(dense)} Dense layer(s); pretrain leaves the "
                "last one (the output layer) to supervised training, so there is nothing to "
                "pretrain. Pass layers=[...] to choose the layers"
            )
        return dense[:-1]
    keys = list(layers) if isinstance(layers, (list, tuple, set)) else [layers]
    if not keys:
        raise ValueError("layers must name at least one Dense layer; got an empty list")
    for key in keys:
        if not isinstance(key, (str, type, keras.layers.Layer)):
            raise ValueError(f"layers entries must be layer names, classes or layers; got {key!r}")
        matched = [c for c in contexts if _matches(key, c.path, c.layer)]
        if not matched or not all(_is_dense(c.layer) for c in matched):
            raise ValueError(
                f"layers entry {key!r} must match Dense layers of model {model.name!r} (only "
                f"Dense layers can be pretrained); Dense layers: "
                f"{', '.join(c.path for c in dense) or 'none'}"
            )
    return [c for c in dense if any(_matches(key, c.path, c.layer) for key in keys)]


def _why_not(context: LayerContext, chosen: list[LayerContext], layers: Any) -> str:
    layer = context.layer
    if not _is_dense(layer):
        return f"skipped: {type(layer).__name__} cannot be pretrained (only Dense layers); kept"
    if layers is None and all(c.layer is not layer for c in chosen):
        return "skipped: the output layer (pass layers= to include it)"
    return "skipped: not in layers"


def _samples(x: Any, batch_size: int) -> int:
    sizes = {int(np.shape(leaf)[0]) if np.ndim(leaf) else 0 for leaf in keras.tree.flatten(x)}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(f"x must be a batch whose arrays share one first dimension; got {sizes}")
    samples = sizes.pop()
    if batch_size > samples:
        raise ValueError(
            f"batch_size must be at most the number of samples in x ({samples}); got {batch_size}"
        )
    return samples


def _check_fits(model: Any, x: Any) -> None:
    try:
        model(_rows(x, 0, 2), training=False)
    except Exception as error:  # noqa: BLE001 - any failure means x does not fit
        raise ValueError(f"x does not fit the model {model.name!r}: {error}") from error


def _rows(x: Any, start: int, stop: int) -> Any:
    return keras.tree.map_structure(lambda leaf: leaf[start:stop], x)


def _layer_input(model: keras.Model, x: Any, layer: Any, samples: int) -> np.ndarray | None:
    """What `layer` receives when the model runs on `x` (inference mode), as (rows, features)."""
    seen: list[np.ndarray] = []

    def record(_layer: Any, call: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        inputs = args[0] if args else kwargs["inputs"]
        seen.append(np.asarray(keras.ops.convert_to_numpy(inputs), np.float32))
        return call(*args, **kwargs)

    with intercept_calls([layer], record):
        for start in range(0, samples, CHUNK):
            model(_rows(x, start, start + CHUNK), training=False)
    if not seen:
        return None
    return np.concatenate([a.reshape(-1, a.shape[-1]) for a in seen])


def _in_unit_interval(values: np.ndarray) -> bool:
    return bool(values.min() >= 0.0 and values.max() <= 1.0)


def _activation_name(activation: Any) -> str:
    if activation is None:
        return "linear"
    return str(getattr(activation, "__name__", None) or type(activation).__name__)


def _pretrain(  # noqa: PLR0913 - the shared state of one run
    model: keras.Model, x: Any, chosen: list[LayerContext], first: np.ndarray | None, visible: str,
    seed: int | None, samples: int, settings: dict[str, Any],
) -> dict[int, dict[str, Any]]:
    shuffler = keras.random.SeedGenerator(seed)
    results: dict[int, dict[str, Any]] = {}
    for index, context in enumerate(chosen):
        layer = context.layer
        data = first if index == 0 else _layer_input(model, x, layer, samples)
        if data is None:
            results[id(layer)] = {"status": "not called on x: kept"}
            continue
        kind = visible if index == 0 and visible != "auto" else (
            "bernoulli" if _in_unit_interval(data) else "gaussian"
        )
        layer_seed = None if seed is None else (seed + 1 + index) % 2**32
        result = _pretrain_layer(context, data, kind, layer_seed, shuffler, settings)
        results[id(layer)] = result
        if settings["verbose"]:
            print(
                f"pretrain {index + 1}/{len(chosen)} {context.path} ({result['shape']}, "
                f"{settings['method']}, {kind} visible): reconstruction error "
                f"{result['error before']:.4g} -> {result['error after']:.4g} in "
                f"{result['seconds']:.1f} s" + ("" if result["status"] == "ok"
                                                  else f" [{result['status']}]"),
                flush=True,
            )
    return results


def _encoder_activation(context: LayerContext) -> Any:
    """The activation the layer's output feeds (its own, or the activation layer after it)."""
    activation = own_activation(context.layer)
    return activation if activation is not None else context.activation


def _pretrain_layer(
    context: LayerContext, data: np.ndarray, kind: str, seed: int | None,
    shuffler: Any, settings: dict[str, Any],
) -> dict[str, Any]:
    layer = context.layer
    started = time.perf_counter()
    kernel_variable = next(v for _, v, a in kernel_weights(layer) if a == "kernel_initializer")
    biases = [v for _, v in bias_weights(layer)]
    kernel = np.asarray(keras.ops.convert_to_numpy(kernel_variable.value), np.float32)
    hidden_bias = (np.asarray(keras.ops.convert_to_numpy(biases[0].value), np.float32)
                   if biases else np.zeros(kernel.shape[1], np.float32))
    gaussian = kind == "gaussian"
    scale = np.ones(kernel.shape[0], np.float32)
    if gaussian:  # unit-variance Gaussian units on data divided by its std
        std = data.std(axis=0)
        scale = np.where(std > MIN_STD, std, 1.0).astype(np.float32)
        visible_bias = (data / scale).mean(axis=0)
    else:
        mean = np.clip(data.mean(axis=0), 1e-3, 1 - 1e-3)
        visible_bias = np.log(mean / (1 - mean))  # Hinton's guide: log(p / (1 - p))
    scaled = data / scale
    row: dict[str, Any] = {"shape": f"{kernel.shape[0]} -> {kernel.shape[1]}", "visible": kind}
    if settings["method"] == "rbm":
        unit: Any = RBM(kernel * scale[:, None], hidden_bias, visible_bias, gaussian=gaussian,
                        k=settings["k"], train_hidden_bias=bool(biases), seed=seed)
        activation = own_activation(layer)
        row["hidden"] = "sigmoid (Bernoulli)"
        if activation is not None and _activation_name(activation) != "sigmoid":
            row["hidden"] += f"; the layer applies {_activation_name(activation)}"
    else:
        activation = _encoder_activation(context)
        if activation is not None and not _keeps_shape(activation, kernel.shape[1]):
            return {**row, "hidden": _activation_name(activation),
                    "status": f"skipped: its activation {_activation_name(activation)} changes "
                              "the shape of its output, so there is no autoencoder; kept"}
        unit = DenoisingAutoencoder(
            kernel * scale[:, None], hidden_bias, visible_bias,
            activation=activation or keras.activations.linear, bernoulli=not gaussian,
            noise=settings["noise"], tied=settings["tied"], train_hidden_bias=bool(biases),
            seed=seed)
        row["hidden"] = _activation_name(activation)
    errors = _fit(unit, scaled, scale, shuffler, settings, context.path)
    row.update({"error before": errors[0], "error after": errors[-1], "errors": errors})
    if not all(math.isfinite(e) for e in errors):
        warnings.warn(
            f"pretrain: the reconstruction error of {context.path!r} became non-finite; its "
            f"weights are kept as they were. Lower learning_rate (it is "
            f"{settings['learning_rate']}).", RuntimeWarning, stacklevel=4)
        row["status"] = "diverged (non-finite error): kept; lower learning_rate"
    else:
        new_kernel = keras.ops.convert_to_numpy(unit.kernel.value) / scale[:, None]
        kernel_variable.assign(new_kernel.astype(kernel_variable.dtype))
        if biases:
            biases[0].assign(keras.ops.convert_to_numpy(unit.hidden_bias.value)
                             .astype(biases[0].dtype))
        row["status"] = "ok"
    row["seconds"] = time.perf_counter() - started
    return row


def _keeps_shape(activation: Any, units: int) -> bool:
    try:
        out = activation(keras.ops.zeros((2, units)))
    except Exception:  # noqa: BLE001 - an activation that cannot run on a matrix
        return False
    return tuple(keras.ops.shape(out)) == (2, units)


def _mean_loss(_: Any, values: Any) -> Any:
    return keras.ops.mean(values)


def _fit(
    unit: Any, data: np.ndarray, scale: np.ndarray, shuffler: Any, settings: dict[str, Any],
    path: str,
) -> list[float]:
    """Trains `unit` on `data` with minibatch SGD; the error before and after each epoch."""
    inputs = keras.Input((data.shape[1],), dtype="float32")
    trainer = keras.Model(inputs, unit(inputs))
    optimizer = keras.optimizers.SGD(settings["learning_rate"], momentum=settings["momentum"])
    trainer.compile(optimizer=optimizer, loss=_mean_loss)
    targets = np.zeros((len(data), 1), np.float32)
    errors = [_error(unit, data, scale)]
    for epoch in range(settings["epochs"]):
        order = keras.ops.convert_to_numpy(
            keras.random.shuffle(keras.ops.arange(len(data)), seed=shuffler))
        trainer.fit(data[order], targets, batch_size=settings["batch_size"], epochs=1,
                    shuffle=False, verbose=0)
        errors.append(_error(unit, data, scale))
        if settings["verbose"] > 1:
            print(f"  {path} epoch {epoch + 1}/{settings['epochs']}: reconstruction error "
                  f"{errors[-1]:.4g}", flush=True)
        if not math.isfinite(errors[-1]):
            break
    return errors


def _error(unit: Any, data: np.ndarray, scale: np.ndarray) -> float:
    """Mean squared error between the input and its reconstruction, in the input's units."""
    total = 0.0
    for start in range(0, len(data), CHUNK):
        chunk = data[start:start + CHUNK]
        recon = np.asarray(keras.ops.convert_to_numpy(unit.reconstruct(chunk)), np.float64)
        total += float(np.sum(np.square((recon - chunk) * scale)))
    return total / data.size
