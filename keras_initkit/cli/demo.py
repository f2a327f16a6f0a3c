"""`keras-initkit demo`: the lesson on a real training run, with a diagnosis.

Trains the same MLP on scikit-learn's digits (bundled with scikit-learn, no download)
twice: once with a bad initialization (default: N(0, 0.01^2) under tanh), once after
`keras_initkit.reinitialize(model)`. `ActivationStats` and `GradientStats` record both
runs inside the training step; the run folder gets their CSV, JSON, TensorBoard logs and
PNG plots, and the command prints which layers vanished, saturated, exploded or died,
where the gradients tell the story (vanishing or exploding towards the input, updates
too small for the layers to learn), and the test accuracy of each run.
"""

from __future__ import annotations

import json
import os
import textwrap
import warnings
from collections import Counter, defaultdict
from typing import Any

import keras
import numpy as np

from keras_initkit.callbacks import ActivationStats, GradientStats
from keras_initkit.cli._choices import activation_function, make_initializer
from keras_initkit.model_init import lsuv, reinitialize
from keras_initkit.stats import diagnose
from keras_initkit.stats.export import atomic_write_text
from keras_initkit.stats.gradient_diagnosis import diagnose as diagnose_gradients

__all__ = ["run"]

EVERY = 5  # record one training batch in 5
BATCH_SIZE = 64
LEARNING_RATE = 0.05


class _Progress(keras.callbacks.Callback):
    """Prints one line per epoch."""

    def __init__(self, label: str, epochs: int) -> None:
        super().__init__()
        self.label, self.epochs = label, epochs

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        print(f"  {self.label}: epoch {epoch + 1}/{self.epochs}  loss {logs['loss']:.4f}  "
              f"accuracy {logs['accuracy']:.3f}", flush=True)


def _load_data(seed: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's 8x8 digits, scaled to [0, 1], shuffled with `seed`, split 80/20."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.data / 16.0).astype("float32"), digits.target.astype("int64")
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))
    return (x[:split], y[:split]), (x[split:], y[split:])


def _build_model(activation: str, init: str, *, depth: int, width: int, seed: int) -> Any:
    """`depth` x `Dense(width, activation)` with `init`, then a softmax over 10 digits."""
    function = activation_function(activation)
    layers = [keras.Input((64,))]
    layers += [
        keras.layers.Dense(width, activation=function, name=f"{activation}_{i + 1}",
                           kernel_initializer=make_initializer(init, activation, seed + i))
        for i in range(depth)
    ]
    layers.append(keras.layers.Dense(10, activation="softmax", name="digits"))
    return keras.Sequential(layers, name="digits_mlp")


def _names(layers: list[str]) -> str:
    return ", ".join(layers) if len(layers) <= 4 else f"{layers[0]}, {layers[1]} ... {layers[-1]}"


def _summarize_findings(records: list[Any]) -> list[tuple[str, str]]:
    """Per condition found in one read: `(which layers, what it means)`."""
    by_condition: dict[str, list[Any]] = defaultdict(list)
    for finding in diagnose(records):  # ActivationStats' own thresholds
        by_condition[finding.condition].append(finding)
    lines = []
    for condition, findings in by_condition.items():
        layers = [name for f in findings for name in (f.layers or (f.layer,))]
        where = f"{condition} in {len(layers)} of {len(records)} layers ({_names(layers)})"
        lines.append((where, findings[0].message))
    return lines


# How each gradient finding reads in the demo's list (its message follows).
_GRADIENT_WORDS = {
    "vanishing": "gradients vanishing towards the input",
    "exploding": "gradients exploding towards the input",
    "update_too_small": "updates too small to learn",
    "update_too_large": "updates too large (unstable)",
    "nonfinite": "non-finite gradients",
    "dead": "dead gradients",
}


def _summarize_gradients(records: list[Any]) -> list[tuple[str, str]]:
    """Per `GradientStats` finding in one read: `(which layers, what it says)`."""
    layers = list(dict.fromkeys(r.layer for r in records))
    lines = []
    for finding in diagnose_gradients(records):  # GradientStats' own thresholds
        what = _GRADIENT_WORDS.get(finding.condition, finding.condition)
        named = list(finding.layers)
        message = finding.message
        if finding.condition in ("vanishing", "exploding"):  # `what` says it already
            message = message.partition(": ")[2]
        lines.append((f"{what} in {len(named)} of {len(layers)} layers ({_names(named)})",
                      message))
    return lines


def _reads(stats: Any) -> list[list[Any]]:
    steps = sorted({r.step for r in stats.records})
    return [[r for r in stats.records if r.step == step] for step in steps]


