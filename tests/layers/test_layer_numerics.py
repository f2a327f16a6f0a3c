"""Numerics of keras_initkit.layers and keras_initkit.activations on the current backend.

Covered: values against independent float64 NumPy references, Maxout's two channel
groupings, MaxoutDense and its forward-preserving initialization on a 50-layer stack,
shapes with None dimensions, mask propagation, finite gradients (with each backend's own
autodiff), the gains of activations.md §2.2, and the errors for bad arguments.
"""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_initkit import activations
from keras_initkit.initializers import LecunNormal, calculate_gain, initializer_for
from keras_initkit.layers import GELU, SELU, Maxout, MaxoutDense, Mish, Snake, Swish

BACKEND = keras.backend.backend()

# --------------------------------------------------------------------------------------
# Independent float64 NumPy references
# --------------------------------------------------------------------------------------

SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805
_erf = np.vectorize(math.erf, otypes=[np.float64])


def ref_gelu(x):
    return x * 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


def ref_gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def ref_selu(x):
    return SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0.0)))


def ref_mish(x):
    return x * np.tanh(np.log1p(np.exp(x)))


def ref_swish(x, beta):
    return x / (1.0 + np.exp(-beta * x))


def ref_snake(x, a):
    return x + np.sin(a * x) ** 2 / a


def ref_tanhexp(x):
    return x * np.tanh(np.exp(x))


def ref_lisht(x):
    return x * np.tanh(x)


def ref_maxout(x, num_units, axis=-1, grouping="strided"):
    """Max over groups of channels: strided takes j, j+u, ...; contiguous j*k .. j*k+k-1."""
    moved = np.moveaxis(x, axis, -1)
    pieces = moved.shape[-1] // num_units
    if grouping == "strided":
        out = moved.reshape(moved.shape[:-1] + (pieces, num_units)).max(axis=-2)
    else:
        out = moved.reshape(moved.shape[:-1] + (num_units, pieces)).max(axis=-1)
    return np.moveaxis(out, -1, axis)


