"""Runs every script in examples/ in a fresh process; each must exit with code 0.

Every example accepts `--out DIR` for the files it writes. The subprocess inherits the
environment, so it runs on the same KERAS_BACKEND as the test session. The selected
examples run two at a time (one per core of the CI machine), each with one OpenMP thread,
so they take half the wall time and torch's thread pools do not fight over the cores.
"""

import concurrent.futures
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
PARALLEL = 2


def _run(script, out_dir):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(script), "--out", str(out_dir)],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.fixture(scope="module")
def example_runs(request, tmp_path_factory):
    """`{example stem: Future of its CompletedProcess}` for the selected examples, started
    together on a pool of `PARALLEL` workers."""
    selected = [
        item.callspec.params["script"] for item in request.session.items
        if getattr(item, "originalname", None) == "test_example_runs"
    ]
    with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
        yield {
            script.stem: pool.submit(_run, script, tmp_path_factory.mktemp(script.stem))
            for script in selected
        }


# A line each example must print, beyond its own asserts: the number that makes its point.
EXPECTED = {
    "reinitialize_saved_model": r"reloaded initializers: \['HeNormal', 'LecunNormal'\]",
    "residual_fixup": r"at init: \|trunk - stem\| max 0\.0e\+00",
    "lsuv": r"test accuracy after 8 epochs: N\(0, 0\.05\^2\) [0-9.]+, lsuv (0\.[89]|1\.0)",
    "custom_activation": r"calculate_gain\(isru\) = 1\.7042",
    "pretrain_rbm": r"N\(0, 0\.01\^2\) 0\.[01][0-9]*, RBM-pretrained 0\.[6-9]",
    "load_saved_model": r"max \|reloaded - trained\| prediction: 0\.0e\+00[\s\S]*"
    r"Could not locate class 'MaxoutDense'",
}


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(script, example_runs):
    result = example_runs[script.stem].result()
    assert result.returncode == 0, (
        f"{script.name} exited with {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
    if script.stem == "quickstart":
        match = re.search(r"test accuracy after reload: ([0-9.]+)", result.stdout)
        assert match, f"no accuracy line in the output:\n{result.stdout}"
        assert float(match.group(1)) > 0.8, result.stdout
    if script.stem in EXPECTED:
        assert re.search(EXPECTED[script.stem], result.stdout), result.stdout


def test_examples_exist():
    assert any(p.stem == "quickstart" for p in EXAMPLES)
