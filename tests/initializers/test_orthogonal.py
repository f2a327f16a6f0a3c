"""Orthogonal: (semi-)orthogonality for every kernel rank, gain, dtypes."""

import keras
import numpy as np
import pytest

from keras_initkit import initializers as ki
from keras_initkit.initializers import calculate_gain


@pytest.mark.parametrize("shape", [(64, 64), (100, 30), (30, 100), (3, 3, 16, 32), (3, 8, 4)])
def test_rows_or_columns_are_orthonormal(shape):
    w = keras.ops.convert_to_numpy(ki.Orthogonal(seed=0)(shape)).astype(np.float64)
    flat = w.reshape(-1, shape[-1])
    small = min(flat.shape)
    gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-5)


def test_gain_and_nonlinearity_multiply():
    init = ki.Orthogonal(gain=2.0, nonlinearity="tanh", seed=1)
    w = keras.ops.convert_to_numpy(init((50, 50))).astype(np.float64)
    expected = 2.0 * calculate_gain("tanh")
    np.testing.assert_allclose(w.T @ w, expected**2 * np.eye(50), atol=1e-4)
    assert init.effective_gain == pytest.approx(expected)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_dtypes(dtype):
    w = ki.Orthogonal(seed=0)((16, 16), dtype=dtype)
    name = keras.backend.standardize_dtype(w.dtype)
    assert name == dtype or (dtype == "float64" and keras.backend.backend() == "jax")


def test_is_a_keras_orthogonal():
    # So Keras code that checks for its Orthogonal (and users' isinstance checks) accept it.
    assert isinstance(ki.Orthogonal(), keras.initializers.Orthogonal)