def gaussian_gain(fn, order=200):
    """1 / sqrt(E[fn(z)^2]), z ~ N(0, 1), by Gauss-Hermite quadrature (float64)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(order)
    moment = np.sum(weights * fn(nodes) ** 2) / math.sqrt(2.0 * math.pi)
    return 1.0 / math.sqrt(moment)


def to_numpy(x):
    return np.asarray(ops.convert_to_numpy(x), dtype=np.float64)


# Inputs: a fixed grid and a 3-D tensor (float32, as layers compute in float32).
GRID = np.linspace(-6.0, 6.0, 49).reshape(7, 7).astype("float32")
CUBE = (np.random.default_rng(0).standard_normal((2, 3, 8)) * 3.0).astype("float32")
INPUTS = {"grid_7x7": GRID, "cube_2x3x8": CUBE}
RTOL = ATOL = 1e-5

# --------------------------------------------------------------------------------------
# 1. Values against NumPy
# --------------------------------------------------------------------------------------

LAYER_CASES = {
    "GELU": (lambda: GELU(), ref_gelu),
    "GELU_approximate": (lambda: GELU(approximate=True), ref_gelu_tanh),
    "SELU": (lambda: SELU(), ref_selu),
    "Mish": (lambda: Mish(), ref_mish),
    "Swish_beta1": (lambda: Swish(), lambda x: ref_swish(x, 1.0)),
    "Swish_beta2": (lambda: Swish(beta=2.0), lambda x: ref_swish(x, 2.0)),
    "Swish_beta1_trainable": (
        lambda: Swish(1.0, trainable=True),
        lambda x: ref_swish(x, 1.0),
    ),
    "Swish_beta2_trainable": (
        lambda: Swish(2.0, trainable=True),
        lambda x: ref_swish(x, 2.0),
    ),
    "Snake_freq1": (lambda: Snake(), lambda x: ref_snake(x, 1.0)),
    "Snake_freq0.5": (lambda: Snake(frequency=0.5), lambda x: ref_snake(x, 0.5)),
    "Snake_freq1_fixed": (
        lambda: Snake(1.0, trainable=False),
        lambda x: ref_snake(x, 1.0),
    ),
    "Snake_freq0.5_fixed": (
        lambda: Snake(0.5, trainable=False),
        lambda x: ref_snake(x, 0.5),
    ),
    "Snake_freq0.5_per_channel_frozen": (
        lambda: Snake(0.5, trainable=False, per_channel=True),
        lambda x: ref_snake(x, 0.5),
    ),
    # |a x| crosses Snake's series threshold, and a frequency near zero.
    "Snake_freq1e-3": (lambda: Snake(1e-3), lambda x: ref_snake(x, 1e-3)),
    "Snake_freq1e-8": (lambda: Snake(1e-8), lambda x: ref_snake(x, 1e-8)),
}


@pytest.mark.parametrize("inputs", sorted(INPUTS))
@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_matches_numpy_reference(case, inputs):
    make, reference = LAYER_CASES[case]
    x = INPUTS[inputs]
    y = make()(x)
    assert tuple(y.shape) == x.shape
    np.testing.assert_allclose(
        to_numpy(y), reference(x.astype(np.float64)), rtol=RTOL, atol=ATOL
    )


FUNCTION_CASES = {
    "snake": (activations.snake, lambda x: ref_snake(x, 1.0)),
    "snake_freq0.5": (
        lambda x: activations.snake(x, frequency=0.5),
        lambda x: ref_snake(x, 0.5),
    ),
    "tanhexp": (activations.tanhexp, ref_tanhexp),
    "lisht": (activations.lisht, ref_lisht),
    "gelu_approximate": (activations.gelu_approximate, ref_gelu_tanh),
}


@pytest.mark.parametrize("inputs", sorted(INPUTS))
@pytest.mark.parametrize("case", sorted(FUNCTION_CASES))
def test_activation_function_matches_numpy_reference(case, inputs):
    fn, reference = FUNCTION_CASES[case]
    x = INPUTS[inputs]
    np.testing.assert_allclose(
        to_numpy(fn(x)), reference(x.astype(np.float64)), rtol=RTOL, atol=ATOL
    )


def test_tanhexp_is_finite_where_exp_overflows():
    x = np.array([-100.0, -30.0, 30.0, 89.0, 100.0, 1e4], "float32")
    with np.errstate(over="ignore"):  # exp(1e4) is inf in float64 too; tanh(inf) = 1
        expected = ref_tanhexp(x.astype(np.float64))
    y = to_numpy(activations.tanhexp(x))
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("snake", activations.snake),
        ("keras_initkit>snake", activations.snake),
        ("tanhexp", activations.tanhexp),
        ("lisht", activations.lisht),
        ("gelu_approximate", activations.gelu_approximate),
        ("gelu", keras.activations.gelu),
        ("relu", keras.activations.relu),
    ],
)
def test_get_resolves_our_names_and_keras_names(name, expected):
    assert activations.get(name) is expected


def test_function_as_dense_activation_matches_numpy():
    dense = keras.layers.Dense(
        5,
        activation=activations.get("tanhexp"),
        kernel_initializer=keras.initializers.RandomNormal(seed=3),
        bias_initializer=keras.initializers.RandomNormal(seed=4),
    )
    y = to_numpy(dense(GRID))
    kernel, bias = to_numpy(dense.kernel), to_numpy(dense.bias)
    np.testing.assert_allclose(
        y, ref_tanhexp(GRID @ kernel + bias), rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize(
    "cls, value", [(Swish, 1.0), (Swish, 2.0), (Snake, 1.0), (Snake, 0.5)]
)
def test_trainable_parameter_starts_at_value_on_every_channel(cls, value):
    layer = cls(value, trainable=True)
    layer(CUBE)
    assert len(layer.trainable_weights) == 1
    np.testing.assert_array_equal(
        to_numpy(layer.trainable_weights[0]), np.full(8, value)
    )
    assert not cls(value, trainable=False).weights
    frozen = cls(value, trainable=False, per_channel=True)
    frozen(CUBE)
    assert not frozen.trainable_weights
    np.testing.assert_array_equal(
        to_numpy(frozen.non_trainable_weights[0]), np.full(8, value)
    )


@pytest.mark.parametrize(
    "cls, reference", [(Swish, ref_swish), (Snake, ref_snake)], ids=["Swish", "Snake"]
)
def test_trainable_parameter_is_per_channel_on_last_axis(cls, reference):
    layer = cls(1.0, trainable=True)
    layer.build(CUBE.shape)
    per_channel = np.linspace(0.25, 2.0, 8)
    layer.trainable_weights[0].assign(per_channel.astype("float32"))
    np.testing.assert_allclose(
        to_numpy(layer(CUBE)),
        reference(CUBE.astype(np.float64), per_channel),
        rtol=RTOL,
        atol=ATOL,
    )


# --------------------------------------------------------------------------------------
# 2. Maxout
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "grouping, expected",
    [("strided", [3.0, 4.0, 5.0]), ("contiguous", [1.0, 3.0, 5.0])],
)
def test_maxout_acceptance_on_known_input(grouping, expected):
    x = np.arange(6, dtype="float32").reshape(1, 6)
    y = Maxout(num_units=3, grouping=grouping)(x)
    assert to_numpy(y).tolist() == [expected]


def test_maxout_default_grouping_is_strided():
    x = np.arange(6, dtype="float32").reshape(1, 6)
    assert to_numpy(Maxout(3)(x)).tolist() == [[3.0, 4.0, 5.0]]


MAXOUT_CASES = [
    # (input shape, num_units, axis)
    ((4, 5, 12), 4, -1),
    ((4, 5, 12), 3, -1),
    ((2, 12, 3), 4, 1),
    ((2, 12, 3), 6, 1),
    ((2, 12, 3), 4, -2),
]


@pytest.mark.parametrize("grouping", ["strided", "contiguous"])
@pytest.mark.parametrize("shape, num_units, axis", MAXOUT_CASES, ids=str)
def test_maxout_matches_numpy_reference(shape, num_units, axis, grouping):
    size = int(np.prod(shape))
    # A permutation: no ties, so both groupings give visibly different answers.
    x = np.random.default_rng(1).permutation(size).reshape(shape).astype("float32")
    layer = Maxout(num_units, axis=axis, grouping=grouping)
    y = to_numpy(layer(x))
    expected = ref_maxout(x, num_units, axis, grouping)
    np.testing.assert_array_equal(y, expected)
    assert tuple(layer.compute_output_shape(shape)) == expected.shape
    assert layer.pieces == shape[axis] // num_units


def test_maxout_groupings_differ():
    x = np.random.default_rng(1).permutation(48).reshape(4, 12).astype("float32")
    strided = to_numpy(Maxout(4)(x))
    contiguous = to_numpy(Maxout(4, grouping="contiguous")(x))
    assert not np.array_equal(strided, contiguous)


# --------------------------------------------------------------------------------------
# 3. MaxoutDense
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("shape", [(6, 12), (4, 5, 12)], ids=str)
def test_maxout_dense_matches_numpy_reference(shape, use_bias):
    units, pieces = 4, 3
    layer = MaxoutDense(
        units,
        pieces=pieces,
        use_bias=use_bias,
        kernel_initializer=keras.initializers.RandomNormal(seed=5),
        bias_initializer=keras.initializers.RandomNormal(seed=6),
    )
    x = np.random.default_rng(2).standard_normal(shape).astype("float32")
    y = to_numpy(layer(x))
    kernel = to_numpy(layer.kernel)
    assert kernel.shape == (12, units * pieces)
    affine = x.astype(np.float64) @ kernel
    if use_bias:
        affine = affine + to_numpy(layer.bias)
    else:
        assert layer.bias is None
    np.testing.assert_allclose(
        to_numpy(layer.pre_activation(x)), affine, rtol=RTOL, atol=ATOL
    )
    # Piece j of unit i is column i * pieces + j (contiguous).
    expected = affine.reshape(shape[:-1] + (units, pieces)).max(axis=-1)
    assert y.shape == shape[:-1] + (units,)
    np.testing.assert_allclose(y, expected, rtol=RTOL, atol=ATOL)


def test_maxout_dense_default_initializer_is_the_maxout_scale():
    layer = MaxoutDense(512, pieces=3)
    init = layer.kernel_initializer
    assert isinstance(init, LecunNormal)
    assert init.nonlinearity == "maxout" and init.param == 3
    assert init.variance_scale == pytest.approx(0.78391, abs=1e-5)


def _last_pre_activation_std(kernel_initializer):
    """Std of the last layer's pieces in a 50-layer MaxoutDense(512, pieces=3) stack."""
    x = np.random.default_rng(3).standard_normal((256, 512)).astype("float32")
    h = ops.convert_to_tensor(x)
    stack = [
        MaxoutDense(512, pieces=3, kernel_initializer=kernel_initializer(i))
        for i in range(50)
    ]
    for layer in stack[:-1]:
        h = layer(h)
    stack[-1].build((None, 512))
    return float(np.std(to_numpy(stack[-1].pre_activation(h))))


