"""Tests for `compute_fans`: Keras's shape convention and layer-aware fans on real layers."""

import functools
import inspect

import keras
import numpy as np
import pytest
from keras.src.initializers.random_initializers import compute_fans as keras_compute_fans

from keras_initkit.initializers import Fans, compute_fans

L = keras.layers

# --- shape path -----------------------------------------------------------------------------

SHAPES = [
    # (shape, input_axes, output_axes, expected)
    ((), None, None, (1, 1)),
    ((7,), None, None, (7, 7)),
    ((3, 4), None, None, (3, 4)),
    ((5, 3, 4), None, None, (15, 20)),  # Conv1D kernel (k, in, out)
    ((3, 3, 32, 1), None, None, (288, 9)),  # Keras's depthwise convention
    ((3, 3, 3, 8, 16), None, None, (216, 432)),
    ((2, 3, 4, 5, 6), None, None, (120, 144)),
    ((16, 2, 8), [0], [1, 2], (16, 16)),  # MHA query kernel
    ((2, 8, 16), [0, 1], [2], (16, 16)),  # MHA output kernel
    ((3, 4, 5), [-1], [0, -2], (5, 12)),
    ((3, 4, 5), 2, 0, (5, 3)),  # a single int axis
    ((3, 4), [0], None, (3, 4)),  # one of the two axes alone is ignored, as in Keras
    ((3, 4, 5), None, [2], (12, 15)),
]


@pytest.mark.parametrize("shape, input_axes, output_axes, expected", SHAPES)
def test_shape_fans_follow_keras_convention(shape, input_axes, output_axes, expected):
    fans = compute_fans(shape, input_axes, output_axes)
    assert isinstance(fans, Fans)
    assert tuple(fans) == expected


@pytest.mark.parametrize("shape, input_axes, output_axes, expected", SHAPES)
def test_shape_fans_match_keras_private_compute_fans(shape, input_axes, output_axes, expected):
    keras_axes = [[a] if isinstance(a, int) else a for a in (input_axes, output_axes)]
    assert tuple(compute_fans(shape, input_axes, output_axes)) == tuple(
        keras_compute_fans(shape, *keras_axes)
    )


@pytest.mark.parametrize(
    "shape", [(np.int64(3), np.int32(4)), [3, 3, 8, 16], np.array([5, 3, 4])], ids=repr
)
def test_shape_fans_accept_int_like_shapes(shape):
    assert tuple(compute_fans(shape)) == tuple(keras_compute_fans(tuple(int(d) for d in shape)))


def test_fans_unpack_and_name_fields():
    fan_in, fan_out = compute_fans((3, 4))
    assert (fan_in, fan_out) == (3, 4)
    fans = compute_fans((3, 4))
    assert (fans.fan_in, fans.fan_out) == (3, 4) and fans == (3, 4)


# --- layer path -----------------------------------------------------------------------------


def _make(cls, args, kwargs):
    """`cls(*args, **kwargs)` with zero initializers: fans ignore the values, and JAX
    compiles every random initializer per shape (about a second each on a small CPU)."""
    for name in inspect.signature(cls.__init__).parameters:
        if name.endswith("_initializer"):
            kwargs.setdefault(name, "zeros")
    return cls(*[a() if isinstance(a, functools.partial) else a for a in args], **kwargs)


def _layer(cls, *args, **kwargs):
    return functools.partial(_make, cls, args, kwargs)


def _built(factory, input_shapes):
    """A built layer: `build` for one shape with a `None` batch, else called on ones."""
    layer = factory()
    if len(input_shapes) == 1 and input_shapes[0][0] is None:
        layer.build(input_shapes[0])
    else:
        layer(*[keras.ops.ones(s) for s in input_shapes])
    assert layer.built
    return layer


@functools.cache
def _shared(factory, input_shapes):
    return _built(factory, input_shapes)  # read-only reuse (the attention call is slow on JAX)


