"""Shared pytest set-up: quiet backends, a fixed seed, and the doctest namespace."""

import importlib.util
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Under JAX most of a test's time is XLA compiling tiny programs that then run for a few
# steps: LLVM's expensive passes do not pay for themselves there (tests/stats/
# test_gradient_stats.py took 22% less time with them off). A user's XLA_FLAGS win.
if os.environ.get("KERAS_BACKEND") == "jax":
    os.environ.setdefault(
        "XLA_FLAGS",
        "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true",
    )

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_initkit  # noqa: E402

# A backend's native fold imports that backend's library: its doctests are collected only
# where the library is installed (the package itself imports it only on that backend).
collect_ignore = [
    f"keras_initkit/stats/_fold_{library}.py"
    for library in ("tensorflow", "torch")
    if importlib.util.find_spec(library) is None
]


@pytest.fixture(autouse=True)
def _seed_everything():
    keras.utils.set_random_seed(1337)
    yield


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace.update(keras=keras, np=np, keras_initkit=keras_initkit)