@pytest.mark.slow  # 5-7 s on torch: its truncated_normal draws 4x and gathers
def test_maxout_dense_50_layer_stack_keeps_unit_scale():
    std = _last_pre_activation_std(
        lambda i: LecunNormal(nonlinearity="maxout", param=3, seed=i)
    )
    assert 0.5 <= std <= 2.0


@pytest.mark.slow  # 5-7 s on torch: its truncated_normal draws 4x and gathers
def test_maxout_dense_50_layer_stack_explodes_with_lecun_scale():
    std = _last_pre_activation_std(lambda i: LecunNormal(seed=i))
    assert std > 100.0


# --------------------------------------------------------------------------------------
# 4. Shapes with None dimensions
# --------------------------------------------------------------------------------------

# (factory, number of output channels for 12 input channels)
SHAPE_CASES = {
    "GELU": (lambda: GELU(), 12),
    "GELU_approximate": (lambda: GELU(approximate=True), 12),
    "SELU": (lambda: SELU(), 12),
    "Mish": (lambda: Mish(), 12),
    "Swish": (lambda: Swish(), 12),
    "Swish_trainable": (lambda: Swish(trainable=True), 12),
    "Snake": (lambda: Snake(), 12),
    "Snake_fixed": (lambda: Snake(trainable=False), 12),
    "Maxout4": (lambda: Maxout(4), 4),
    "Maxout4_contiguous": (lambda: Maxout(4, grouping="contiguous"), 4),
    "Maxout3": (lambda: Maxout(3), 3),
    "MaxoutDense": (lambda: MaxoutDense(5, pieces=2), 5),
}
SHAPE_INPUTS = [(None, 12)]
MAXOUT_SHAPE_INPUTS = [(None, 12), (None, None, 12)]
SHAPE_PARAMS = [
    (case, shape)
    for case in sorted(SHAPE_CASES)
    for shape in (MAXOUT_SHAPE_INPUTS if case.startswith("Maxout4") else SHAPE_INPUTS)
]


