"""distinct_units: the number of different unit columns, against a brute-force count."""

import math
import warnings

import keras
import numpy as np
import pytest

from keras_initkit.stats.accumulator import Layout, finalize, fold
from keras_initkit.stats.diagnosis import diagnose, symmetric_units
from keras_initkit.stats.summary import layer_record
from keras_initkit.stats.symmetry import distinct_units


def brute_force(values, atol=1e-6, rtol=1e-5):
    """The definition, O(U^2 N): greedy groups in unit order, led by their first unit."""
    columns = np.asarray(values, "float64").reshape(-1, np.shape(values)[-1]).T
    leaders = []
    for column in columns:
        for leader in leaders:
            finite = np.isfinite(column) & np.isfinite(leader)
            close = np.abs(column - leader) <= atol + rtol * np.maximum(np.abs(column),
                                                                         np.abs(leader))
            same = np.where(finite, close,
                            (column == leader) | (np.isnan(column) & np.isnan(leader)))
            if same.all():
                break
        else:
            leaders.append(column)
    return len(leaders)


def duplicated(rng, samples, units, scale=1.0):
    """`units` columns drawn (with repeats) from fewer distinct random columns."""
    base = rng.normal(size=(samples, rng.integers(1, units + 1))) * scale
    return base[:, rng.integers(0, base.shape[1], size=units)]


def test_equals_the_brute_force_count_on_random_data_with_duplicated_columns():
    rng = np.random.default_rng(0)
    checked = set()
    for _ in range(300):
        samples, units = int(rng.integers(1, 24)), int(rng.integers(1, 40))
        values = duplicated(rng, samples, units, scale=10.0 ** rng.integers(-8, 4))
        # near-duplicates: relative noise below and above the tolerance
        values = values * (1 + rng.normal(size=(1, units)) * 10.0 ** rng.integers(-9, -3))
        if rng.random() < 0.3:
            values[rng.integers(0, samples), rng.integers(0, units)] = np.nan
        if rng.random() < 0.2:
            values[:, rng.integers(0, units)] = np.inf
        expected = brute_force(values)
        assert distinct_units(values) == expected
        checked.add(expected == units)
    assert checked == {True, False}  # both all-distinct and duplicated cases were drawn


def test_known_counts():
    x = np.random.default_rng(1).normal(size=(50, 5))
    assert distinct_units(np.zeros((32, 64))) == 1
    assert distinct_units(np.full((32, 64), 0.5)) == 1
    assert distinct_units(x) == 5
    assert distinct_units(np.concatenate([x, x, x[:, :2]], axis=1)) == 5
    assert distinct_units(x[:, [0, 0, 0]] * (1 + 1e-7)) == 1  # rounding-level differences
    assert distinct_units(x[:, [0]] * [1.0, 1.001]) == 2


def test_convolution_outputs_count_positions_as_samples():
    rng = np.random.default_rng(2)
    maps = rng.normal(size=(4, 6, 6, 3))
    values = maps[..., [0, 1, 0, 2, 1]]  # (batch, height, width, 5 channels), 3 distinct
    assert distinct_units(values) == 3
    # two channels equal on one example's positions but not another's: different
    values[1, :, :, 4] = rng.normal(size=(6, 6))
    assert distinct_units(values) == 4


def test_nan_and_inf_columns_group_without_raising():
    values = np.random.default_rng(3).normal(size=(10, 6))
    values[:, 1] = np.nan
    values[:, 2] = np.nan  # the same all-NaN column: one group
    values[:, 3] = values[:, 0]
    values[4, 3] = np.nan  # NaN where column 0 has a number: different
    values[:, 5] = np.inf
    assert distinct_units(values) == 5 == brute_force(values)
    assert distinct_units(np.full((3, 4), np.nan)) == 1


def test_edge_cases_and_bad_input():
    assert distinct_units(np.zeros((3, 0))) == 0
    assert distinct_units(np.zeros((0, 5))) == 1  # no samples: nothing tells units apart
    assert distinct_units([1.0, 2.0, 1.0]) == 2  # one sample of three units
    assert distinct_units(np.eye(3, dtype=bool)) == 3
    with pytest.raises(ValueError, match="`values` must have at least one axis"):
        distinct_units(np.float32(1.0))
    with pytest.raises(ValueError, match="real numbers.*<U1"):
        distinct_units([["a", "b"]])
    with pytest.raises(ValueError, match="`atol` must be a number >= 0, got -1"):
        distinct_units(np.zeros((2, 2)), atol=-1)
    with pytest.raises(ValueError, match="`rtol` must be a number >= 0, got nan"):
        distinct_units(np.zeros((2, 2)), rtol=float("nan"))


@pytest.mark.slow
def test_big_layer_with_all_distinct_or_all_equal_units():
    """O(N U log U): 4096 distinct units (16.7M pairs, a brute-force count's worst case)."""
    rng = np.random.default_rng(4)
    assert distinct_units(rng.normal(size=(64, 4096))) == 4096
    assert distinct_units(np.tile(rng.normal(size=(64, 1)), (1, 4096))) == 1


