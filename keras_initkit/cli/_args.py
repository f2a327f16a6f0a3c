"""The `keras-initkit` command's arguments: the parser, the names it accepts and the
argument types (each turns a string into a value or raises `argparse.ArgumentTypeError`
with a one-line message naming the allowed values).

Standard library only, and no import from the package: `keras_initkit_cli.py` loads this
file by its path, so `keras-initkit --help`, `--version` and bad input answer without
importing `keras_initkit` (whose `__init__` imports Keras, 4-7 s). Keras is imported only
when a subcommand runs. `tests/test_cli.py` checks that the name lists below equal the
package's own (`nonlinearity_names()` and the initializer classes).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

PROG = "keras-initkit"
BACKENDS = ("tensorflow", "jax", "torch")
PLOT_SUFFIXES = (".png", ".pdf", ".svg")

# The elementwise activations of `keras_initkit.initializers.nonlinearity_names()` (the
# others cannot fill a plain `Dense(width, activation=...)` stack of constant width).
ACTIVATIONS = (
    "celu", "elu", "exponential", "gelu", "gelu_approximate", "hard_shrink", "hard_sigmoid",
    "hard_silu", "hard_tanh", "leaky_relu", "linear", "lisht", "log_sigmoid", "mish", "relu",
    "relu6", "selu", "sigmoid", "silu", "snake", "soft_shrink", "softplus", "softsign",
    "sparse_plus", "sparse_sigmoid", "squareplus", "tanh", "tanh_shrink", "tanhexp",
)
# The initializer classes `keras_initkit.cli._choices` maps these names to.
NAMED_INITS = (
    "glorot_normal", "glorot_uniform", "xavier_normal", "xavier_uniform", "he_normal",
    "he_uniform", "kaiming_normal", "kaiming_uniform", "lecun_normal", "lecun_uniform",
    "orthogonal",
)
# `auto`: initializer_for(activation); `lsuv`: orthogonal, then LSUV on the study's data;
# `standard`: Glorot & Bengio's "standard" U[-1/sqrt(fan_in), 1/sqrt(fan_in)].
INITS = ("normal:STD", "uniform:LIMIT", "constant:C", "zeros", "standard", *NAMED_INITS,
         "auto", "lsuv")


def check_init(spec: str) -> None:
    """Raises `argparse.ArgumentTypeError` unless `spec` names an initializer in `INITS`."""
    name, _, value = spec.partition(":")
    if name in ("normal", "uniform"):
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not number > 0 or number == float("inf"):
            raise argparse.ArgumentTypeError(
                f"{name}:X needs a positive number X (e.g. {name}:0.01); got {spec!r}"
            )
        return
    if name == "constant":
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not math.isfinite(number):
            raise argparse.ArgumentTypeError(
                f"constant:C needs a finite number C (e.g. constant:0.1); got {spec!r}"
            )
        return
    if spec not in INITS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(INITS)}; got {spec!r}")


def int_in(minimum: int, maximum: int) -> Callable[[str], int]:
    """An integer in `[minimum, maximum]`; the bounds keep the run inside memory and
    inside what every backend's RNG accepts (seeds < 2**32)."""
    words = f"an integer in [{minimum}, {maximum}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {words}; got {text!r}") from None
        if not minimum <= value <= maximum:
            shown = text if len(text) <= 30 else f"{text[:12]}... ({len(text)} digits)"
            raise argparse.ArgumentTypeError(f"must be {words}; got {shown}")
        return value

    return parse


depth_int = int_in(1, 1000)
width_int = int_in(1, 4096)  # a 4096 x 4096 float32 kernel is 64 MB per layer
batch_int = int_in(1, 20000)
epochs_int = int_in(1, 1000)
seed_int = int_in(0, 2**32 - 1)
steps_int = int_in(0, 100000)


