"""Running a scenario script on one device and on two, in fresh processes, side by side.

Shared by `test_distributed_stats.py` and `test_distributed_gradients.py`. Logical devices
must be configured before the backend initializes, hence the subprocesses. A script gets
its mode (`single` or `distributed`) as its one argument and prints its result as one
`RESULT <json>` line.
"""

import concurrent.futures
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

ROOT = Path(__file__).resolve().parents[2]
REPLICAS = 2


def needs(backend):
    """Skips unless this session runs `backend` (each scenario runs once in CI) and has it."""
    session = keras.backend.backend()
    if session != backend:
        pytest.skip(f"the {backend} scenario runs in {backend} sessions only (this: {session})")
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")


def run(script, backend, mode):
    """The parsed `RESULT` line of `script` run in `mode` on `backend`, on the CPU."""
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",  # both runs on the CPU, so they compare
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    if backend == "jax":
        env["JAX_PLATFORMS"] = "cpu"
        if mode == "distributed":
            flags = os.environ.get("XLA_FLAGS", "")
            env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={REPLICAS}"
    result = subprocess.run(
        [sys.executable, str(script), mode],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, (
        f"{backend} {mode} run exited with {result.returncode}\n"
        f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
    )
    return json.loads(lines[-1][len("RESULT ") :])


def run_both(script, backend):
    """The single-device and the two-replica run of `script`, at the same time."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        single = pool.submit(run, script, backend, "single")
        distributed = pool.submit(run, script, backend, "distributed")
        return single.result(), distributed.result()
