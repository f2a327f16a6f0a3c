"""ResidualZeros and Fixup: zero last layer, L^(-1/(2m-2)) scaling, training from zero."""

import keras
import numpy as np
import pytest

from keras_initkit import initializers as ki


def test_residual_zeros_is_zero_and_the_branch_still_learns():
    x = np.random.default_rng(0).standard_normal((64, 8)).astype("float32")
    y = x[:, :1] * 2.0
    inputs = keras.Input((8,))
    branch = keras.layers.Dense(8, activation="relu", kernel_initializer=ki.HeNormal(seed=0))(
        inputs
    )
    branch = keras.layers.Dense(8, kernel_initializer=ki.ResidualZeros())(branch)
    outputs = keras.layers.Dense(1)(keras.layers.Add()([inputs, branch]))
    model = keras.Model(inputs, outputs)
    last = model.layers[2]
    assert not np.any(keras.ops.convert_to_numpy(last.kernel))
    # At init the block is the identity: the branch adds nothing.
    trunk = keras.Model(inputs, model.layers[3].output)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(trunk(x)), x, atol=1e-6)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    assert np.any(keras.ops.convert_to_numpy(last.kernel))  # zero weights get gradients


@pytest.mark.parametrize(
    "branches, depth, factor", [(1, 2, 1.0), (16, 2, 0.25), (16, 3, 0.5), (81, 3, 1 / 3)]
)
def test_fixup_factor(branches, depth, factor):
    init = ki.Fixup(ki.HeNormal(seed=0), num_branches=branches, branch_depth=depth)
    assert init.factor == pytest.approx(factor)
    base = keras.ops.convert_to_numpy(ki.HeNormal(seed=0)((30, 20)))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(init((30, 20))), base * factor,
                               rtol=1e-6)


def test_fixup_resolves_string_bases_and_layer_fans():
    assert type(ki.Fixup("glorot_uniform").base) is ki.GlorotUniform
    layer = keras.layers.DepthwiseConv2D(3)
    layer.build((None, 8, 8, 4))
    assert tuple(ki.Fixup("he_normal", 4).for_layer(layer).base.fans) == (9, 9)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_branches": 0}, r"num_branches must be an int in \[1, 2147483648\]"),
        ({"branch_depth": 1}, r"branch_depth must be an int in \[2, 2147483648\]"),
        ({"num_branches": 2.5}, "num_branches must be an int"),
        ({"base": None}, "base must be an initializer"),
        ({"base": "no_such_init"}, "base must be one of"),
    ],
)
def test_fixup_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ki.Fixup(**kwargs)
