"""`MaxoutDense`: a maxout unit with its own kernel, initialized to preserve the signal."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_initkit._checks import check_bool, check_int
from keras_initkit.initializers import LecunNormal, get_as
from keras_initkit.layers.maxout import check_positive_int

# Checked before allocating: a config with pieces=10**9 must fail clearly, not try to
# allocate hundreds of gigabytes.
MAX_KERNEL_SIZE = 2**31


def _get(module: Any, argument: str, identifier: Any) -> Any:
    """`module.get(identifier)` with an error that names the argument."""
    try:
        return module.get(identifier)
    except (ValueError, TypeError):
        raise ValueError(
            f"{argument} must be None, a name or an object of "
            f"keras.{module.__name__.split('.')[-1]}; got {identifier!r}"
        ) from None


@keras.saving.register_keras_serializable(package="keras_initkit")
class MaxoutDense(keras.layers.Layer):
    """Maxout units as Goodfellow et al. define them: `max_j (x W_j + b_j)`, j = 1..pieces.

    One kernel of shape `(input_dim, units * pieces)` (a plain Dense kernel, so the
    shape-based fans are the true ones); piece j of unit i is column `i * pieces + j`
    (contiguous, as pylearn2). The default kernel initializer is the forward-preserving
    maxout scale `LecunNormal(nonlinearity="maxout", param=pieces)`: variance
    `1 / (E[max_k^2] fan_in)` = 1, 0.78391, 0.64461, 0.55555 (/ fan_in) for k = 2..5,
    which keeps a 50-layer stack at unit scale where LeCun's (gain 1) explodes past 100
    for k = 3. Maxout with k >= 3 still collapses different inputs onto one direction in
    deep plain stacks; pylearn2 advises k = 2 without dropout.

    Args:
        units: int >= 1, the number of maxout units (output size).
        pieces: int >= 2, the number of linear pieces per unit.
        use_bias: whether the pieces have biases. Defaults to `True`.
        kernel_initializer: defaults to the maxout scale above.
        bias_initializer: defaults to `"zeros"`.
        kernel_regularizer: optional regularizer for the kernel.
        bias_regularizer: optional regularizer for the bias.
        kernel_constraint: optional constraint (Goodfellow used a max-norm).
        bias_constraint: optional constraint for the bias.

    Example:
    >>> layer = keras_initkit.layers.MaxoutDense(16, pieces=3)
    >>> tuple(layer(np.ones((2, 8), "float32")).shape)
    (2, 16)
    >>> tuple(layer.kernel.shape)
    (8, 48)

    Reference:
    - [Goodfellow et al., 2013](https://arxiv.org/abs/1302.4389)
    - [Tseran & Montufar, 2023](https://arxiv.org/abs/2301.06956)
    """

    def __init__(
        self,
        units: int,
        pieces: int,
        use_bias: bool = True,
        kernel_initializer: Any = None,
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units, 1)
        self.pieces = check_int("pieces", pieces, 2, 2**31)
        self.use_bias = check_bool("use_bias", use_bias)
        if kernel_initializer is None:
            kernel_initializer = LecunNormal(nonlinearity="maxout", param=self.pieces)
        self.kernel_initializer = get_as("kernel_initializer", kernel_initializer)
        self.bias_initializer = get_as("bias_initializer", bias_initializer)
        self.kernel_regularizer = _get(
            keras.regularizers, "kernel_regularizer", kernel_regularizer
        )
        self.bias_regularizer = _get(keras.regularizers, "bias_regularizer", bias_regularizer)
        self.kernel_constraint = _get(keras.constraints, "kernel_constraint", kernel_constraint)
        self.bias_constraint = _get(keras.constraints, "bias_constraint", bias_constraint)
        self.supports_masking = True

    def build(self, input_shape: Any) -> None:
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                f"MaxoutDense needs a known last dimension; got input shape {input_shape}"
            )
        width = self.units * self.pieces
        if int(input_dim) * width > MAX_KERNEL_SIZE:
            raise ValueError(
                f"units * pieces * input_dim = {self.units} * {self.pieces} * {input_dim} "
                f"weights exceed {MAX_KERNEL_SIZE} (8 GB in float32); got units={self.units}, "
                f"pieces={self.pieces}"
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_dim, width),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(width,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: input_dim})

    def pre_activation(self, inputs: Any) -> Any:
        """The pieces `x W + b`, shape `(..., units * pieces)`, before the max."""
        pieces = ops.matmul(inputs, self.kernel)
        if self.bias is not None:
            pieces = ops.add(pieces, self.bias)
        return pieces

    def call(self, inputs: Any) -> Any:
        pieces = self.pre_activation(inputs)
        shape = list(ops.shape(pieces))[:-1] + [self.units, self.pieces]
        return ops.max(ops.reshape(pieces, shape), axis=-1)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return tuple(input_shape[:-1]) + (self.units,)

    def nonlinearity_spec(self) -> tuple[str, Any]:
        """`("maxout", pieces)`, for `calculate_gain` and `initializer_for`."""
        return "maxout", self.pieces

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "pieces": self.pieces,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
        }
