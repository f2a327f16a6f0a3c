"""The activation table owns each activation's output range, saturation bounds and
histogram range; the statistics read them from it, and an activation it does not know is
said to be unknown, not given a silent default."""

import math

import keras
import numpy as np
import pytest

import keras_initkit
from keras_initkit.initializers import nonlinearities
from keras_initkit.stats.summary import SATURATION_BOUNDS, activation_facts, layer_record

ENTRIES = list(nonlinearities.NONLINEARITIES.values())


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_every_entry_has_consistent_ranges(entry):
    low, high = entry.output_range
    assert low < high
    h_low, h_high = entry.histogram
    assert math.isfinite(h_low) and math.isfinite(h_high) and h_low < h_high
    if entry.saturates:
        assert math.isfinite(low) and math.isfinite(high), "saturating at an infinite end"
        assert entry.saturation_bounds == entry.output_range == entry.histogram
    else:
        assert entry.saturation_bounds is None
    if entry.histogram_range is not None:  # an explicit range stays inside the outputs
        assert low <= h_low and h_high <= high


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.fn is not None],
                         ids=lambda e: e.name)
def test_output_range_holds_for_the_reference_function(entry):
    """The stated range contains f(x) on a wide grid, and a saturating f reaches its ends."""
    param = entry.default_param
    x = np.concatenate([np.linspace(-50.0, 50.0, 100001), [-1e6, 1e6]])
    with np.errstate(over="ignore"):
        y = entry.fn(x, param)
    y = y[np.isfinite(y)]
    low, high = entry.output_range
    assert y.min() >= low - 1e-12 and y.max() <= high + 1e-12, (y.min(), y.max())
    if entry.saturates:
        ends = entry.fn(np.array([-1e6, 1e6]), param)
        np.testing.assert_allclose(sorted(ends), [low, high], atol=1e-5)


def test_the_classic_activations():
    table = nonlinearities.NONLINEARITIES
    assert table["sigmoid"].saturation_bounds == (0.0, 1.0)
    assert table["tanh"].saturation_bounds == (-1.0, 1.0)
    relu = table["relu"]
    assert relu.output_range == (0.0, math.inf) and relu.saturation_bounds is None
    assert relu.histogram == (0.0, 5.0)
    assert table["softmax"].saturation_bounds is None and table["softmax"].histogram == (0, 1)


def test_the_statistics_read_the_table_unchanged():
    """The values of the lists the table replaced (stats/summary.py before issue 13)."""
    assert SATURATION_BOUNDS == {
        "tanh": (-1.0, 1.0), "softsign": (-1.0, 1.0), "hard_tanh": (-1.0, 1.0),
        "sigmoid": (0.0, 1.0), "hard_sigmoid": (0.0, 1.0), "sparse_sigmoid": (0.0, 1.0),
    }
    special = {"relu": (0.0, 5.0), "relu6": (0.0, 6.0), "softplus": (0.0, 5.0),
               "softmax": (0.0, 1.0), **SATURATION_BOUNDS}
    for name in [*nonlinearities.names(), *nonlinearities.ALIASES]:
        expected = special.get(nonlinearities.lookup(name).name, (-5.0, 5.0))
        assert activation_facts(name)[0] == expected, name


def test_an_unknown_activation_is_said_to_be_unknown():
    with pytest.raises(ValueError, match=r"nonlinearity must be one of .*tanh.*got 'tanhh'"):
        keras_initkit.stats.saturation_bounds("tanhh")

    def my_activation(x):
        return x

    with pytest.raises(ValueError, match="got 'my_activation'"):
        keras_initkit.stats.saturation_bounds(my_activation)
    with pytest.raises(ValueError, match="activation must be an activation function"):
        keras_initkit.stats.saturation_bounds(3)
    assert keras_initkit.stats.saturation_bounds(keras.activations.tanh) == (-1.0, 1.0)
    assert keras_initkit.stats.saturation_bounds("swish") is None  # an alias of silu
    # Recording a custom activation: the default range, and "not applicable", not 0.
    assert activation_facts("my_activation") == (nonlinearities.DEFAULT_HISTOGRAM_RANGE, None)
    record = layer_record(np.array([[0.5, 0.999]], "float32"), "d", "my_activation")
    assert math.isnan(record.stats["saturated_fraction"])
    tanh = layer_record(np.array([[0.5, 0.999]], "float32"), "d", "tanh")
    assert tanh.stats["saturated_fraction"] == 0.5


@pytest.mark.parametrize(
    "layer, name",
    [(keras.layers.ReLU(), "relu"), (keras.layers.ReLU(max_value=6.0), "relu6"),
     (keras.layers.LeakyReLU(), "leaky_relu"), (keras.layers.PReLU(), "prelu"),
     (keras.layers.ELU(), "elu"), (keras.layers.Softmax(), "softmax"),
     (keras.layers.Dense(2), None), (keras.layers.Activation("tanh"), None)])
def test_keras_activation_layers_are_listed_once(layer, name):
    assert nonlinearities.keras_layer_name(layer) == name
    if name is not None:
        assert nonlinearities.lookup(name).name == name
        assert isinstance(layer, nonlinearities.ACTIVATION_LAYER_CLASSES)


def test_a_layer_the_table_does_not_list_is_named_in_the_error():
    with pytest.raises(ValueError, match=r"knows \(Activation, ReLU, LeakyReLU, PReLU, ELU, "
                                         r"Softmax, keras_initkit.layers\)"):
        keras_initkit.calculate_gain(keras.layers.Dense(2))