MHA, QV = _layer(L.MultiHeadAttention, num_heads=2, key_dim=8), ((1, 5, 16), (1, 5, 16))
BILSTM = _layer(L.Bidirectional, _layer(L.LSTM, 6, name="enc"))
SEQ = ((None, 3, 5),)
_P = pytest.param

LAYERS = [
    # (factory, input shapes, weight (None, name or path, or layer -> variable), kernel, fans)
    _P(_layer(L.Dense, 4), ((None, 5),), None, (5, 4), (5, 4), id="dense"),
    _P(_layer(L.Dense, 4), SEQ, "kernel", (5, 4), (5, 4), id="dense-rank3-input"),
    _P(_layer(L.Conv1D, 6, 3), ((None, 10, 4),), None, (3, 4, 6), (12, 18), id="conv1d"),
    _P(_layer(L.Conv2D, 16, 3), ((None, 8, 8, 8),), None, (3, 3, 8, 16), (72, 144), id="conv2d"),
    _P(_layer(L.Conv3D, 4, 3), ((None, 6, 6, 6, 2),), None, (3, 3, 3, 2, 4), (54, 108),
       id="conv3d"),
    _P(_layer(L.Conv2D, 16, 3, groups=4), ((None, 8, 8, 8),), None, (3, 3, 2, 16), (18, 36),
       id="conv2d-groups4"),
    _P(_layer(L.Conv2D, 16, 3, strides=2), ((None, 8, 8, 8),), None, (3, 3, 8, 16), (72, 36),
       id="conv2d-strides2"),
    # Acceptance criterion: depthwise fan_in is 9, not Keras's 288.
    _P(_layer(L.DepthwiseConv2D, 3), ((None, 8, 8, 32),), None, (3, 3, 32, 1), (9, 9),
       id="depthwise2d"),
    _P(_layer(L.DepthwiseConv2D, 3, depth_multiplier=2), ((None, 8, 8, 32),), None,
       (3, 3, 32, 2), (9, 18), id="depthwise2d-multiplier2"),
    _P(_layer(L.DepthwiseConv2D, 3, strides=2), ((None, 8, 8, 32),), None, (3, 3, 32, 1),
       (9, 2.25), id="depthwise2d-strides2"),
    _P(_layer(L.DepthwiseConv1D, 3), ((None, 10, 4),), None, (3, 4, 1), (3, 3),
       id="depthwise1d"),
    _P(_layer(L.SeparableConv2D, 16, 3, depth_multiplier=2), ((None, 8, 8, 4),),
       "depthwise_kernel", (3, 3, 4, 2), (9, 18), id="separable2d-depthwise"),
    _P(_layer(L.SeparableConv2D, 16, 3, depth_multiplier=2), ((None, 8, 8, 4),),
       "pointwise_kernel", (1, 1, 8, 16), (8, 16), id="separable2d-pointwise"),
    _P(_layer(L.SeparableConv1D, 6, 3), ((None, 10, 4),), "pointwise_kernel", (1, 4, 6),
       (4, 6), id="separable1d-pointwise"),
    # Acceptance criterion: transposed kernel (3, 3, filters, in) has fan_in 3 * 3 * 8.
    _P(_layer(L.Conv2DTranspose, 16, 3), ((None, 8, 8, 8),), None, (3, 3, 16, 8), (72, 144),
       id="conv2d-transpose"),
    _P(_layer(L.Conv2DTranspose, 16, 3, strides=2), ((None, 8, 8, 8),), None, (3, 3, 16, 8),
       (18, 144), id="conv2d-transpose-strides2"),
    _P(_layer(L.Conv1DTranspose, 16, 3), ((None, 10, 8),), None, (3, 16, 8), (24, 48),
       id="conv1d-transpose"),
    _P(_layer(L.Conv3DTranspose, 4, 3), ((None, 4, 4, 4, 2),), None, (3, 3, 3, 4, 2),
       (54, 108), id="conv3d-transpose"),
    _P(_layer(L.EinsumDense, "ab,bc->ac", output_shape=4), ((None, 5),), None, (5, 4), (5, 4),
       id="einsum-2d"),
    _P(_layer(L.EinsumDense, "abc,cde->abde", output_shape=(None, 4, 8)), ((None, 5, 16),),
       None, (16, 4, 8), (16, 32), id="einsum-3d"),
    _P(MHA, QV, lambda layer: layer.query_dense.kernel, (16, 2, 8), (16, 16),
       id="mha-query-variable"),
    _P(MHA, QV, "query/kernel", (16, 2, 8), (16, 16), id="mha-query-path"),
    _P(MHA, QV, "key/kernel", (16, 2, 8), (16, 16), id="mha-key-path"),
    _P(MHA, QV, lambda layer: layer.output_dense.kernel, (2, 8, 16), (16, 16),
       id="mha-output-variable"),
    _P(MHA, QV, "attention_output/kernel", (2, 8, 16), (16, 16), id="mha-output-path"),
    _P(MHA, QV, None, (16, 2, 8), (16, 16), id="mha-default-is-query"),
    _P(_layer(L.Embedding, 100, 8), ((None, 3),), None, (100, 8), (1, 8), id="embedding"),
    _P(_layer(L.LSTM, 6), SEQ, None, (5, 24), (5, 6), id="lstm-kernel"),
    _P(_layer(L.LSTM, 6), SEQ, "recurrent_kernel", (6, 24), (6, 6), id="lstm-recurrent"),
    _P(_layer(L.GRU, 6), SEQ, "kernel", (5, 18), (5, 6), id="gru-kernel"),
    _P(_layer(L.GRU, 6), SEQ, "recurrent_kernel", (6, 18), (6, 6), id="gru-recurrent"),
    _P(_layer(L.SimpleRNN, 6), SEQ, None, (5, 6), (5, 6), id="simple-rnn"),
    _P(_layer(L.LSTMCell, 6), ((None, 5),), None, (5, 24), (5, 6), id="lstm-cell"),
    _P(_layer(type("MyLSTMCell", (L.LSTMCell,), {}), 6), ((None, 5),), None, (5, 24), (5, 6),
       id="lstm-cell-subclass"),
    _P(_layer(L.RNN, _layer(L.LSTMCell, 6)), SEQ, None, (5, 24), (5, 6), id="rnn-of-lstm-cell"),
    _P(BILSTM, SEQ, None, (5, 24), (5, 6), id="bidirectional-default"),
    _P(BILSTM, SEQ, lambda layer: layer.forward_layer.cell.kernel, (5, 24), (5, 6),
       id="bidirectional-forward-kernel"),
    _P(BILSTM, SEQ, lambda layer: layer.backward_layer.cell.recurrent_kernel, (6, 24), (6, 6),
       id="bidirectional-backward-recurrent"),
    _P(BILSTM, SEQ, "backward_enc/lstm_cell/kernel", (5, 24), (5, 6),
       id="bidirectional-backward-path"),
    _P(_layer(L.ConvLSTM2D, 4, 3), ((None, 3, 8, 8, 2),), None, (3, 3, 2, 16), (18, 36),
       id="conv-lstm2d"),
    _P(_layer(L.ConvLSTM2D, 4, 3), ((None, 3, 8, 8, 2),), "recurrent_kernel", (3, 3, 4, 16),
       (36, 36), id="conv-lstm2d-recurrent"),
    _P(_layer(L.TimeDistributed, _layer(L.Dense, 4)), SEQ, None, (5, 4), (5, 4),
       id="time-distributed-dense"),  # "other wrappers are searched for the weight"
]


