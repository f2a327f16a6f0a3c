"""`Maxout`: the maximum over groups of channels (parameter-free)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_initkit._checks import check_int

GROUPINGS = ("strided", "contiguous")


def check_positive_int(argument: str, value: Any, low: int) -> int:
    return check_int(argument, value, low, 2**31)


@keras.saving.register_keras_serializable(package="keras_initkit")
class Maxout(keras.layers.Layer):
    """Maxout activation: splits `axis` into `num_units` groups and keeps each group's max.

    The pieces come from the layer before (a Dense or Conv with `num_units * k` channels),
    so a maxout unit computes `max_j (w_j . x + b_j)` (Goodfellow et al. 2013). The layer
    itself has no weights; it changes the shape, which is why it is a layer and not an
    `activation=` (Keras's `Activation` assumes the shape is kept).

    Grouping, and why it matters when porting weights: with C = k * num_units channels,
    - `"strided"` (default, as tensorflow-addons' `Maxout`): unit j takes channels
      j, j + num_units, j + 2 num_units, ...;
    - `"contiguous"` (as pylearn2, Goodfellow's code, and PyTorch's usual
      `.view(B, units, k).max(-1)`): unit j takes channels j k, ..., j k + k - 1.
    Freshly initialized networks behave the same either way, but trained weights from
    one convention give wrong outputs under the other.

    To initialize the layer that feeds it, `initializer_for(maxout_layer)` gives variance
    `1 / (E[max_k^2] fan_in)`: 1, 0.78391, 0.64461, 0.55555 (/ fan_in) for k = 2..5.

    Args:
        num_units: int >= 1, the number of output channels. Must divide the size of
            `axis`.
        axis: int, the channel axis to reduce. Defaults to `-1` (use `1` for
            channels-first data).
        grouping: `"strided"` (default) or `"contiguous"`.

    Example:
    >>> x = np.arange(6, dtype="float32")[None]
    >>> keras.ops.convert_to_numpy(keras_initkit.layers.Maxout(3)(x)).tolist()
    [[3.0, 4.0, 5.0]]
    >>> layer = keras_initkit.layers.Maxout(3, grouping="contiguous")
    >>> keras.ops.convert_to_numpy(layer(x)).tolist()
    [[1.0, 3.0, 5.0]]

    Reference:
    - [Goodfellow et al., 2013](https://arxiv.org/abs/1302.4389)
    - [Tseran & Montufar, 2023](https://arxiv.org/abs/2301.06956) (initialization)
    """

    def __init__(
        self, num_units: int, axis: int = -1, grouping: str = "strided", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.num_units = check_positive_int("num_units", num_units, 1)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"axis must be an int; got {axis!r}")
        if grouping not in GROUPINGS:
            raise ValueError(
                f"grouping must be one of 'strided', 'contiguous'; got {grouping!r}"
            )
        self.axis = axis
        self.grouping = grouping
        self.pieces: int | None = None
        self.supports_masking = True

    def _axis(self, rank: int) -> int:
        if not -rank <= self.axis < rank:
            raise ValueError(
                f"axis must index the input's {rank} axes; got axis={self.axis}"
            )
        return self.axis % rank

    def build(self, input_shape: Any) -> None:
        axis = self._axis(len(input_shape))
        channels = input_shape[axis]
        if channels is None:
            raise ValueError(
                f"Maxout needs a known size on axis {self.axis}; got input shape {input_shape}"
            )
        if channels % self.num_units:
            raise ValueError(
                f"num_units must divide the {channels} channels on axis {self.axis}; "
                f"got num_units={self.num_units}"
            )
        self.pieces = channels // self.num_units
        self.input_spec = keras.layers.InputSpec(ndim=len(input_shape), axes={axis: channels})

    def call(self, inputs: Any) -> Any:
        axis = self.axis % len(inputs.shape)
        shape = list(ops.shape(inputs))
        before, after = shape[:axis], shape[axis + 1:]
        if self.grouping == "strided":
            grouped = ops.reshape(inputs, before + [self.pieces, self.num_units] + after)
            return ops.max(grouped, axis=axis)
        grouped = ops.reshape(inputs, before + [self.num_units, self.pieces] + after)
        return ops.max(grouped, axis=axis + 1)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        shape = list(input_shape)
        shape[self._axis(len(shape))] = self.num_units
        return tuple(shape)

    def nonlinearity_spec(self) -> tuple[str, Any]:
        """`("maxout", pieces)`, for `calculate_gain` and `initializer_for`."""
        if self.pieces is None:
            raise ValueError(
                f"Maxout layer {self.name!r} is not built, so its number of pieces is not "
                "known yet; call it on data first or use calculate_gain('maxout', pieces)"
            )
        return "maxout", self.pieces

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_units": self.num_units,
            "axis": self.axis,
            "grouping": self.grouping,
        }