@pytest.mark.parametrize("case, input_shape", SHAPE_PARAMS, ids=str)
def test_functional_model_with_none_dims(case, input_shape):
    make, channels = SHAPE_CASES[case]
    layer = make()
    inputs = keras.Input(shape=input_shape)
    outputs = layer(inputs)
    expected_symbolic = (None,) + input_shape[:-1] + (channels,)
    assert tuple(outputs.shape) == expected_symbolic
    assert tuple(layer.compute_output_shape((None,) + input_shape)) == expected_symbolic
    model = keras.Model(inputs, outputs)

    concrete = (3,) + tuple(5 + i for i in range(len(input_shape) - 1)) + (12,)
    x = np.random.default_rng(4).standard_normal(concrete).astype("float32")
    y = model(x)
    expected = concrete[:-1] + (channels,)
    assert tuple(y.shape) == expected
    assert tuple(layer.compute_output_shape(concrete)) == expected
    np.testing.assert_allclose(to_numpy(y), to_numpy(layer(x)), rtol=1e-6, atol=1e-6)
    # Another batch size and length through the same model.
    other = (
        np.random.default_rng(5)
        .standard_normal((2, 7) + concrete[2:])
        .astype("float32")
    )
    assert tuple(model(other).shape) == (2, 7) + concrete[2:-1] + (channels,)


def test_maxout_graph_mode_with_dynamic_dims_via_predict():
    inputs = keras.Input(shape=(None, None, 12))
    model = keras.Model(inputs, Maxout(4, grouping="contiguous")(inputs))
    x = np.random.default_rng(6).standard_normal((3, 5, 6, 12)).astype("float32")
    y = model.predict(x, batch_size=2, verbose=0)  # batches of 2 and 1
    np.testing.assert_array_equal(y, ref_maxout(x, 4, -1, "contiguous"))