@pytest.mark.parametrize("factory, input_shapes, weight, kernel_shape, expected", LAYERS)
def test_layer_fans(factory, input_shapes, weight, kernel_shape, expected):
    layer = _shared(factory, input_shapes)
    if callable(weight):
        weight = weight(layer)
    fans = compute_fans(layer, weight=weight)
    assert isinstance(fans, Fans)
    assert tuple(fans) == expected
    # The kernel layout the expected fans assume is the one Keras really builds.
    if weight is None or isinstance(weight, str):
        assert kernel_shape in [tuple(v.shape) for v in layer.weights]
    else:
        assert tuple(weight.shape) == kernel_shape


def test_depthwise_layer_fans_differ_from_shape_fans():
    layer = _built(_layer(L.DepthwiseConv2D, 3), ((None, 8, 8, 32),))
    assert tuple(compute_fans(tuple(layer.kernel.shape))) == (288, 9)  # Keras's convention
    assert tuple(compute_fans(layer)) == (9, 9)


# --- errors ---------------------------------------------------------------------------------


class _Custom(L.Layer):
    def build(self, input_shape):
        self.kernel = self.add_weight((input_shape[-1], 3), initializer="zeros", name="kernel")


def _dense():
    return _built(_layer(L.Dense, 4), ((None, 5),))


