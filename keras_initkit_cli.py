"""The `keras-initkit` command's entry point: settles the Keras backend before Keras loads.

Keras reads `KERAS_BACKEND` once, when it is first imported, and `import keras_initkit`
imports Keras, so `--backend` has to be applied by a module outside the package. This one
also keeps TensorFlow's C++ start-up log lines (oneDNN, CUDA, CPU features) out of the
command's output; then it runs `keras_initkit.cli.main`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

BACKENDS = ("tensorflow", "jax", "torch")


def _requested_backend(argv: Sequence[str]) -> str | None:
    for index, arg in enumerate(argv):
        if arg == "--backend" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--backend="):
            return arg.split("=", 1)[1]
    return None


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


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `keras-initkit` with `argv` (default: `sys.argv[1:]`); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    backend = _requested_backend(argv)
    if backend in BACKENDS and "keras" not in sys.modules:
        if importlib.util.find_spec(backend) is None:
            print(f"keras-initkit: error: --backend {backend}: {backend} is not installed "
                  f"(pip install 'keras-initkit[{backend}]')", file=sys.stderr)
            return 2
        os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return _import_cli_quietly().main(argv)


if __name__ == "__main__":
    sys.exit(main())