# --------------------------------------------------------------------------------------
# 5. Masking
# --------------------------------------------------------------------------------------

MASK_CASES = {
    "GELU": lambda: GELU(),
    "GELU_approximate": lambda: GELU(approximate=True),
    "SELU": lambda: SELU(),
    "Mish": lambda: Mish(),
    "Swish": lambda: Swish(),
    "Swish_trainable": lambda: Swish(trainable=True),
    "Snake": lambda: Snake(),
    "Snake_fixed": lambda: Snake(trainable=False),
    "Maxout": lambda: Maxout(4),
    "Maxout_contiguous": lambda: Maxout(4, grouping="contiguous"),
    "MaxoutDense": lambda: MaxoutDense(4, pieces=3),
}
TOKENS = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 7, 0], [8, 9, 0, 0, 0]], "int32")
# The same sequences padded on the left: a masked LSTM skips the leading steps (its state
# stays at zero), so both paddings give the same output; an unmasked LSTM does not.
LEFT_PADDED = np.array([[0, 0, 1, 2, 3], [0, 4, 5, 6, 7], [0, 0, 0, 8, 9]], "int32")


@pytest.mark.parametrize("case", sorted(MASK_CASES))
def test_mask_passes_through_to_lstm(case):
    layer = MASK_CASES[case]()
    assert layer.supports_masking is True
    inputs = keras.Input(shape=(None,), dtype="int32")
    embedded = keras.layers.Embedding(10, 12, mask_zero=True)(inputs)
    # unroll: per-op eager execution, whose JAX compilations are cached across tests.
    outputs = keras.layers.LSTM(3, unroll=True)(layer(embedded))
    model = keras.Model(inputs, outputs)
    # One call (one shape, one JAX compilation): right- and left-padded rows together.
    both = to_numpy(model(np.concatenate([TOKENS, LEFT_PADDED])))
    assert both.shape == (6, 3) and np.all(np.isfinite(both))
    assert np.any(both[:3] != 0)
    np.testing.assert_allclose(both[:3], both[3:], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", sorted(MASK_CASES))
def test_compute_mask_returns_the_mask_unchanged(case):
    layer = MASK_CASES[case]()
    x = np.random.default_rng(7).standard_normal((3, 5, 12)).astype("float32")
    layer(x)  # built
    mask_np = TOKENS != 0
    mask = ops.convert_to_tensor(mask_np)
    result = layer.compute_mask(ops.convert_to_tensor(x), mask)
    np.testing.assert_array_equal(ops.convert_to_numpy(result), mask_np)
    assert layer.compute_mask(ops.convert_to_tensor(x), None) is None


# --------------------------------------------------------------------------------------
# 6. Gradients
# --------------------------------------------------------------------------------------


def sum_gradients(layer, x):
    """Gradients of sum(layer(x)) w.r.t. x and the layer's trainable weights (NumPy).

    Each backend's own autodiff: tf.GradientTape, jax.grad over stateless_call, torch
    autograd. The layer is built first.
    """
    layer(x)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            total = tf.reduce_sum(layer(xt))
        grads = tape.gradient(total, [xt] + list(layer.trainable_variables))
    elif BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        trainable = [v.value for v in layer.trainable_variables]
        non_trainable = [v.value for v in layer.non_trainable_variables]

        def total(trainable, xj):
            outputs, _ = layer.stateless_call(trainable, non_trainable, xj)
            return jnp.sum(outputs)

        weight_grads, x_grad = jax.grad(total, argnums=(0, 1))(
            trainable, jnp.asarray(x)
        )
        grads = [x_grad] + list(weight_grads)
    elif BACKEND == "torch":
        import torch

        xt = torch.tensor(x, requires_grad=True)
        for variable in layer.trainable_variables:
            variable.value.grad = None
        torch.sum(layer(xt)).backward()
        grads = [xt.grad] + [v.value.grad for v in layer.trainable_variables]
    else:  # pragma: no cover
        pytest.skip(f"no gradient helper for the {BACKEND} backend")
    assert all(g is not None for g in grads), "a gradient is missing"
    return [np.asarray(ops.convert_to_numpy(g), dtype=np.float64) for g in grads]


# Values up to +-30 (exp and softplus ranges), and moderate ones; 12 channels.
LARGE = np.linspace(-30.0, 30.0, 48).reshape(4, 12).astype("float32")

GRADIENT_CASES = {
    "GELU": lambda: GELU(),
    "GELU_approximate": lambda: GELU(approximate=True),
    "SELU": lambda: SELU(),
    "Mish": lambda: Mish(),
    "Swish": lambda: Swish(),
    "Swish_trainable": lambda: Swish(2.0, trainable=True),
    "Snake_trainable": lambda: Snake(),
    "Snake_fixed": lambda: Snake(0.5, trainable=False),
    "Snake_small_frequency": lambda: Snake(frequency=1e-4),
    "Snake_tiny_frequency": lambda: Snake(frequency=1e-8),
    "Snake_per_channel_frozen": lambda: Snake(trainable=False, per_channel=True),
    "Maxout": lambda: Maxout(4),
    "Maxout_contiguous": lambda: Maxout(4, grouping="contiguous"),
    "MaxoutDense": lambda: MaxoutDense(4, pieces=3),
    "snake_function": lambda: keras.layers.Activation(activations.snake),
    "tanhexp_function": lambda: keras.layers.Activation(activations.tanhexp),
    "lisht_function": lambda: keras.layers.Activation(activations.lisht),
    "gelu_approximate_function": lambda: keras.layers.Activation(
        activations.gelu_approximate
    ),
}
N_WEIGHTS = {
    "Swish_trainable": 1,
    "Snake_trainable": 1,
    "Snake_small_frequency": 1,
    "Snake_tiny_frequency": 1,
    "MaxoutDense": 2,
}


@pytest.mark.parametrize("inputs", ["grid", "large"])
@pytest.mark.parametrize("case", sorted(GRADIENT_CASES))
def test_gradients_are_finite_and_not_all_zero(case, inputs):
    x = {"grid": GRID[:4, :6].repeat(2, axis=1), "large": LARGE}[inputs]
    layer = GRADIENT_CASES[case]()
    grads = sum_gradients(layer, x)
    assert len(grads) == 1 + N_WEIGHTS.get(case, 0)
    assert grads[0].shape == x.shape
    for grad in grads:
        assert np.all(np.isfinite(grad)), grad
        assert np.any(grad != 0), grad


def test_input_gradient_matches_numpy_derivative():
    # d/dx [x * sigmoid(beta x)] at beta = 2, against a central difference in float64.
    x = GRID[:4, :6].repeat(2, axis=1)
    grad = sum_gradients(Swish(2.0, trainable=True), x)[0]
    x64, eps = x.astype(np.float64), 1e-6
    expected = (ref_swish(x64 + eps, 2.0) - ref_swish(x64 - eps, 2.0)) / (2 * eps)
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-5)


