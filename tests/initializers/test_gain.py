"""calculate_gain against the fixed-point table of research/activations.md §2.2 and PyTorch."""

import math

import keras
import pytest

from keras_initkit.initializers import calculate_gain, nonlinearity_names

# (nonlinearity, param) -> g* = 1 / sqrt(E[phi(z)^2]), copied from activations.md §2.2,
# where it was computed by adaptive quadrature and cross-checked by Monte Carlo.
FIXED_POINT_TABLE = {
    ("linear", None): 1.0000,
    ("sigmoid", None): 1.8462,
    ("tanh", None): 1.5925,
    ("relu", None): 1.4142,
    ("leaky_relu", 0.01): 1.4141,
    ("leaky_relu", 0.2): 1.3868,
    ("leaky_relu", 0.3): 1.3546,
    ("prelu", 0.25): 1.3720,
    ("elu", 1.0): 1.2452,
    ("selu", None): 1.0000,
    ("gelu", None): 1.5335,
    ("gelu_approximate", None): 1.5336,
    ("silu", None): 1.6765,
    ("mish", None): 1.4868,
    ("softplus", None): 1.0419,
    ("hard_sigmoid", None): 1.8978,
    ("hard_silu", None): 1.7367,
    ("relu6", None): 1.4142,
    ("softsign", None): 2.3375,
    ("snake", 1.0): 0.8746,
    ("tanhexp", None): 1.3748,
    ("maxout", 2): 1.0000,
    ("maxout", 3): 0.8854,
    ("maxout", 4): 0.8029,
    ("maxout", 5): 0.7454,
}


@pytest.mark.parametrize("key", sorted(FIXED_POINT_TABLE, key=str), ids=str)
def test_fixed_point_gain_matches_table(key):
    name, param = key
    # The table is rounded to 4 decimals: agreement within 1e-3 is the acceptance bar,
    # 6e-5 is what rounding allows.
    assert calculate_gain(name, param) == pytest.approx(FIXED_POINT_TABLE[key], abs=6e-5)


def test_closed_forms():
    assert calculate_gain("relu") == pytest.approx(math.sqrt(2), abs=1e-9)
    assert calculate_gain("leaky_relu", 0.3) == pytest.approx(math.sqrt(2 / 1.09), abs=1e-9)
    # E[GELU^2] = 1/3 + 1/(2 pi sqrt 3) (activations.md §2.1).
    gelu = 1 / math.sqrt(1 / 3 + 1 / (2 * math.pi * math.sqrt(3)))
    assert calculate_gain("gelu") == pytest.approx(gelu, abs=1e-9)
    # E[max_3^2] = 1 + sqrt(3) / (2 pi); E[max_4^2] = 1 + sqrt(3) / pi.
    assert calculate_gain("maxout", 3) == pytest.approx(
        1 / math.sqrt(1 + math.sqrt(3) / (2 * math.pi)), abs=1e-9
    )
    assert calculate_gain("maxout", 4) == pytest.approx(
        1 / math.sqrt(1 + math.sqrt(3) / math.pi), abs=1e-9
    )
    assert calculate_gain("exponential") == pytest.approx(math.exp(-1), abs=1e-9)


def test_defaults_follow_keras():
    assert calculate_gain("leaky_relu") == calculate_gain("leaky_relu", 0.2)  # Keras fn
    assert calculate_gain("prelu") == calculate_gain("relu")  # PReLU starts at alpha 0
    assert calculate_gain("elu") == calculate_gain("elu", 1.0)
    assert calculate_gain("maxout") == pytest.approx(1.0, abs=1e-9)


TORCH = {
    "linear": 1.0,
    "conv1d": 1.0,
    "conv2d": 1.0,
    "conv3d": 1.0,
    "conv_transpose1d": 1.0,
    "conv_transpose2d": 1.0,
    "conv_transpose3d": 1.0,
    "sigmoid": 1.0,
    "tanh": 5.0 / 3.0,
    "relu": math.sqrt(2.0),
    "leaky_relu": math.sqrt(2.0 / (1 + 0.01**2)),  # PyTorch's default slope
    "selu": 0.75,
}


