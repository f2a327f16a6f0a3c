"""initializer_for: the recommended initializer for each activation (activations.md §3)."""

import math

import keras
import numpy as np
import pytest

from keras_initkit import initializers as ki
from keras_initkit.initializers import initializer_for


@pytest.mark.parametrize(
    "activation, param, cls, variance_scale",
    [
        ("selu", None, ki.LecunNormal, 1.0),
        ("linear", None, ki.LecunNormal, 1.0),
        ("softmax", None, ki.LecunNormal, 1.0),
        ("relu", None, ki.HeNormal, 2.0),
        ("leaky_relu", 0.3, ki.HeNormal, 2 / 1.09),
        ("prelu", 0.25, ki.HeNormal, 2 / 1.0625),
        ("tanh", None, ki.LecunNormal, 1.5925**2),
        ("elu", None, ki.LecunNormal, 1.5505),
        ("maxout", 3, ki.LecunNormal, 0.78391),
        ("maxout", 5, ki.LecunNormal, 0.55555),
    ],
)
def test_recommendations(activation, param, cls, variance_scale):
    init = initializer_for(activation, param)
    assert type(init) is cls
    assert init.mode == "fan_in"
    assert init.variance_scale == pytest.approx(variance_scale, rel=2e-4)


def test_layers_and_functions():
    assert repr(initializer_for(keras.layers.LeakyReLU(0.3))) == (
        "HeNormal(nonlinearity='leaky_relu', param=0.3)"
    )
    assert type(initializer_for(keras.activations.selu)) is ki.LecunNormal
    assert type(initializer_for(keras.layers.Activation("relu"))) is ki.HeNormal


def test_distribution_and_policy():
    assert type(initializer_for("relu", distribution="uniform")) is ki.HeUniform
    assert type(initializer_for("tanh", distribution="uniform")) is ki.LecunUniform
    plain = initializer_for("tanh", distribution="untruncated_normal")
    assert type(plain) is ki.VarianceScaling and plain.distribution == "untruncated_normal"
    torch_tanh = initializer_for("tanh", policy="torch")
    assert torch_tanh.variance_scale == pytest.approx((5 / 3) ** 2)
    custom = initializer_for(lambda x: 2.0 * x)
    assert custom.variance_scale == pytest.approx(0.25, rel=1e-4)


def test_seed_is_passed_on():
    a = keras.ops.convert_to_numpy(initializer_for("relu", seed=4)((20, 20)))
    b = keras.ops.convert_to_numpy(initializer_for("relu", seed=4)((20, 20)))
    np.testing.assert_array_equal(a, b)


def test_maxout_scale_keeps_a_deep_stack_at_unit_std():
    """50 Dense(units * k) -> max over k layers keep std in [0.5, 2] at maxout scale.

    With LeCun scale (gain 1) the same stack explodes past 100 (activations.md §2.3).
    """
    rng = np.random.default_rng(0)
    units, k, depth = 256, 3, 50
    x = rng.standard_normal((128, units))
    stds = {}
    for name, init in [("maxout", initializer_for("maxout", k)), ("lecun", ki.LecunNormal())]:
        h = x
        for layer in range(depth):
            w = keras.ops.convert_to_numpy(
                type(init).from_config({**init.get_config(), "seed": layer})((units, units * k))
            ).astype(np.float64)
            pre = h @ w
            h = pre.reshape(len(h), k, units).max(axis=1)  # strided grouping
        stds[name] = pre.std()
    assert 0.5 <= stds["maxout"] <= 2.0
    assert stds["lecun"] > 100


def test_bad_arguments():
    with pytest.raises(ValueError, match="distribution must be one of"):
        initializer_for("relu", distribution="gaussian")
    with pytest.raises(ValueError, match="mode must be one of"):
        initializer_for("relu", mode="fanin")
    with pytest.raises(ValueError, match="nonlinearity must be one of"):
        initializer_for("relux")
    assert math.isfinite(initializer_for("gelu").variance_scale)


def test_torch_policy_keeps_rectifiers_as_he():
    assert repr(initializer_for("relu", policy="torch")) == "HeNormal()"
    leaky = initializer_for("leaky_relu", policy="torch")
    assert leaky.variance_scale == pytest.approx(2 / (1 + 0.01**2))
    assert initializer_for("leaky_relu").variance_scale == pytest.approx(2 / 1.04)
    assert initializer_for("selu", policy="torch").variance_scale == pytest.approx(0.5625)