def _train(label: str, model: keras.Model, data: tuple, epochs: int, folder: str) -> dict[str, Any]:
    (x_train, y_train), (x_test, y_test) = data
    model.compile(keras.optimizers.SGD(LEARNING_RATE, momentum=0.9),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    stats = ActivationStats(every=EVERY, log_dir=folder, warn=False)
    gradients = GradientStats(every=EVERY, log_dir=folder, warn=False)
    model.fit(x_train, y_train, batch_size=BATCH_SIZE, epochs=epochs, verbose=0,
              callbacks=[stats, gradients, _Progress(label, epochs)])
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    reads = _reads(stats)
    gradient_reads = _reads(gradients)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            first_step = reads[0][0].step
            over_time = stats.plot_histograms(over_time=True)
            for name, figure in (("layer_stats.png", stats.plot()),
                                 ("gradient_stats.png", gradients.plot()),
                                 ("histograms.png", stats.plot_histograms(step=first_step)),
                                 ("histograms_over_time.png", over_time)):
                figure.savefig(os.path.join(folder, name), dpi=90)
    except ImportError as error:  # matplotlib is optional (the `plot` extra)
        print(f"  (no plots: {error})")
    return {
        "test_accuracy": float(accuracy),
        "first_step": reads[0][0].step,
        "last_step": reads[-1][0].step,
        "at_start": _summarize_findings(reads[0]),
        "at_end": _summarize_findings(reads[-1]),
        "gradients_at_start": _summarize_gradients(gradient_reads[0]),
        "gradients_at_end": _summarize_gradients(gradient_reads[-1]),
        "std_at_start": {r.layer: r.stats["std"] for r in reads[0]},
        "std_at_end": {r.layer: r.stats["std"] for r in reads[-1]},
        "files": sorted(os.listdir(folder)),
    }


def _print_diagnosis(label: str, result: dict[str, Any]) -> None:
    print(f"\n{label}: test accuracy {result['test_accuracy']:.3f}")
    said = set()
    for when in ("at_start", "at_end"):
        step = result["first_step" if when == "at_start" else "last_step"]
        print(f"  after {step} batches:")
        findings = result[when] or [("no vanishing, exploding, saturated or dead layers", "")]
        findings = findings + result[f"gradients_{when}"]
        for layers, message in findings:
            condition = layers.split(" in ", 1)[0]
            # Said already: name the layers only.
            line = f"still {layers}" if condition in said else f"{layers}: {message}".rstrip(": ")
            said.add(condition)
            print(textwrap.fill(line, 78, initial_indent="    - ", subsequent_indent="      "))


def _initializers_used(model: keras.Model) -> str:
    counts: Counter[str] = Counter()
    for layer in model.layers:
        config = layer.kernel_initializer.get_config()
        nonlinearity = config.get("nonlinearity")
        counts[f"{type(layer.kernel_initializer).__name__}"
               + (f"(nonlinearity={nonlinearity!r})" if nonlinearity else "()")] += 1
    return ", ".join(f"{n} x {name}" for name, n in counts.items())


def run(args: Any) -> int:
    """Runs `keras-initkit demo` with parsed arguments; returns the exit code.

    Args:
        args: the `argparse.Namespace` of `keras_initkit.cli.build_parser()` for `demo`
            (`activation`, `init`, `depth`, `width`, `epochs`, `seed`, `out`).

    Returns:
        0. Bad input raises `keras_initkit.cli.UsageError` (exit code 2 from `main`).

    Example:
    >>> from keras_initkit.cli import build_parser
    >>> args = build_parser().parse_args(["demo", "--epochs", "1", "--out", "runs/x"])
    >>> args.activation, args.init, args.depth
    (['tanh'], ['normal:0.01'], 8)

    Reference:
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html)
    - [Mishkin & Matas, 2016](https://arxiv.org/abs/1511.06422) (watching per-layer stats)
    """
    from keras_initkit.cli import UsageError

    if len(args.activation) != 1 or len(args.init) != 1:
        raise UsageError("--activation and --init take one name each in demo; got "
                         f"{','.join(args.activation)!r} and {','.join(args.init)!r}")
    try:
        import sklearn.datasets  # noqa: F401
    except ImportError:
        raise UsageError("demo needs scikit-learn: pip install 'keras-initkit[examples]'") from None
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--out: cannot create {args.out!r}: {error.strerror}") from None
    activation, init = args.activation[0], args.init[0]
    data = _load_data(args.seed)
    print(f"digits (8x8 images, {len(data[0][0])} to train, {len(data[1][0])} to test); "
          f"{args.depth} x Dense({args.width}, {activation}),\nSGD {LEARNING_RATE} with "
          f"momentum 0.9, backend {keras.backend.backend()};\nActivationStats and "
          f"GradientStats record one batch in {EVERY}")

    runs = {}
    for key, label in (("bad_init", f"init {init}"), ("reinitialized", "reinitialize(model)")):
        keras.utils.set_random_seed(args.seed)
        model = _build_model(activation, init, depth=args.depth, width=args.width,
                            seed=args.seed)
        if init == "lsuv":
            lsuv(model, data[0][0][:512], seed=args.seed)
        if key == "reinitialized":
            reinitialize(model, seed=args.seed)
            print(textwrap.fill(f"reinitialize(model) gave the kernels: "
                                f"{_initializers_used(model)}", 80, subsequent_indent="  "))
        print(f"training with {label} ({args.epochs} epoch{'s' if args.epochs > 1 else ''}):")
        runs[key] = {"label": label, **_train(label, model, data, args.epochs,
                                              os.path.join(args.out, key))}

    for result in runs.values():
        _print_diagnosis(result["label"], result)
    summary = {
        "config": {k: getattr(args, k) for k in ("activation", "init", "depth", "width",
                                                   "epochs", "seed")}
        | {"backend": keras.backend.backend(), "every": EVERY},
        "runs": runs,
    }
    atomic_write_text(os.path.join(args.out, "summary.json"), json.dumps(summary, indent=1))
    bad, good = runs["bad_init"]["test_accuracy"], runs["reinitialized"]["test_accuracy"]
    print(f"\ntest accuracy: {bad:.3f} with {init}, {good:.3f} after reinitialize(model)")
    print(f"\nrun folder {args.out}: summary.json; per run, activation_stats.csv/.jsonl,\n"
          f"gradient_stats.csv/.jsonl, PNG plots and TensorBoard logs\n"
          f"(tensorboard --logdir {args.out})")
    return 0