def _one(cls, shape=(None, 4)):
    return _built(_layer(cls), (shape,))


ERRORS = [
    # (make -> (shape_or_layer, kwargs), pattern the ValueError message must match)
    _P(lambda: (L.Dense(4), {}), "not built", id="unbuilt-layer"),
    _P(lambda: (_one(L.ReLU), {}), "has no weights", id="layer-without-weights"),
    _P(lambda: (_dense(), {"weight": "nope"}), "'nope' matches no weight", id="unknown-name"),
    _P(lambda: (_shared(MHA, QV), {"weight": "kernel"}), "matches several weights",
       id="ambiguous-name"),
    _P(lambda: (_dense(), {"weight": _dense().kernel}), "not a weight of layer",
       id="foreign-variable"),
    _P(lambda: (_dense(), {"weight": "bias"}), "not for biases", id="dense-bias"),
    _P(lambda: (_built(_layer(L.GRU, 6), SEQ), {"weight": "bias"}), "not for biases",
       id="gru-rank2-bias"),
    _P(lambda: (_one(L.LayerNormalization), {"weight": "gamma"}), "rank >= 2",
       id="layernorm-gamma"),
    _P(lambda: (_one(L.BatchNormalization), {}), "weight must be given", id="no-kernel"),
    _P(lambda: (_one(_Custom), {}), "does not know the layer class _Custom",
       id="unknown-layer-class"),
    _P(lambda: (_dense(), {"input_axes": [0]}), "input_axes and output_axes apply to a shape",
       id="input-axes-with-layer"),
    _P(lambda: (_dense(), {"output_axes": [1]}), "input_axes and output_axes apply to a shape",
       id="output-axes-with-layer"),
    _P(lambda: ((3, 4), {"weight": "kernel"}), "weight applies to a layer",
       id="weight-with-shape"),
    _P(lambda: ((3, 4), {"input_axes": [2], "output_axes": [1]}), "input_axes must index",
       id="input-axes-out-of-range"),
    _P(lambda: ((3, 4), {"input_axes": [0], "output_axes": [-3]}), "output_axes must index",
       id="output-axes-out-of-range"),
    _P(lambda: ((3, 4), {"input_axes": "a", "output_axes": [1]}), "input_axes must be",
       id="input-axes-junk"),
]


@pytest.mark.parametrize("make, match", ERRORS)
def test_errors(make, match):
    target, kwargs = make()
    with pytest.raises(ValueError, match=match):
        compute_fans(target, **kwargs)


JUNK = {
    "letters": "abc", "digits": "123", "bytes": b"12", "none": None, "int": 3, "float": 2.5,
    "dict": {"a": 1}, "letter-dim": ("a", 4), "nested": [(3,), 4], "object": object(),
    "float-dim": (2.5, 4), "negative-dim": (-3, 4), "none-dim": (None, 4),
}


@pytest.mark.parametrize("junk", JUNK.values(), ids=JUNK.keys())
def test_junk_shape_raises(junk):
    # "123" and b"12" must not be read as the shapes (1, 2, 3) and (49, 50).
    with pytest.raises(ValueError, match="shape"):
        compute_fans(junk)
