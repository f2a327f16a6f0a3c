"""`keras-initkit --help`, `--version` and bad input answer without importing Keras.

The command parses with `keras_initkit/cli/_args.py` loaded by its path (standard library
only) and imports the package, Keras and the backend only to run a subcommand. Each case
runs the entry point in a fresh interpreter and lists the heavy modules it imported (a
check of what is imported, not a timing). The name lists the parser carries are checked
against the package's own, which the parser must not import.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keras_initkit.cli import _args, _choices
from keras_initkit.initializers import nonlinearity_names
from keras_initkit.version import __version__

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("keras", "keras_initkit", "tensorflow", "jax", "torch", "numpy")

_PROBE = """
import json, sys
import keras_initkit_cli
try:
    code = keras_initkit_cli.main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
heavy = sorted(name for name in sys.modules if name.split(".")[0] in {heavy!r})
print(json.dumps({{"code": code, "heavy": sorted({{n.split(".")[0] for n in heavy}})}}))
"""


def _probe(*args):
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(heavy=set(HEAVY)), *args], capture_output=True,
        text=True, env=environment, timeout=120, check=False)
    return result, json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["study", "--help"],
        ["demo", "--help"],
        ["study", "--init", "he_normall"],
        ["study", "--depth", "0"],
        ["--backend", "mxnet"],
        [],
    ],
)
def test_parsing_imports_no_keras_and_no_backend(args):
    result, report = _probe(*args)
    assert report["code"] in (0, 2), result.stderr
    assert report["heavy"] == [], (args, report)


def test_version_is_the_package_version():
    result, report = _probe("--version")
    assert result.stdout.splitlines()[0] == f"keras-initkit {__version__}"
    assert report == {"code": 0, "heavy": []}


def test_a_subcommand_does_import_keras():
    # The check above would pass if nothing ever imported Keras: a real run must.
    result, report = _probe("study", "--activation", "relu", "--init", "he_normal",
                            "--depth", "1", "--width", "4", "--batch", "4", "--json", "-")
    assert report["code"] == 0, result.stderr
    assert "keras" in report["heavy"] and "keras_initkit" in report["heavy"]
    assert json.loads(result.stdout[: result.stdout.rindex("\n{")])["results"]


def test_the_parser_names_equal_the_package_names():
    excluded = ("glu", "log_softmax", "maxout", "prelu", "softmax", "sparsemax")
    assert tuple(n for n in nonlinearity_names() if n not in excluded) == _args.ACTIVATIONS
    assert set(_args.NAMED_INITS) == set(_choices._NAMED)
