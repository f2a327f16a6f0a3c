"""The in-step fold against its first version, on random data with NaN and Inf.

`reference_fold` is `keras_initkit.stats.accumulator.fold` as it was before issue 18
(about 45 elementwise passes, per-statistic masks, a segment-sum histogram), kept
verbatim in `benchmarks/_first_fold.py` (the benchmark measures it too). The cheaper
fold must give the same vector: the histogram, the counts and the unit peaks exactly, the
moments and extremes bit-for-bit or within 1e-6 relative. Each case folds two tensors,
so the merge with a non-empty state is covered. The unit spread (issue 16, added after the
first version) is the last slot when there are units; the reference folds the vector without
it, and the spread is checked against NumPy.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from keras import ops

from keras_initkit.stats import summarize
from keras_initkit.stats.accumulator import (
    BATCHES,
    COUNT,
    HEAD,
    INF,
    M2,
    MAX,
    MEAN,
    MIN,
    NAN,
    NONFINITE_CALLS,
    SATURATED,
    ZEROS,
    Layout,
    finalize,
    fold,
)


def _load_reference():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "_first_fold.py"
    spec = importlib.util.spec_from_file_location("_first_fold", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_fold


reference_fold = _load_reference()


def _data(rng, shape, nonfinite=0.01, scale=2.0, offset=0.0):
    x = (offset + scale * rng.standard_normal(shape)).astype("float32")
    flat = x.reshape(-1)
    picks = rng.random(flat.size)
    flat[picks < nonfinite / 3] = np.nan
    flat[(picks >= nonfinite / 3) & (picks < 2 * nonfinite / 3)] = np.inf
    flat[(picks >= 2 * nonfinite / 3) & (picks < nonfinite)] = -np.inf
    flat[rng.random(flat.size) < 0.05] = 0.0  # exact zeros, as after a ReLU
    return x


LAYOUTS = {
    "tanh, saturation": (Layout(bins=50, low=-1.0, high=1.0, saturation=(-1.0, 1.0)), 0.0),
    "sigmoid, 0 saturated": (Layout(bins=20, low=0.0, high=1.0, saturation=(0.0, 1.0)), 0.5),
    "relu, units": (Layout(bins=50, low=0.0, high=5.0, units=16), 1.0),
    "channels first": (Layout(bins=10, low=-5.0, high=5.0, units=8, unit_axis=1), 0.0),
    "rows": (Layout(bins=50, low=-5.0, high=5.0, units=16, max_rows=3), 0.0),
    "one bin": (Layout(bins=1, low=-1.0, high=1.0), 0.0),
}


def _reference_state(layout):
    """The empty accumulator of the first version: no unit-spread slot."""
    empty = layout.empty()
    return ops.convert_to_tensor(empty[:-1] if layout.units else empty)


def _spread(x, layout):
    """NumPy's max finite |u_j - u_0| over rows and units."""
    rows = np.asarray(ops.convert_to_numpy(x))[: layout.max_rows]  # None: every row
    units = np.moveaxis(rows, layout.unit_axis, -1).reshape(-1, layout.units)
    with np.errstate(invalid="ignore"):
        gap = np.abs(units - units[:, :1])
    gap = gap[np.isfinite(gap)]
    return float(gap.max()) if gap.size else 0.0


def _assert_same(new, old):
    new, old = ops.convert_to_numpy(new), ops.convert_to_numpy(old)
    new = new[: old.shape[0]]
    assert new.shape == old.shape and new.dtype == old.dtype
    exact = [COUNT, ZEROS, SATURATED, NAN, INF, BATCHES, NONFINITE_CALLS]
    np.testing.assert_array_equal(new[exact], old[exact])
    np.testing.assert_allclose(new[[MEAN, MIN, MAX]], old[[MEAN, MIN, MAX]], rtol=1e-6, atol=0)
    np.testing.assert_allclose(new[M2], old[M2], rtol=1e-6, atol=0)
    np.testing.assert_array_equal(new[HEAD:], old[HEAD:])  # histogram and unit peaks


@pytest.mark.parametrize("name", list(LAYOUTS))
@pytest.mark.parametrize("nonfinite", [0.0, 0.02])
def test_fold_equals_the_reference_fold(name, nonfinite):
    layout, offset = LAYOUTS[name]
    rng = np.random.default_rng(len(name) + int(100 * nonfinite))
    shape = (6, 8, 5) if layout.unit_axis == 1 else (7, 5, layout.units or 9)
    new, old = ops.convert_to_tensor(layout.empty()), _reference_state(layout)
    spread = 0.0
    for scale in (0.7, 3.0):  # inside the range, then mostly in the under/overflow bins
        x = ops.convert_to_tensor(_data(rng, shape, nonfinite, scale, offset))
        new, old = fold(new, x, layout), reference_fold(old, x, layout)
        _assert_same(new, old)
        if layout.units:
            spread = max(spread, _spread(x, layout))
            assert float(ops.convert_to_numpy(new)[-1]) == pytest.approx(spread, rel=1e-6)


@pytest.mark.parametrize(
    "values",
    [
        [np.nan, np.nan],
        [np.inf, -np.inf, np.nan],
        [0.0, 0.0, 0.0],
        [3.0e38, -3.0e38, 1.0, np.inf],  # finite values whose scaled bin overflows
        [-1.0, 1.0, 0.995, -0.995, 0.0, 1.0e-8],  # on the saturation and bin edges
    ],
)
def test_fold_equals_the_reference_on_edge_cases(values):
    layout = Layout(bins=4, low=-1.0, high=1.0, units=1, saturation=(-1.0, 1.0))
    x = ops.convert_to_tensor(np.asarray(values, "float32").reshape(-1, 1))
    new = fold(ops.convert_to_tensor(layout.empty()), x, layout)
    _assert_same(new, reference_fold(_reference_state(layout), x, layout))


def test_summarize_equals_the_reference_summary():
    rng = np.random.default_rng(7)
    x = ops.convert_to_tensor(_data(rng, (40, 30), nonfinite=0.05, scale=0.8))
    layout = Layout(bins=1, low=-1.0, high=1.0, saturation=(-1.0, 1.0))
    state = ops.convert_to_tensor(layout.empty())
    reference, _ = finalize(ops.convert_to_numpy(reference_fold(state, x, layout)), layout)
    stats = summarize(x, bounds=(-1.0, 1.0))
    for name, value in stats.items():
        assert value == pytest.approx(reference[name], rel=1e-6, nan_ok=True), name