@pytest.mark.parametrize("name", sorted(TORCH))
def test_torch_policy(name):
    assert calculate_gain(name, policy="torch") == pytest.approx(TORCH[name], abs=1e-12)


def test_torch_policy_leaky_slope_and_unknowns():
    assert calculate_gain("leaky_relu", 0.2, policy="torch") == pytest.approx(
        math.sqrt(2 / 1.04)
    )
    with pytest.raises(ValueError, match="policy='torch' defines gains only for"):
        calculate_gain("gelu", policy="torch")


@pytest.mark.parametrize(
    "fn, name",
    [
        (keras.activations.relu, "relu"),
        (keras.activations.tanh, "tanh"),
        (keras.activations.gelu, "gelu"),
        (keras.activations.selu, "selu"),
        (keras.activations.swish, "silu"),
        (keras.activations.hard_swish, "hard_silu"),
        (keras.activations.leaky_relu, "leaky_relu"),
        (keras.activations.linear, "linear"),
    ],
)
def test_keras_activation_functions(fn, name):
    assert calculate_gain(fn) == calculate_gain(name)


@pytest.mark.parametrize(
    "layer, expected",
    [
        (keras.layers.LeakyReLU(negative_slope=0.3), 1.3546),
        (keras.layers.LeakyReLU(), 1.3546),  # the layer's default slope is 0.3
        (keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25)), 1.3720),
        (keras.layers.PReLU(), 1.4142),
        (keras.layers.ELU(alpha=1.0), 1.2452),
        (keras.layers.ReLU(), 1.4142),
        (keras.layers.ReLU(negative_slope=0.2), 1.3868),
        (keras.layers.ReLU(max_value=6.0), 1.4142),
        (keras.layers.Activation("tanh"), 1.5925),
        (keras.layers.Activation(keras.activations.sigmoid), 1.8462),
        (keras.layers.Softmax(), 1.0),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, keras.layers.Layer) else str(v),
)
def test_keras_activation_layers(layer, expected):
    assert calculate_gain(layer) == pytest.approx(expected, abs=6e-5)


def test_layer_brings_its_own_param():
    with pytest.raises(ValueError, match="read from the layer"):
        calculate_gain(keras.layers.LeakyReLU(0.1), param=0.2)


def test_custom_callable_is_integrated_numerically():
    # x -> 2x has E[(2z)^2] = 4, gain 1/2.
    assert calculate_gain(lambda x: 2.0 * x) == pytest.approx(0.5, abs=1e-5)
    # Through Keras ops: tanh evaluated by the backend agrees with the NumPy reference.
    assert calculate_gain(lambda x: keras.ops.tanh(x)) == pytest.approx(1.5925, abs=1e-4)


def test_every_known_name_has_a_finite_positive_gain():
    for name in nonlinearity_names():
        assert 0 < calculate_gain(name) < 10, name


@pytest.mark.parametrize(
    "args, match",
    [
        (("relux",), "nonlinearity must be one of"),
        (("relu", 0.1), "param must be None for nonlinearity 'relu'"),
        (("leaky_relu", -0.1), r"param \(negative_slope of 'leaky_relu'\) must be"),
        (("leaky_relu", True), "must be a finite number"),
        (("elu", float("nan")), "must be a finite number"),
        (("maxout", 1), r"an int in \[2, 2\*\*63\]"),
        (("maxout", 2.5), r"an int in \[2, 2\*\*63\]"),
        (("snake", 0.0), r"in \(0, 65504\]"),
        ((object(),), "nonlinearity must be a name"),
    ],
)
def test_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        calculate_gain(*args)


def test_bad_policy():
    with pytest.raises(ValueError, match="policy must be one of 'fixed_point', 'torch'"):
        calculate_gain("relu", policy="pytorch")