def test_snake_tiny_frequency_gradients_are_finite():
    layer = Snake(frequency=1e-8)
    grads = sum_gradients(layer, LARGE)
    for grad in grads:
        assert np.all(np.isfinite(grad))
    # Near a = 0 snake is ~ x + a x^2: the input gradient is ~1.
    np.testing.assert_allclose(grads[0], np.ones_like(grads[0]), atol=1e-3)


@pytest.mark.parametrize("frequency", [1e-8, 1e-3, 0.5])
def test_snake_frequency_gradient_matches_numpy(frequency):
    # d/da [sin(a x)^2 / a] = x sin(2 a x) / a - sin(a x)^2 / a^2, -> x^2 as a -> 0: a
    # frequency near 0 must still learn (an a-independent clamp would freeze it).
    x = GRID[:4, :6].repeat(2, axis=1)
    grads = sum_gradients(Snake(frequency=frequency), x)
    x64, a = x.astype(np.float64), frequency
    if a < 1e-6:
        # The series a x^2 - a^3 x^4 / 3 + ...: no cancellation.
        per_element = x64**2 - a**2 * x64**4
    else:
        per_element = x64 * np.sin(2 * a * x64) / a - np.sin(a * x64) ** 2 / a**2
    np.testing.assert_allclose(grads[1], per_element.sum(axis=0), rtol=1e-3, atol=1e-4)