def rate_float(text: str) -> float:
    """A rate in [0, 1), such as a dropout rate (1 would drop everything)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1); got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0, such as a learning rate."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a number > 0; got {text!r}")
    return value


def choice_list(allowed: Sequence[str], check: Callable[[str], Any] | None = None) -> Callable:
    """A comma-separated list of names; each must be in `allowed` or pass `check`."""

    def parse(text: str) -> list[str]:
        names = [name.strip().lower() for name in text.split(",") if name.strip()]
        if not names:
            raise argparse.ArgumentTypeError(f"must name at least one of {', '.join(allowed)}")
        for name in names:
            if name in allowed:
                continue
            if check is not None:
                check(name)
                continue
            raise argparse.ArgumentTypeError(
                f"must be one of {', '.join(allowed)}; got {name!r}"
            )
        return list(dict.fromkeys(names))  # drop repeats, keep order

    return parse


def _writable_directory(directory: str) -> bool:
    """Whether files can be created in `directory`, or in the folders it would create."""
    directory = os.path.abspath(directory or ".")
    while not os.path.exists(directory):
        parent = os.path.dirname(directory)
        if parent == directory:
            return False
        directory = parent
    return os.path.isdir(directory) and os.access(directory, os.W_OK | os.X_OK)


def _can_create_in(folder: str) -> str | None:
    """None if a file can be created in `folder` (tried for real), else the reason."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder or ".", prefix=".keras-initkit-probe-"):
            pass
    except OSError as error:
        return error.strerror or str(error)
    return None


def output_file(suffixes: Sequence[str] | None = None, allow_stdout: bool = False) -> Callable:
    """A path in an existing folder where a file can be created (checked by creating one)."""

    def parse(text: str) -> str:
        if allow_stdout and text == "-":
            return text
        if not text or os.path.isdir(text):
            raise argparse.ArgumentTypeError(f"must be a file path, not a folder; got {text!r}")
        if suffixes is not None and os.path.splitext(text)[1].lower() not in suffixes:
            raise argparse.ArgumentTypeError(
                f"must end in one of {', '.join(suffixes)}; got {text!r}"
            )
        folder = os.path.dirname(text)
        if folder and not os.path.isdir(folder):
            raise argparse.ArgumentTypeError(
                f"cannot write {text!r}: folder {folder!r} does not exist (create it first)"
            )
        reason = _can_create_in(folder)
        if reason is not None:
            raise argparse.ArgumentTypeError(f"cannot write {text!r}: {reason}")
        return text

    return parse


def output_folder(text: str) -> str:
    """A folder that exists and is writable, or can be created."""
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"must be a folder; {text!r} is a file")
    if not _writable_directory(text):
        raise argparse.ArgumentTypeError(f"cannot write to {text!r}: folder is not writable")
    return text


