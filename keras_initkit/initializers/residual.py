"""Initializers for residual branches: zero the last layer, scale the others (Fixup)."""

from __future__ import annotations

from typing import Any

import keras

from keras_initkit.initializers._checks import check_dtype, check_int, check_shape
from keras_initkit.initializers._config import VersionedConfig, versioned


@keras.saving.register_keras_serializable(package="keras_initkit")
class ResidualZeros(VersionedConfig, keras.initializers.Initializer):
    """Zeros, for the last layer of each residual branch ("first layer MSRA, last layer 0").

    A branch whose last kernel (or trailing normalization scale) is zero starts as the
    identity, `x + F(x) = x`, so a deep residual network trains from the start like a
    shallow one (Goyal et al. 2017 zero the last BN gamma; Fixup zeroes the last
    convolution). The weights are zero, but the gradient into them is not: the branch
    starts learning at the first step. Distinct from `keras.initializers.Zeros` only in
    its name, so a model's config says why the weight is zero.

    Example:
    >>> branch_out = keras.layers.Dense(
    ...     16, kernel_initializer=keras_initkit.initializers.ResidualZeros())

    Reference:
    - [Goyal et al., 2017](https://arxiv.org/abs/1706.02677) (zero-gamma)
    - [Zhang et al., 2019](https://arxiv.org/abs/1901.09321) (Fixup)
    """

    def __call__(self, shape: Any, dtype: Any = None) -> Any:
        return keras.ops.zeros(check_shape(shape, allow_empty=True), dtype=check_dtype(dtype))

    def get_config(self) -> dict[str, Any]:
        return versioned({})


@keras.saving.register_keras_serializable(package="keras_initkit")
class Fixup(VersionedConfig, keras.initializers.Initializer):
    """A base initializer scaled by `num_branches ** (-1 / (2 * branch_depth - 2))` (Fixup).

    Fixup (Zhang et al. 2019) trains deep residual networks without normalization:
    initialize the layers inside each of the L residual branches with a standard scheme
    (He) scaled by `L^(-1/(2m-2))`, m being the number of weighted layers per branch, and
    zero the last layer of each branch (`ResidualZeros`). The scale keeps the output
    variance of the whole residual stack O(1) however many branches there are: for
    ResNet-50's 16 bottleneck branches (m=3) it is `16^(-1/4) = 0.5`.

    Args:
        base: the initializer to scale, as an object or an identifier that
            `keras_initkit.initializers.get` resolves. Defaults to `"he_normal"`.
        num_branches: int in [1, 2**31], L, the number of residual branches in the network.
        branch_depth: int in [2, 2**31], m, the number of weighted layers in each branch.

    Example:
    >>> init = keras_initkit.initializers.Fixup("he_normal", num_branches=16, branch_depth=3)
    >>> init.factor
    0.5

    Reference:
    - [Zhang, Dauphin & Ma, 2019](https://arxiv.org/abs/1901.09321)
    """

    def __init__(
        self, base: Any = "he_normal", num_branches: int = 1, branch_depth: int = 2
    ) -> None:
        from keras_initkit.initializers import get_as

        # The bounds keep the factor a normal float32 (>= 2**-31) instead of 0.
        self.num_branches = check_int("num_branches", num_branches, 1, 2**31)
        self.branch_depth = check_int("branch_depth", branch_depth, 2, 2**31)
        if base is None:
            raise ValueError("base must be an initializer or an identifier; got None")
        self.base = get_as("base", base)

    @property
    def factor(self) -> float:
        """The multiplier `num_branches ** (-1 / (2 * branch_depth - 2))`."""
        return float(self.num_branches ** (-1.0 / (2 * self.branch_depth - 2)))

    def __call__(self, shape: Any, dtype: Any = None) -> Any:
        dtype = check_dtype(dtype)
        shape = check_shape(shape, allow_empty=True)
        if 0 in shape:
            return keras.ops.zeros(shape, dtype=dtype)
        values = self.base(shape, dtype=dtype)
        return keras.ops.cast(values * self.factor, dtype)

    def for_layer(self, layer: keras.layers.Layer, weight: Any = None) -> Fixup:
        """A copy whose base uses `layer`'s layer-aware fans (see `VarianceScaling.for_layer`)."""
        if not hasattr(self.base, "for_layer"):
            raise ValueError(
                f"base {self.base!r} has no layer-aware fans; use a keras_initkit "
                "VarianceScaling-family base"
            )
        return Fixup(self.base.for_layer(layer, weight), self.num_branches, self.branch_depth)

    def get_config(self) -> dict[str, Any]:
        return versioned(
            {
                "base": keras.saving.serialize_keras_object(self.base),
                "num_branches": self.num_branches,
                "branch_depth": self.branch_depth,
            }
        )