# --------------------------------------------------------------------------------------
# 7. Gains and initializers (activations.md §2.2)
# --------------------------------------------------------------------------------------


def built_maxout(pieces):
    layer = Maxout(3)
    layer.build((None, 3 * pieces))
    return layer


GAIN_CASES = {
    "GELU": (lambda: GELU(), 1.5335),
    "GELU_approximate": (lambda: GELU(approximate=True), 1.5336),
    "SELU": (lambda: SELU(), 1.0),
    "Swish": (lambda: Swish(), 1.6765),
    "Swish_trainable": (lambda: Swish(trainable=True), 1.6765),
    "Mish": (lambda: Mish(), 1.4868),
    "Snake": (lambda: Snake(), 0.8746),
    "Snake_fixed": (lambda: Snake(trainable=False), 0.8746),
    "Maxout_2_pieces": (lambda: built_maxout(2), 1.0),
    "Maxout_3_pieces": (lambda: built_maxout(3), 0.8854),
    "Maxout_4_pieces": (lambda: built_maxout(4), 0.8029),
    "Maxout_5_pieces": (lambda: built_maxout(5), 0.7454),
    "MaxoutDense_2_pieces": (lambda: MaxoutDense(8, pieces=2), 1.0),
    "MaxoutDense_3_pieces": (lambda: MaxoutDense(8, pieces=3), 0.8854),
    "MaxoutDense_4_pieces": (lambda: MaxoutDense(8, pieces=4), 0.8029),
    "MaxoutDense_5_pieces": (lambda: MaxoutDense(8, pieces=5), 0.7454),
    "snake_function": (lambda: activations.snake, 0.8746),
    "tanhexp_function": (lambda: activations.tanhexp, 1.3748),
    "gelu_approximate_function": (lambda: activations.gelu_approximate, 1.5336),
}


@pytest.mark.parametrize("case", sorted(GAIN_CASES))
def test_calculate_gain_matches_table(case):
    make, expected = GAIN_CASES[case]
    assert calculate_gain(make()) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("case", sorted(GAIN_CASES))
def test_initializer_for_uses_the_gain(case):
    make, expected = GAIN_CASES[case]
    init = initializer_for(make())
    assert isinstance(init, LecunNormal)
    assert init.mode == "fan_in"
    assert init.variance_scale == pytest.approx(expected**2, abs=2e-3)


@pytest.mark.parametrize(
    "layer, reference",
    [
        (lambda: Swish(beta=2.0), lambda z: ref_swish(z, 2.0)),
        (lambda: Swish(beta=0.5, trainable=True), lambda z: ref_swish(z, 0.5)),
        (lambda: Snake(frequency=0.5), lambda z: ref_snake(z, 0.5)),
        (lambda: Snake(frequency=2.0, trainable=False), lambda z: ref_snake(z, 2.0)),
        (lambda: GELU(), ref_gelu),
        (lambda: Mish(), ref_mish),
    ],
    ids=[
        "Swish_beta2",
        "Swish_beta0.5",
        "Snake_freq0.5",
        "Snake_freq2",
        "GELU",
        "Mish",
    ],
)
def test_calculate_gain_reads_the_layer_parameter(layer, reference):
    # An independent Gauss-Hermite quadrature of the NumPy reference.
    assert calculate_gain(layer()) == pytest.approx(gaussian_gain(reference), abs=1e-4)


def test_initializer_for_selu_is_lecun_normal():
    init = initializer_for(SELU())
    assert isinstance(init, LecunNormal)
    assert init.variance_scale == pytest.approx(1.0, abs=1e-9)


def test_initializer_for_maxout_dense():
    init = initializer_for(MaxoutDense(8, pieces=3))
    assert isinstance(init, LecunNormal)
    assert init.variance_scale == pytest.approx(0.78391, abs=1e-5)


@pytest.mark.parametrize("advice", [calculate_gain, initializer_for])
def test_unbuilt_maxout_has_no_gain_yet(advice):
    with pytest.raises(ValueError, match="not built"):
        advice(Maxout(3))


def test_layer_gain_rejects_an_explicit_param():
    with pytest.raises(ValueError, match="param must be None"):
        calculate_gain(Swish(), 2.0)


