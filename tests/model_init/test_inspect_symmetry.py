"""inspect's "distinct units" column and the `symmetric` diagnosis (zero/constant init)."""

import keras
import numpy as np
import pytest

import keras_initkit
from keras_initkit.stats.symmetry import distinct_units

L = keras.layers


def batch(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def row_for(report, label):
    [row] = [row for row in report if row["layer"] == label]
    return row


def dense_stack(initializer, activation="relu"):
    return keras.Sequential(
        [keras.Input((10,))]
        + [L.Dense(32, activation, kernel_initializer=initializer, name=f"dense_{i}")
           for i in range(1, 4)]
        + [L.Dense(4, "softmax", name="head")])


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_zero_init_every_hidden_layer_is_called_symmetric(activation):
    report = keras_initkit.inspect(dense_stack("zeros", activation), batch((64, 10)))
    for name in ("dense_1", "dense_2", "dense_3"):
        assert row_for(report, name)["distinct units"] == 1
        assert f"{name}: all 32 units identical" in report.notes, report.notes
    assert not any(note.startswith("head:") and "identical" in note for note in report.notes)
    assert not any("dead" in note for note in report.notes)  # said once, as symmetric
    text = str(report)
    assert "distinct units" in text.splitlines()[1]


def test_constant_init_is_symmetric_and_random_init_is_not():
    x = batch((64, 10))
    constant = keras_initkit.inspect(dense_stack(keras.initializers.Constant(0.05)), x)
    assert [row["distinct units"] for row in constant][:3] == [1, 1, 1]
    assert sum("units identical" in note for note in constant.notes) == 3
    keras.utils.set_random_seed(0)
    random = keras_initkit.inspect(dense_stack("he_normal"), x)
    # ReLU units can be dead (all zero, hence alike), so a few may share a group
    assert [row["layer"] for row in random] == ["dense_1", "dense_2", "dense_3", "head"]
    assert all(row["distinct units"] >= 28 for row in random.rows[:3])
    assert random.rows[3]["distinct units"] == 4
    assert not any("identical" in note for note in random.notes), random.notes


def test_distinct_units_counts_the_real_output_columns():
    """A layer with 3 pairs of equal kernel columns has exactly 5 of 8 distinct units."""
    model = keras.Sequential([keras.Input((6,)), L.Dense(8, "tanh", name="pairs")])
    kernel = batch((6, 8), seed=1)
    kernel[:, 5], kernel[:, 6], kernel[:, 7] = kernel[:, 0], kernel[:, 1], kernel[:, 0]
    model.get_layer("pairs").kernel.assign(kernel)
    x = batch((40, 6), seed=2)
    report = keras_initkit.inspect(model, x)
    expected = distinct_units(np.tanh(x.astype("float64") @ kernel))
    assert expected == 5 and row_for(report, "pairs")["distinct units"] == 5
    assert row_for(report, "pairs")["stats"]["distinct_units"] == 5
    assert not report.notes


def test_convolution_with_constant_filters_is_symmetric():
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        L.Conv2D(6, 3, activation="relu", kernel_initializer=keras.initializers.Constant(0.1),
                 name="conv"),
        L.Conv2D(5, 3, name="random_conv"),  # linear: ReLU could kill a filter
        L.GlobalAveragePooling2D(name="pool"),
    ])
    report = keras_initkit.inspect(model, np.abs(batch((4, 8, 8, 3))))
    assert row_for(report, "conv")["distinct units"] == 1
    assert row_for(report, "conv")["stats"]["units"] == 6
    assert "conv: all 6 units identical" in report.notes
    assert row_for(report, "random_conv")["distinct units"] == 5


def test_channels_first_convolution_counts_channels():
    """A channels_first layer (NCHW convolutions do not run on TensorFlow's CPU: padding)."""
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        L.Conv2D(4, 3, kernel_initializer=keras.initializers.Constant(0.2), name="conv"),
        L.Permute((3, 1, 2), name="to_nchw"),
        L.ZeroPadding2D(1, data_format="channels_first", name="pad"),
    ])
    report = keras_initkit.inspect(model, batch((2, 8, 8, 3)))
    assert row_for(report, "pad")["stats"]["units"] == 4  # (2, 4, 8, 8): axis 1
    assert row_for(report, "pad")["distinct units"] == 1


def test_nan_outputs_are_counted_not_raised():
    model = keras.Sequential([keras.Input((5,)),
                              L.Dense(6, "tanh", name="random"),
                              L.Dense(6, "tanh", kernel_initializer="zeros", name="zero")])
    x = batch((8, 5))
    x[2] = np.nan  # one row of NaN: every unit NaN on it, identical elsewhere
    report = keras_initkit.inspect(model, x)
    assert row_for(report, "zero")["nan/inf"] == 6
    assert row_for(report, "zero")["distinct units"] == 1
    assert "zero: all 6 units identical" in report.notes
    assert row_for(report, "random")["distinct units"] == 6


def test_tiny_but_random_units_are_collapsed_not_symmetric():
    """tanh through N(0, 0.01^2) layers: std ~1e-5 by layer 4, units still all different."""
    init = keras.initializers.RandomNormal(stddev=0.01, seed=3)
    model = keras.Sequential([keras.Input((64,))] + [
        L.Dense(64, "tanh", kernel_initializer=init, name=f"tanh_{i}") for i in range(1, 5)])
    report = keras_initkit.inspect(model, batch((128, 64)))
    assert row_for(report, "tanh_4")["std"] < 1e-4
    assert row_for(report, "tanh_4")["distinct units"] == 64
    assert any("tanh_4" in note and "collapsed" in note for note in report.notes)
    assert not any("identical" in note for note in report.notes)
