"""The `keras-initkit` command.

`keras-initkit study` runs the classic initialization experiment (a deep stack of
`Dense` layers fed unit-Gaussian data) for any activations x initializers and reports
each layer's statistics; `keras-initkit demo` trains a small model on scikit-learn's
digits with a bad initialization and again after `reinitialize`, recording both with
`ActivationStats`. `keras-initkit --help` lists the options.

Bad input exits with code 2 and one line on stderr that names the option and the
allowed values; nothing is computed first. The parser (`_args.py`) is standard library
only: the `keras-initkit` command parses before it imports Keras, and imports the
subcommand (`study.py`, `demo.py`) only to run it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from keras_initkit.cli import _args

PROG = _args.PROG


class UsageError(Exception):
    """Bad input found after parsing: reported like an argparse error, exit code 2.

    Example:
    >>> from keras_initkit.cli import UsageError
    >>> str(UsageError("--out: cannot create 'x'"))
    "--out: cannot create 'x'"

    Reference:
    - [argparse](https://docs.python.org/3/library/argparse.html) (exit code 2 on usage errors)
    """


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
    return _args.build_parser()


def _check_backend(requested: str | None) -> None:
    import keras

    if requested is not None and keras.backend.backend() != requested:
        raise UsageError(
            f"--backend {requested}: Keras is already running on {keras.backend.backend()} "
            f"in this process; run the keras-initkit command, or set KERAS_BACKEND={requested}")


def run(args: argparse.Namespace) -> int:
    """Runs the subcommand of parsed arguments; returns the exit code.

    Args:
        args: the `argparse.Namespace` of `build_parser().parse_args(...)`.

    Returns:
        0 on success, 2 on bad input found after parsing (`UsageError`).

    Example:
    >>> from keras_initkit.cli import build_parser, run
    >>> run(build_parser().parse_args(["study", "--activation", "relu", "--init", "he_normal",
    ...     "--depth", "2", "--width", "20", "--batch", "40", "--json", "-"]))
    ... # doctest: +ELLIPSIS
    {...
    0

    Reference:
    - [argparse](https://docs.python.org/3/library/argparse.html)
    """
    try:
        _check_backend(args.backend)
        if args.command == "study":
            from keras_initkit.cli.study import run as run_command
        else:
            from keras_initkit.cli.demo import run as run_command
        return run_command(args)
    except UsageError as error:
        print(f"{PROG} {args.command}: error: {error}", file=sys.stderr)
        return 2


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
    return run(build_parser().parse_args(argv))


__all__ = ["UsageError", "build_parser", "main", "run"]