# --------------------------------------------------------------------------------------
# 8. Bad arguments
# --------------------------------------------------------------------------------------


def _build(layer, shape):
    layer.build(shape)


def _call_symbolic(layer, shape):
    layer(keras.Input(shape=shape))


BAD_ARGUMENTS = {
    "Maxout_zero_units": (
        lambda: Maxout(num_units=0),
        r"num_units must be an int in \[1, 2147483648\]; got 0",
    ),
    "Maxout_negative_units": (
        lambda: Maxout(num_units=-1),
        r"num_units must be an int in \[1, 2147483648\]",
    ),
    "Maxout_float_units": (
        lambda: Maxout(2.5),
        r"num_units must be an int in \[1, 2147483648\]; got 2\.5",
    ),
    "Maxout_bool_units": (lambda: Maxout(True), r"num_units must be an int"),
    "Maxout_unknown_grouping": (
        lambda: Maxout(3, grouping="interleaved"),
        r"grouping must be one of 'strided', 'contiguous'; got 'interleaved'",
    ),
    "Maxout_float_axis": (lambda: Maxout(3, axis=1.5), r"axis must be an int"),
    "Maxout_not_divisible": (
        lambda: _build(Maxout(4), (None, 6)),
        r"num_units must divide the 6 channels.*num_units=4",
    ),
    "Maxout_not_divisible_symbolic": (
        lambda: _call_symbolic(Maxout(4), (None, 6)),
        r"num_units must divide the 6 channels.*num_units=4",
    ),
    "Maxout_unknown_channels": (
        lambda: _build(Maxout(3), (None, None)),
        r"Maxout needs a known size on axis -1",
    ),
    "Maxout_unknown_channels_symbolic": (
        lambda: _call_symbolic(Maxout(3), (5, None)),
        r"Maxout needs a known size on axis -1",
    ),
    "Maxout_axis_out_of_range": (
        lambda: _build(Maxout(3, axis=2), (None, 6)),
        r"axis must index the input's 2 axes; got axis=2",
    ),
    "MaxoutDense_zero_units": (
        lambda: MaxoutDense(units=0, pieces=2),
        r"units must be an int in \[1, 2147483648\]; got 0",
    ),
    "MaxoutDense_one_piece": (
        lambda: MaxoutDense(4, pieces=1),
        r"pieces must be an int in \[2, 2147483648\]; got 1",
    ),
    "MaxoutDense_unknown_input_dim": (
        lambda: _build(MaxoutDense(4, pieces=2), (None, None)),
        r"MaxoutDense needs a known last dimension",
    ),
    "GELU_approximate_string": (
        lambda: GELU(approximate="yes"),
        r"approximate must be True or False; got 'yes'",
    ),
    "Snake_zero_frequency": (
        lambda: Snake(frequency=0),
        r"frequency must be a finite number in \(0, 65504\]; got 0",
    ),
    "Snake_negative_frequency": (
        lambda: Snake(frequency=-1),
        r"frequency must be a finite number in \(0, 65504\]; got -1",
    ),
    "Snake_infinite_frequency": (
        lambda: Snake(frequency=float("inf")),
        r"frequency must be a finite number in \(0, 65504\]; got inf",
    ),
    "Snake_string_frequency": (
        lambda: Snake(frequency="1.0"),
        r"frequency must be a finite number in \(0, 65504\]; got '1\.0'",
    ),
    "Swish_nan_beta": (
        lambda: Swish(beta=float("nan")),
        r"beta must be a finite number in \[-65504, 65504\]; got nan",
    ),
    "Swish_string_per_channel": (
        lambda: Swish(per_channel="yes"),
        r"per_channel must be None, True or False; got 'yes'",
    ),
    "Swish_string_trainable": (
        lambda: Swish(trainable="yes"),
        r"trainable must be True or False; got 'yes'",
    ),
    "Swish_trainable_unknown_channels": (
        lambda: _build(Swish(trainable=True), (None, None)),
        r"Swish needs a known last dimension \(one beta per channel\)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGUMENTS))
def test_bad_arguments_are_clear_value_errors(case):
    make, message = BAD_ARGUMENTS[case]
    with pytest.raises(ValueError, match=message):
        make()