def version() -> str:
    """`keras-initkit X.Y.Z`, read from the package's `version.py` by its path (importing
    `keras_initkit.version` would run the package's `__init__`, which imports Keras)."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "version.py")
    spec = importlib.util.spec_from_file_location("_keras_initkit_version", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot read the version from {path!r}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return f"{PROG} {module.__version__}"


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (no usage block) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


_DESCRIPTION = (
    "`keras-initkit study` runs the classic initialization experiment (a deep stack of "
    "`Dense` layers fed unit-Gaussian data) for any activations x initializers and reports "
    "each layer's statistics; `keras-initkit demo` trains a small model on scikit-learn's "
    "digits with a bad initialization and again after `reinitialize`, recording both with "
    "`ActivationStats`. `keras-initkit --help` lists the options."
)


def _add_model_options(parser: argparse.ArgumentParser, activation: str, init: str,
                       depth: int, width: int, many: bool) -> None:
    what = "comma-separated names" if many else "a name"
    parser.add_argument(
        "--activation", default=activation, type=choice_list(ACTIVATIONS),
        help=f"{what}, from: {', '.join(ACTIVATIONS)} (default: {activation})")
    parser.add_argument(
        "--init", default=init, type=choice_list(INITS, check_init),
        help=f"{what}, from: {', '.join(INITS)}; auto = keras_initkit.initializer_for"
             f"(activation) (default: {init})")
    parser.add_argument("--depth", type=depth_int, default=depth,
                        help=f"number of hidden layers (default: {depth})")
    parser.add_argument("--width", type=width_int, default=width,
                        help=f"units per hidden layer (default: {width})")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=seed_int, default=0,
                        help="seed for data and weights (default: 0)")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="Keras backend (default: KERAS_BACKEND, else tensorflow)")


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser, with the `study` and `demo` subcommands (see
    `keras_initkit.cli.build_parser`)."""
    parser = _Parser(prog=PROG, description=_DESCRIPTION)
    parser.add_argument("--version", action="version", version=version())
    commands = parser.add_subparsers(dest="command", metavar="{study,demo}", parser_class=_Parser)
    commands.required = True

    study = commands.add_parser(
        "study", help="the classic experiment: per-layer statistics of a deep stack at init",
        description="Feeds D ~ N(0, 1) of shape (batch, width) through depth bias-free "
                    "Dense(width, activation) layers for every activation x init, and "
                    "prints each layer's mean, std, min, max, % exactly zero, % "
                    "saturated and distinct units, then the symmetric/collapsed/saturated/"
                    "exploding combinations. --batchnorm, --dropout, --gradients and "
                    "--steps add the lectures' other lessons.")
    _add_model_options(study, "tanh,relu", "normal:0.01,normal:1.0,glorot_normal,he_normal",
                       depth=10, width=500, many=True)
    study.add_argument("--batch", type=batch_int, default=1000,
                       help="rows of the input batch (default: 1000)")
    study.add_argument("--batchnorm", action="store_true",
                       help="BatchNormalization before each activation (normalizing with "
                            "the batch's statistics)")
    study.add_argument("--dropout", type=rate_float, default=0.0, metavar="P",
                       help="inverted dropout of rate P in [0, 1) after each activation; "
                            "shows each layer's std in training and inference mode "
                            "(default: 0, none)")
    study.add_argument("--gradients", action="store_true",
                       help="back-propagate the task's loss and show each layer's gradient "
                            "RMS (of its kernel, dL/dW, and of its output, dL/dh)")
    study.add_argument("--steps", type=steps_int, default=0, metavar="N",
                       help="then train N full-batch SGD steps on a synthetic task (regress "
                            "a fixed random tanh teacher's outputs) and show everything "
                            "again (default: 0)")
    study.add_argument("--learning-rate", type=positive_float, default=None,
                       metavar="LR", help="SGD learning rate of --steps (default: 0.01)")
    _add_common(study)
    study.add_argument("--plot", type=output_file(PLOT_SUFFIXES), metavar="FILE",
                       help="draw the histograms and mean/std lines to FILE (.png, .pdf, .svg)")
    study.add_argument("--json", type=output_file(None, allow_stdout=True),
                       metavar="FILE", help="write every number as JSON to FILE ('-': stdout, "
                                            "instead of the table)")

    demo = commands.add_parser(
        "demo", help="train on digits with a bad init, then after reinitialize(model)",
        description="Trains a small MLP on scikit-learn's digits twice, with a bad "
                    "initialization and after keras_initkit.reinitialize(model), recording "
                    "both with ActivationStats; writes a run folder (CSV, JSON, "
                    "TensorBoard logs, PNG plots) and prints a diagnosis and the accuracies.")
    _add_model_options(demo, "tanh", "normal:0.01", depth=8, width=64, many=False)
    demo.add_argument("--epochs", type=epochs_int, default=5,
                      help="training epochs per run (default: 5)")
    demo.add_argument("--out", type=output_folder, default=os.path.join("runs", "demo"),
                      help="the run folder (default: runs/demo)")
    _add_common(demo)
    return parser