# -- the in-step form: unit_spread in the accumulator -------------------------------------------
@pytest.mark.parametrize("axis", [-1, 1])
def test_unit_spread_is_the_largest_difference_from_the_first_unit(axis):
    rng = np.random.default_rng(5)
    values = rng.normal(size=(8, 5, 3)).astype("float32")
    values[2, 1, 0] = np.nan  # ignored: non-finite values are counted, not compared
    units = values.shape[axis]
    layout = Layout(bins=4, low=-1.0, high=1.0, units=units, unit_axis=axis)
    state = keras.ops.convert_to_tensor(layout.empty())
    state = fold(state, keras.ops.convert_to_tensor(values[:4]), layout)
    state = fold(state, keras.ops.convert_to_tensor(values[4:]), layout)  # max of two folds
    stats, _ = finalize(keras.ops.convert_to_numpy(state), layout)
    columns = np.moveaxis(values, axis, -1).reshape(-1, units).astype("float64")
    expected = np.nanmax(np.abs(columns - columns[:, :1]))
    assert stats["unit_spread"] == pytest.approx(expected, rel=1e-6)
    assert stats["dead_units"] == 0 and stats["units"] == units


def test_unit_spread_is_zero_for_identical_units_and_nan_without_units():
    record = layer_record(np.full((4, 6), 0.25, "float32"), "constant", "sigmoid")
    assert record.stats["unit_spread"] == 0.0 and symmetric_units(record.stats)
    assert math.isnan(layer_record(np.zeros((5,), "float32"), "flat", "linear")
                      .stats["unit_spread"])


def test_symmetric_rule_tells_tiny_random_units_from_identical_ones():
    rng = np.random.default_rng(6)
    collapsed = (rng.normal(size=(32, 16)) * 3e-7).astype("float32")  # tiny, but random
    constant = np.tile(rng.normal(size=(32, 1)), (1, 16)).astype("float32")
    assert not symmetric_units(layer_record(collapsed, "c", "tanh").stats)
    assert symmetric_units(layer_record(constant, "s", "tanh").stats)
    assert not symmetric_units({"units": 1.0, "unit_spread": 0.0, "min": 0.0, "max": 0.0})
    assert symmetric_units({"units": 8.0, "distinct_units": 1.0})
    assert not symmetric_units({"units": 8.0, "distinct_units": 2.0, "unit_spread": 0.0,
                                "min": 0.0, "max": 0.0})  # the exact count wins


def test_diagnosis_names_symmetric_layers_in_words_and_spares_softmax_heads():
    zeros = np.zeros((16, 64), "float32")
    records = [layer_record(zeros, "dense_3", "tanh"),
               layer_record(np.full((16, 10), 0.1, "float32"), "head", "softmax")]
    findings = diagnose(records, collapsed_std=1e-3)
    symmetric = [f for f in findings if f.condition == "symmetric"]
    assert [f.layer for f in symmetric] == ["dense_3"]
    assert symmetric[0].message.startswith(
        "symmetric: all 64 units of 'dense_3' compute the same function")
    assert "random initializer" in symmetric[0].message
    # the std-0 `identical` finding says less about the same layer: not repeated
    assert "identical" not in {f.condition for f in findings}


# -- ActivationStats during a real fit -----------------------------------------------------------
def mlp(initializer):
    return keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(16, "sigmoid", kernel_initializer=initializer, name="hidden_1"),
        keras.layers.Dense(12, "tanh", kernel_initializer=initializer, name="hidden_2"),
        keras.layers.Dense(3, "softmax", kernel_initializer=initializer, name="head"),
    ])


def fit_with_stats(initializer):
    from keras_initkit.callbacks import ActivationStats

    keras.utils.set_random_seed(0)
    model = mlp(initializer)
    model.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(7)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = rng.integers(0, 3, size=64)
    stats = ActivationStats(every=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[stats])
    return model, stats, [str(w.message) for w in caught]


@pytest.mark.parametrize("initializer", ["zeros", "constant"])
def test_activation_stats_reports_symmetry_once_per_layer(initializer):
    init = keras.initializers.Constant(0.1) if initializer == "constant" else initializer
    model, stats, caught = fit_with_stats(init)
    # 8 SGD steps: constant weights changed but stayed equal across units (zeros feeding
    # tanh get no gradient at all: tanh(0) = 0 zeroes the head's kernel gradient)
    kernel = keras.ops.convert_to_numpy(model.get_layer("hidden_2").kernel)
    changed = np.abs(kernel - (0.1 if initializer == "constant" else 0.0)).max()
    assert changed > 1e-3 if initializer == "constant" else changed == 0
    np.testing.assert_allclose(kernel, np.tile(kernel[:, :1], (1, 12)), rtol=1e-6)
    for layer, units in (("hidden_1", 16), ("hidden_2", 12)):
        records = [r for r in stats.records if r.layer == layer]
        assert len(records) == 8 and all(r.stats["unit_spread"] <= 1e-6 for r in records)
        said = [w for w in stats.warnings if f"all {units} units of '{layer}'" in w]
        assert len(said) == 1, stats.warnings
        assert said[0].startswith("ActivationStats: symmetric:")
        assert len([w for w in caught if f"units of '{layer}'" in w]) == 1
    assert not any("'head'" in w and "symmetric" in w for w in stats.warnings)  # softmax


def test_activation_stats_random_init_has_no_symmetry_warning():
    _, stats, caught = fit_with_stats("glorot_uniform")
    assert all(r.stats["unit_spread"] > 1e-2 for r in stats.records), [
        (r.layer, r.stats["unit_spread"]) for r in stats.records]
    assert not [w for w in stats.warnings + caught if "symmetric" in w]
