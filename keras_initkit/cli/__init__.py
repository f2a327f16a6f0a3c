"""The `keras-initkit` command.

`keras-initkit study` runs the classic initialization experiment (a deep stack of
`Dense` layers fed unit-Gaussian data) for any activations x initializers and reports
each layer's statistics; `keras-initkit demo` trains a small model on scikit-learn's
digits with a bad initialization and again after `reinitialize`, recording both with
`ActivationStats`. `keras-initkit --help` lists the options.

Bad input exits with code 2 and one line on stderr that names the option and the
allowed values; nothing is computed first.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from keras_initkit.cli import _args
from keras_initkit.cli._choices import ACTIVATIONS, INITS, check_init

PROG = "keras-initkit"


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (no usage block) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class UsageError(Exception):
    """Bad input found after parsing: reported like an argparse error, exit code 2.

    Example:
    >>> from keras_initkit.cli import UsageError
    >>> str(UsageError("--out: cannot create 'x'"))
    "--out: cannot create 'x'"

    Reference:
    - [argparse](https://docs.python.org/3/library/argparse.html) (exit code 2 on usage errors)
    """


def _add_model_options(parser: argparse.ArgumentParser, activation: str, init: str,
                       depth: int, width: int, many: bool) -> None:
    what = "comma-separated names" if many else "a name"
    parser.add_argument(
        "--activation", default=activation,
        type=_args.choice_list(ACTIVATIONS),
        help=f"{what}, from: {', '.join(ACTIVATIONS)} (default: {activation})")
    parser.add_argument(
        "--init", default=init, type=_args.choice_list(INITS, check_init),
        help=f"{what}, from: {', '.join(INITS)}; auto = keras_initkit.initializer_for"
             f"(activation) (default: {init})")
    parser.add_argument("--depth", type=_args.depth_int, default=depth,
                        help=f"number of hidden layers (default: {depth})")
    parser.add_argument("--width", type=_args.width_int, default=width,
                        help=f"units per hidden layer (default: {width})")


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser, with the `study` and `demo` subcommands.

    Returns:
        An `argparse.ArgumentParser` whose errors are one line and exit code 2.

    Example:
    >>> from keras_initkit.cli import build_parser
    >>> args = build_parser().parse_args(["study", "--activation", "tanh,relu"])
    >>> args.activation, args.depth, args.width, args.batch
    (['tanh', 'relu'], 10, 500, 1000)

    Reference:
    - [CS231n: weight initialization](https://cs231n.github.io/neural-networks-2/#init)
    """
    parser = _Parser(prog=PROG, description=__doc__.split("\n\n")[1].replace("\n", " "))
    parser.add_argument("--version", action="version", version=_version())
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
    study.add_argument("--batch", type=_args.batch_int, default=1000,
                       help="rows of the input batch (default: 1000)")
    study.add_argument("--batchnorm", action="store_true",
                       help="BatchNormalization before each activation (normalizing with "
                            "the batch's statistics)")
    study.add_argument("--dropout", type=_args.rate_float, default=0.0, metavar="P",
                       help="inverted dropout of rate P in [0, 1) after each activation; "
                            "shows each layer's std in training and inference mode "
                            "(default: 0, none)")
    study.add_argument("--gradients", action="store_true",
                       help="back-propagate the task's loss and show each layer's gradient "
                            "RMS (of its kernel, dL/dW, and of its output, dL/dh)")
    study.add_argument("--steps", type=_args.steps_int, default=0, metavar="N",
                       help="then train N full-batch SGD steps on a synthetic task (regress "
                            "a fixed random tanh teacher's outputs) and show everything "
                            "again (default: 0)")
    study.add_argument("--learning-rate", type=_args.positive_float, default=None,
                       metavar="LR", help="SGD learning rate of --steps (default: 0.01)")
    _add_common(study)
    study.add_argument("--plot", type=_args.output_file(_args.PLOT_SUFFIXES), metavar="FILE",
                       help="draw the histograms and mean/std lines to FILE (.png, .pdf, .svg)")
    study.add_argument("--json", type=_args.output_file(None, allow_stdout=True),
                       metavar="FILE", help="write every number as JSON to FILE ('-': stdout, "
                                            "instead of the table)")

    demo = commands.add_parser(
        "demo", help="train on digits with a bad init, then after reinitialize(model)",
        description="Trains a small MLP on scikit-learn's digits twice, with a bad "
                    "initialization and after keras_initkit.reinitialize(model), recording "
                    "both with ActivationStats; writes a run folder (CSV, JSON, "
                    "TensorBoard logs, PNG plots) and prints a diagnosis and the accuracies.")
    _add_model_options(demo, "tanh", "normal:0.01", depth=8, width=64, many=False)
    demo.add_argument("--epochs", type=_args.epochs_int, default=5,
                      help="training epochs per run (default: 5)")
    demo.add_argument("--out", type=_args.output_folder, default=os.path.join("runs", "demo"),
                      help="the run folder (default: runs/demo)")
    _add_common(demo)
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=_args.seed_int, default=0,
                        help="seed for data and weights (default: 0)")
    parser.add_argument("--backend", choices=_args.BACKENDS, default=None,
                        help="Keras backend (default: KERAS_BACKEND, else tensorflow)")


def _version() -> str:
    from keras_initkit.version import __version__

    return f"{PROG} {__version__}"


def _check_backend(requested: str | None) -> None:
    import keras

    if requested is not None and keras.backend.backend() != requested:
        raise UsageError(
            f"--backend {requested}: Keras is already running on {keras.backend.backend()} "
            f"in this process; run the keras-initkit command, or set KERAS_BACKEND={requested}")


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command with `argv` (default: `sys.argv[1:]`); returns the exit code.

    Args:
        argv: the arguments after the program name.

    Returns:
        0 on success, 2 on bad input.

    Example:
    >>> from keras_initkit.cli import main
    >>> main(["study", "--activation", "tanh", "--init", "glorot_normal", "--depth", "2",
    ...       "--width", "50", "--batch", "100", "--json", "-"])  # doctest: +ELLIPSIS
    {...
    0

    Reference:
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html)
    """
    args = build_parser().parse_args(argv)
    try:
        _check_backend(args.backend)
        if args.command == "study":
            from keras_initkit.cli.study import run

            return run(args)
        from keras_initkit.cli.demo import run

        return run(args)
    except UsageError as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return 2


__all__ = ["UsageError", "build_parser", "main"]
