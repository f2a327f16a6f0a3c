"""The `keras-initkit` command's entry point: parses, then settles the Keras backend before
Keras loads.

Keras reads `KERAS_BACKEND` once, when it is first imported, and `import keras_initkit`
imports Keras, so `--backend` has to be applied by a module outside the package. This one
parses the arguments first with `keras_initkit/cli/_args.py`, loaded by its file path (it
is standard library only), so `--help`, `--version` and bad input answer without importing
Keras or the package. Then it keeps TensorFlow's C++ start-up log lines (oneDNN, CUDA, CPU
features) out of the command's output and runs the subcommand (`keras_initkit.cli.run`).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

BACKENDS = ("tensorflow", "jax", "torch")


def _load_args_module() -> ModuleType:
    """`keras_initkit/cli/_args.py`, loaded by its path: found where `import keras_initkit`
    would find it, without running the package's `__init__` (which imports Keras)."""
    if "keras_initkit" in sys.modules:  # already imported: nothing to save
        from keras_initkit.cli import _args

        return _args
    package = importlib.util.find_spec("keras_initkit")
    if package is None or not package.submodule_search_locations:
        raise ImportError("keras_initkit is not installed")
    path = os.path.join(list(package.submodule_search_locations)[0], "cli", "_args.py")
    spec = importlib.util.spec_from_file_location("_keras_initkit_cli_args", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path!r}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _import_cli_quietly() -> ModuleType:
    """Imports keras_initkit.cli with file descriptor 2 pointed at /dev/null.

    TensorFlow's C++ runtime writes its start-up lines straight to fd 2 before its log
    level applies. Python errors raised by the import are still shown: they propagate
    after stderr is restored.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        from keras_initkit import cli
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return cli


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The parsed arguments; `--help`, `--version` and bad input exit here, before Keras."""
    return _load_args_module().build_parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `keras-initkit` with `argv` (default: `sys.argv[1:]`); returns the exit code."""
    args = parse(list(sys.argv[1:] if argv is None else argv))
    backend = args.backend
    if backend in BACKENDS and "keras" not in sys.modules:
        if importlib.util.find_spec(backend) is None:
            print(f"keras-initkit: error: --backend {backend}: {backend} is not installed "
                  f"(pip install 'keras-initkit[{backend}]')", file=sys.stderr)
            return 2
        os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return _import_cli_quietly().run(args)


if __name__ == "__main__":
    sys.exit(main())
