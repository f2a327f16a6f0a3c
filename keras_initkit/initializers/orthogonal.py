"""`Orthogonal`: a (semi-)orthogonal kernel scaled by a gain."""

from __future__ import annotations

from typing import Any

import keras

from keras_initkit.initializers import gain as gain_lib
from keras_initkit.initializers._checks import (
    check_dtype,
    check_positive,
    check_shape,
    dtype_max,
)
from keras_initkit.initializers._config import VersionedConfig, versioned


@keras.saving.register_keras_serializable(package="keras_initkit")
class Orthogonal(VersionedConfig, keras.initializers.Orthogonal):
    """Orthogonal initializer: `gain * Q`, with `Q` (semi-)orthogonal, scaled for an activation.

    As in Keras, the kernel is flattened to `(prod(shape[:-1]), shape[-1])` (for a
    convolution: all taps and input channels form the rows), a normal matrix of that size
    is factored as `QR`, and `Q` is made unique by the signs of `diag(R)`, so it is drawn
    from the Haar measure. Rows or columns, whichever are fewer, are orthonormal.

    What Keras lacks: the gain for the following activation (`nonlinearity=`,
    `param=`), as PyTorch users write `orthogonal_(w, gain=calculate_gain("tanh"))`.
    The effective gain is `gain * calculate_gain(nonlinearity, param)`.

    The first two arguments are Keras's, in Keras's order (`Orthogonal(gain, seed)`).

    Args:
        gain: positive float multiplying the orthogonal matrix. Defaults to `1.0`.
        seed: int, `keras.random.SeedGenerator` or `None` (Keras's seed contract).
        nonlinearity: the activation that follows (see `calculate_gain`), or `None`
            (linear). Defaults to `None`.
        param: the nonlinearity's parameter.

    Example:
    >>> init = keras_initkit.initializers.Orthogonal(seed=0)
    >>> w = keras.ops.convert_to_numpy(init((64, 64)))
    >>> bool(np.allclose(w.T @ w, np.eye(64), atol=1e-5))
    True

    Reference:
    - [Saxe et al., 2014](https://arxiv.org/abs/1312.6120)
    """

    def __init__(
        self,
        gain: float = 1.0,
        seed: Any = None,
        nonlinearity: Any = None,
        param: Any = None,
    ) -> None:
        gain = check_positive("gain", gain)
        nonlinearity, self._nonlinearity_gain = gain_lib.named_gain(nonlinearity, param)
        if not gain * self._nonlinearity_gain <= dtype_max("float64"):
            raise ValueError(
                "gain is too large: gain * calculate_gain(nonlinearity) overflows; got "
                f"gain={gain!r}, nonlinearity={nonlinearity!r}"
            )
        super().__init__(gain=gain, seed=seed)
        self.nonlinearity = nonlinearity
        self.param = param

    @property
    def effective_gain(self) -> float:
        """`gain * calculate_gain(nonlinearity, param)`."""
        return self.gain * self._nonlinearity_gain

    def __call__(self, shape: Any, dtype: Any = None) -> Any:
        shape = check_shape(shape, allow_empty=True)
        if len(shape) < 2:
            raise ValueError(
                f"shape must have rank >= 2 for Orthogonal (a matrix or a kernel); got {shape}"
            )
        dtype = check_dtype(dtype)
        if 0 in shape:  # an empty weight, as Keras returns it
            return keras.ops.zeros(shape, dtype=dtype)
        if not self.effective_gain <= dtype_max(dtype):
            raise ValueError(
                f"gain is too large for dtype {dtype} (largest value {dtype_max(dtype):.5g}); "
                f"got gain={self.gain!r}, nonlinearity={self.nonlinearity!r}"
            )
        rows = 1
        for dim in shape[:-1]:
            rows *= dim
        cols = shape[-1]
        # Drawn in the requested dtype (Keras's random stream); factored in float32 at
        # least, since QR in float16 is unsupported or inaccurate on some backends.
        flat_shape = (max(rows, cols), min(rows, cols))
        matrix = keras.random.normal(flat_shape, dtype=dtype, seed=self.seed)
        if dtype in ("float16", "bfloat16"):
            matrix = keras.ops.cast(matrix, "float32")
        q, r = keras.ops.qr(matrix)
        q = q * keras.ops.sign(keras.ops.diagonal(r))
        if rows < cols:
            q = keras.ops.transpose(q)
        values = self.effective_gain * keras.ops.reshape(q, shape)
        return keras.ops.cast(values, dtype)

    def get_config(self) -> dict[str, Any]:
        return versioned(
            {
                "gain": self.gain,
                "nonlinearity": self.nonlinearity,
                "param": self.param,
                "seed": super().get_config()["seed"],
            }
        )
