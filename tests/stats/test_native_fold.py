"""The native folds (TensorFlow graph mode, eager torch, JAX) against the `keras.ops` fold.

`accumulator.fold_for` gives the training step a fold written in the backend's own ops
where that is faster (issue 18, lever 2); `accumulator.fold` (keras.ops) stays the
reference and the fallback. On random data with NaN, Inf, exact zeros and saturated
values, in float32, float16 and bfloat16, for dense, channels-last conv, sequence and
channels-first outputs, each native fold must give the reference's vector: counts,
histogram and unit peaks exactly, moments and extremes within 1e-6 relative (they are
equal bit for bit as measured; the tolerance leaves room for a kernel's summation order).
Each case folds twice, so the merge with a non-empty state is covered. A TensorFlow
step compiled by XLA (`jit_compile=True`) keeps the reference itself.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from keras_initkit.callbacks import ActivationStats
from keras_initkit.stats import accumulator
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
    fold,
    fold_for,
)

BACKEND = keras.backend.backend()
NATIVE = BACKEND in ("tensorflow", "torch", "jax")
needs_native = pytest.mark.skipif(not NATIVE, reason="no native fold on this backend")


def _data(rng, shape, nonfinite, scale, offset):
    x = (offset + scale * rng.standard_normal(shape)).astype("float32")
    flat = x.reshape(-1)
    picks = rng.random(flat.size)
    flat[picks < nonfinite / 3] = np.nan
    flat[(picks >= nonfinite / 3) & (picks < 2 * nonfinite / 3)] = np.inf
    flat[(picks >= 2 * nonfinite / 3) & (picks < nonfinite)] = -np.inf
    flat[rng.random(flat.size) < 0.05] = 0.0  # exact zeros, as after a ReLU
    flat[rng.random(flat.size) < 0.05] = 1.0  # on a saturation bound and a bin edge
    return x


# name: (layout, input shape, offset)
CASES = {
    "dense tanh": (Layout(bins=50, low=-1.0, high=1.0, units=16, saturation=(-1.0, 1.0)),
                   (7, 16), 0.0),
    "dense sigmoid, 0 saturated": (
        Layout(bins=20, low=0.0, high=1.0, units=9, saturation=(0.0, 1.0)), (5, 9), 0.5),
    "conv NHWC relu": (Layout(bins=50, low=0.0, high=5.0, units=8), (3, 6, 5, 8), 1.0),
    "sequence": (Layout(bins=30, low=-5.0, high=5.0, units=6), (4, 11, 6), 0.0),
    "channels first": (Layout(bins=10, low=-5.0, high=5.0, units=8, unit_axis=1),
                       (6, 8, 5), 0.0),
    "rows": (Layout(bins=50, low=-5.0, high=5.0, units=16, max_rows=3), (7, 5, 16), 0.0),
    "no units": (Layout(bins=1, low=-1.0, high=1.0, saturation=(-1.0, 1.0)), (9, 4), 0.0),
}


def _native():
    """The native fold, run as the training step runs it (in a graph on TensorFlow)."""
    native = fold_for()
    if BACKEND == "jax":
        import jax

        return lambda state, x, layout: jax.jit(lambda s, v: native(s, v, layout))(state, x)
    if BACKEND != "tensorflow":
        return native
    import tensorflow as tf

    def in_graph(state, x, layout):
        return tf.function(lambda s, v: native(s, v, layout), autograph=False)(state, x)

    return in_graph


def _assert_same(new, old):
    new, old = ops.convert_to_numpy(new), ops.convert_to_numpy(old)
    assert new.shape == old.shape and new.dtype == old.dtype == np.float32
    exact = [COUNT, ZEROS, SATURATED, NAN, INF, BATCHES, NONFINITE_CALLS]
    np.testing.assert_array_equal(new[exact], old[exact])
    np.testing.assert_allclose(new[[MEAN, M2, MIN, MAX]], old[[MEAN, M2, MIN, MAX]],
                               rtol=1e-6, atol=0)
    np.testing.assert_array_equal(new[HEAD:], old[HEAD:])  # histogram, peaks, spread


@needs_native
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("nonfinite", [0.0, 0.03])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_native_fold_equals_the_keras_ops_fold(name, nonfinite, dtype):
    layout, shape, offset = CASES[name]
    native = _native()
    assert native is not fold
    rng = np.random.default_rng(len(name) + int(100 * nonfinite))
    new = old = ops.convert_to_tensor(layout.empty())
    for scale in (0.7, 3.0):  # inside the range, then mostly in the under/overflow bins
        x = ops.cast(ops.convert_to_tensor(_data(rng, shape, nonfinite, scale, offset)), dtype)
        new, old = native(new, x, layout), fold(old, x, layout)
        _assert_same(new, old)
    assert float(ops.convert_to_numpy(new)[COUNT]) > 0


@needs_native
@pytest.mark.parametrize(
    "values",
    [
        [np.nan, np.nan],
        [np.inf, -np.inf, np.nan],
        [0.0, 0.0, 0.0],
        [3.0e38, -3.0e38, 1.0],  # finite, but the sum, the moments and the gaps overflow
        [3.0e38, 3.0e38, 1.0],  # finite values whose sum overflows: the masked branch
        [-1.0, 1.0, 0.995, -0.995, 0.0, 1.0e-8],  # on the saturation and bin edges
        [0.1, 16777216.0, -3.0e-9, 7.0, -16777215.0, -0.0],  # gaps that round
        [-3.0e38, 3.0e38, 2.0e38, -1.0],  # a row's extremes overflow, some gaps do not
    ],
)
def test_native_fold_equals_the_keras_ops_fold_on_edge_cases(values):
    layout = Layout(bins=4, low=-1.0, high=1.0, units=1, saturation=(-1.0, 1.0))
    x = ops.convert_to_tensor(np.asarray(values, "float32").reshape(-1, 1))
    wide = ops.convert_to_tensor(np.asarray(values, "float32").reshape(1, -1))
    for tensor, units in ((x, 1), (wide, len(values))):
        layout = Layout(bins=4, low=-1.0, high=1.0, units=units, saturation=(-1.0, 1.0))
        state = ops.convert_to_tensor(layout.empty())
        _assert_same(_native()(state, tensor, layout), fold(state, tensor, layout))


_TANH = Layout(bins=50, low=-1.0, high=1.0, units=16, saturation=(-1.0, 1.0))
_SIGMOID = Layout(bins=20, low=0.0, high=1.0, units=9, saturation=(0.0, 1.0))
_RELU = Layout(bins=50, low=0.0, high=5.0, units=16)
_EDGE = float(np.float32(0.99))  # tanh's saturation edge, as a float32 compares it
_INWARD = float(np.nextafter(np.float32(0.99), np.float32(0.0)))


def _uniform(rng, shape, low, high, specials=()):
    """Uniform float32 values, the `specials` written over the first ones."""
    x = rng.uniform(low, high, shape).astype("float32")
    x.reshape(-1)[: len(specials)] = specials
    return x


# name: (layout, values(rng)). The torch fold skips passes when a tensor's extremes allow
# (no zero, no saturated value, no value outside the histogram's range or below its low
# edge) and reduces short rows in blocks: each case takes one such path, or sits just
# off it, and every native fold must give the reference's vector.
FAST_PATH_CASES = {
    "in range: no clamp, no floor": (
        _TANH, lambda rng: _uniform(rng, (40, 16), -1.0, 1.0, [-1.0, 0.96, -0.96, 0.0, 0.04])),
    "positive: no zero, nothing saturated": (
        _TANH, lambda rng: _uniform(rng, (40, 16), 0.1, 0.5)),
    "negative: no zero, nothing saturated": (
        _TANH, lambda rng: _uniform(rng, (40, 16), -0.5, -0.1)),
    "just inside the saturation margins": (
        _TANH, lambda rng: _uniform(rng, (40, 16), -0.5, 0.5, [_INWARD, -_INWARD])),
    "on a saturation edge, one side": (
        _TANH, lambda rng: _uniform(rng, (40, 16), 0.1, 0.5, [_EDGE])),
    "on both saturation edges": (
        _TANH, lambda rng: _uniform(rng, (40, 16), -0.5, 0.5, [_EDGE, -_EDGE, 1.0])),
    "asymmetric margins, nothing saturated": (
        _SIGMOID, lambda rng: _uniform(rng, (30, 9), 0.2, 0.8)),
    "asymmetric margins, zeros saturate": (
        _SIGMOID, lambda rng: _uniform(rng, (30, 9), 0.0, 1.0, [0.0, 0.005, 0.995, 1.0])),
    "above the range only: clamp, no floor": (
        _RELU, lambda rng: np.abs(4.0 * rng.standard_normal((30, 16))).astype("float32")),
    "tiny negatives: the floor": (
        _RELU, lambda rng: _uniform(rng, (30, 16), 0.0, 4.0, [-1e-9, -0.0, 1e-9, 0.0])),
    "a minimum of -0.0": (
        _RELU, lambda rng: _uniform(rng, (30, 16), 0.5, 4.0, [-0.0, 0.0])),
    "a low edge float32 rounds": (
        Layout(bins=8, low=-0.1, high=0.7, units=4),
        lambda rng: _uniform(rng, (300, 4), -0.1, 0.7, [-0.1, np.float32(-0.1), 0.7])),
    "leftover rows (3 units)": (
        Layout(bins=10, low=-2.0, high=2.0, units=3),
        lambda rng: rng.standard_normal((1001, 3)).astype("float32")),
    "blocks of whole rows (3 units)": (
        Layout(bins=10, low=-2.0, high=2.0, units=3),
        lambda rng: rng.standard_normal((1000, 3)).astype("float32")),
    "one unit": (
        Layout(bins=10, low=-2.0, high=2.0, units=1),
        lambda rng: rng.standard_normal((3000, 1)).astype("float32")),
    "no units, 257 x 3 values": (
        Layout(bins=10, low=-2.0, high=2.0, saturation=(-2.0, 2.0)),
        lambda rng: rng.standard_normal((257, 3)).astype("float32")),
    "9000 bins: int32 indices": (
        Layout(bins=9000, low=-3.0, high=3.0, units=4),
        lambda rng: rng.standard_normal((300, 4)).astype("float32")),
    "in range, one NaN": (
        _TANH, lambda rng: _uniform(rng, (40, 16), -0.5, 0.5, [0.0, np.nan])),
    "positive, one Inf": (
        _TANH, lambda rng: _uniform(rng, (40, 16), 0.1, 0.5, [np.inf])),
}


@needs_native
@pytest.mark.parametrize("name", list(FAST_PATH_CASES))
def test_native_fold_equals_the_keras_ops_fold_on_its_shortcuts(name):
    layout, make = FAST_PATH_CASES[name]
    rng = np.random.default_rng(11)
    new = old = ops.convert_to_tensor(layout.empty())
    for _ in range(2):  # the second merges into a non-empty state
        x = ops.convert_to_tensor(make(rng))
        new, old = _native()(new, x, layout), fold(old, x, layout)
        _assert_same(new, old)
        if BACKEND == "torch":  # the same float32 arithmetic: equal bit for bit
            np.testing.assert_array_equal(
                ops.convert_to_numpy(new).view("uint32"), ops.convert_to_numpy(old).view("uint32")
            )


def test_fold_for_picks_the_keras_ops_fold_where_there_is_no_native_one(monkeypatch):
    # XLA (TensorFlow) and torch.compile fuse keras.ops already; JAX's fold is compiled too
    assert (fold_for(jit_compile=True) is fold) == (BACKEND != "jax")
    monkeypatch.setattr(accumulator, "NATIVE_FOLD", False)
    assert fold_for() is fold
    monkeypatch.setattr(accumulator, "NATIVE_FOLD", True)
    monkeypatch.setenv(accumulator.FOLD_ENV, "keras_ops")
    assert fold_for() is fold
    monkeypatch.setenv(accumulator.FOLD_ENV, "native")
    assert (fold_for() is not fold) == NATIVE
    monkeypatch.setenv(accumulator.FOLD_ENV, "fast")
    with pytest.raises(ValueError, match="KERAS_INITKIT_FOLD must be 'native' or 'keras_ops'"
                                         "; got 'fast'"):
        fold_for()


def test_native_modules_of_other_backends_are_never_imported():
    # A fresh interpreter: in this one, pytest's doctest collection imported every module.
    # Also GradientStats' kernels: asked for the native ones, only TensorFlow has them.
    probe = (
        "import sys, keras_initkit\n"
        "from keras_initkit.stats import gradients\n"
        "from keras_initkit.stats.accumulator import fold_for\n"
        "fold_for()\n"
        "gradients._Kernels(native=True)\n"
        "print(sorted(m for m in sys.modules if m.startswith('keras_initkit.stats._fold_')\n"
        "             or m.startswith('keras_initkit.stats._gradient_kernels_')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
        env={**os.environ, "KERAS_BACKEND": BACKEND, accumulator.FOLD_ENV: "native"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported = result.stdout.strip().splitlines()[-1]
    expected = {
        # `_fold_finite` is keras.ops (TensorFlow's fold takes its finite branch from it)
        "tensorflow": ["_fold_finite", "_fold_tensorflow", "_gradient_kernels_tensorflow"],
        "torch": ["_fold_torch"],
        "jax": ["_fold_finite"],
    }
    names = expected.get(BACKEND, [])
    assert imported == str([f"keras_initkit.stats.{name}" for name in names])


def _fit_records(monkeypatch, native, policy=None, steps_per_execution=1):
    monkeypatch.setattr(accumulator, "NATIVE_FOLD", native)
    if policy:
        monkeypatch.setattr(keras.config, "dtype_policy", keras.config.dtype_policy)
        keras.config.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(3)
        inputs = keras.Input((6, 6, 2))
        # tanh, not relu: TensorFlow's graph mode fuses Conv2D and ReLU into one kernel,
        # whose max(x, 0) turns the NaN below into 0 (the recorded output has none)
        x = keras.layers.Conv2D(4, 3, activation="tanh", name="conv")(inputs)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(8, activation="tanh", name="dense")(x)
        outputs = keras.layers.Dense(3, activation="softmax", name="out")(x)
        model = keras.Model(inputs, outputs)
        model.compile("sgd", "sparse_categorical_crossentropy",
                      steps_per_execution=steps_per_execution)
        rng = np.random.default_rng(0)
        data = rng.standard_normal((48, 6, 6, 2)).astype("float32")
        data[45, 2, 2, 1] = np.nan  # the last batch has a NaN: the masked branch
        labels = rng.integers(0, 3, 48)
        callback = ActivationStats(every=2, batches_per_record="all", on_nan="warn", warn=False)
        model.fit(data, labels, batch_size=8, epochs=1, shuffle=False, verbose=0,
                  callbacks=[callback])
    finally:
        if policy:
            keras.config.set_dtype_policy("float32")
    return callback.records


@needs_native
@pytest.mark.parametrize(
    ("policy", "steps_per_execution"),
    [(None, 1), ("mixed_float16", 1), ("mixed_bfloat16", 1), (None, 2)],
)
def test_fit_records_are_the_same_with_the_native_fold(monkeypatch, policy,
                                                        steps_per_execution):
    if BACKEND == "torch" and steps_per_execution > 1:
        pytest.skip("torch has no steps_per_execution")
    native = _fit_records(monkeypatch, True, policy, steps_per_execution)
    reference = _fit_records(monkeypatch, False, policy, steps_per_execution)
    assert len(native) == len(reference) > 0
    assert any(r.stats["nan_count"] > 0 for r in native)
    for a, b in zip(native, reference, strict=True):
        assert (a.layer, a.step) == (b.layer, b.step)
        np.testing.assert_array_equal(a.counts, b.counts)
        for key, value in b.stats.items():
            # (abs: a mean near 0 of values near 1, summed in another order)
            assert a.stats[key] == pytest.approx(value, rel=1e-6, abs=1e-7, nan_ok=True), key


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's graph-mode fold")
@pytest.mark.parametrize("histogram_every, kinds", [(1, 2), (10, 4)])
def test_tensorflow_traces_the_fold_once_per_activation_kind_not_per_layer(
    histogram_every, kinds
):
    """Twelve ReLU layers of twelve widths and two tanh layers share two traced folds
    (four when windows without a histogram fold with a second one).

    Each watched layer used to trace its own fold (about 150 ops, with the non-finite
    fallback) into the step: DenseNet121's first `fit` took 5.4x plain `fit`'s.
    """
    from keras_initkit.stats import _fold_tensorflow

    widths = [8 + 3 * i for i in range(12)]
    model = keras.Sequential(
        [keras.Input((6,))]
        + [keras.layers.Dense(w, activation="relu") for w in widths]
        + [keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(7, activation="tanh")]
        + [keras.layers.Dense(2)]
    )
    model.compile(optimizer="sgd", loss="mse")
    _fold_tensorflow.TRACED.clear()  # other tests' layouts (it only costs a retrace)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 6)).astype("float32"), rng.standard_normal((8, 2))
    stats = ActivationStats(every=1, histogram_every=histogram_every, warn=False)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[stats])
    hidden = {layer.name for layer in model.layers[:-1]}
    assert {r.layer for r in stats.records} >= hidden
    # one traced fold per layout key: ReLU's and tanh's (each with and without histogram)
    assert len(_fold_tensorflow.TRACED) == kinds, list(_fold_tensorflow.TRACED)
    for function in _fold_tensorflow.TRACED.values():
        assert function.experimental_get_tracing_count() == 1


def _recurrent_model():
    return keras.Sequential([
        keras.Input((12, 8)),
        keras.layers.LSTM(16, return_sequences=True, name="lstm"),
        keras.layers.GRU(8, name="gru"),
        keras.layers.Dense(10, activation="softmax", name="out"),
    ])


def _transformer_block():
    """A keras.io-style encoder block: attention, residuals, layer norms, a GELU MLP."""
    inputs = keras.Input((10, 16))
    attended = keras.layers.MultiHeadAttention(2, 8, name="attention")(inputs, inputs)
    h = keras.layers.LayerNormalization(name="norm_1")(inputs + attended)
    f = keras.layers.Dense(32, activation="gelu", name="mlp_in")(h)
    f = keras.layers.Dense(16, name="mlp_out")(f)
    h = keras.layers.LayerNormalization(name="norm_2")(h + f)
    pooled = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="out")(pooled))


def _records_of(monkeypatch, native, build):
    monkeypatch.setattr(accumulator, "NATIVE_FOLD", native)
    keras.utils.set_random_seed(1)
    model = build()
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, *model.input_shape[1:])).astype("float32")
    callback = ActivationStats(every=1, batches_per_record="all", warn=False)
    model.fit(x, rng.integers(0, 10, 16), batch_size=8, epochs=1, shuffle=False, verbose=0,
              callbacks=[callback])
    return callback.records


@needs_native
@pytest.mark.parametrize("build", [_recurrent_model, _transformer_block],
                         ids=["lstm_gru", "transformer"])
def test_native_fold_records_equal_on_recurrent_and_attention_models(monkeypatch, build):
    # Models the fold tests above do not build: recurrent layers (whose activations come
    # out of a scan or a loop) and a Transformer block (GELU, attention, layer norms).
    native = _records_of(monkeypatch, True, build)
    reference = _records_of(monkeypatch, False, build)
    assert len(native) == len(reference) > 0
    for a, b in zip(native, reference, strict=True):
        assert (a.layer, a.step) == (b.layer, b.step)
        np.testing.assert_array_equal(a.counts, b.counts)
        for key, value in b.stats.items():
            # 1e-5: XLA sums the 2560 GELU outputs of a JAX step in another order in the
            # two folds (the mean moved by 1.1e-6 relative)
            assert a.stats[key] == pytest.approx(value, rel=1e-5, abs=1e-7, nan_ok=True), key


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("nonfinite", [0.0, 0.03])
def test_a_fold_without_histogram_leaves_it_and_computes_the_rest_alike(name, nonfinite):
    """`Layout(histogram=False)` (a window of `histogram_every`): the histogram slots keep
    the state's counts; every other slot is the full fold's, natively and in keras.ops."""
    layout, shape, offset = CASES[name]
    bare = dataclasses.replace(layout, histogram=False)
    folds = [fold] + ([_native()] if NATIVE else [])
    rng = np.random.default_rng(7 + len(name) + int(100 * nonfinite))
    start = ops.convert_to_tensor(layout.empty())
    for scale in (0.7, 3.0):
        x = ops.convert_to_tensor(_data(rng, shape, nonfinite, scale, offset))
        full = ops.convert_to_numpy(fold(start, x, layout))
        for each in folds:
            new = ops.convert_to_numpy(each(start, x, bare))
            end = HEAD + layout.bins + 2
            np.testing.assert_array_equal(new[HEAD:end], ops.convert_to_numpy(start)[HEAD:end])
            exact = [COUNT, ZEROS, SATURATED, NAN, INF, BATCHES, NONFINITE_CALLS]
            np.testing.assert_array_equal(new[exact], full[exact])
            np.testing.assert_array_equal(new[end:], full[end:])  # peaks, spread
            # XLA may sum in another order in a program without the histogram (JAX: 3e-6)
            moments = [MEAN, M2, MIN, MAX]
            np.testing.assert_allclose(new[moments], full[moments], rtol=1e-5, atol=1e-7)
        start = ops.convert_to_tensor(full)  # the next fold merges into a non-empty state
    assert np.sum(ops.convert_to_numpy(start)[HEAD:HEAD + layout.bins + 2]) > 0


@pytest.mark.parametrize("name", ["dense tanh", "conv NHWC relu", "no units"])
@pytest.mark.parametrize("nonfinite", [0.0, 0.03])
def test_a_histogram_decided_in_the_step_gives_the_fold_of_either_layout(name, nonfinite):
    """`fold(..., histogram=flag)` (a `cond` around the count alone, what a compiled step
    runs when histograms come once in `histogram_every` steps) equals the fold of
    `layout` when the flag holds and of `Layout(histogram=False)` when it does not."""
    from keras_initkit.stats import _fold_finite

    layout, shape, offset = CASES[name]
    bare = dataclasses.replace(layout, histogram=False)
    rng = np.random.default_rng(3 + len(name) + int(100 * nonfinite))
    state = ops.convert_to_tensor(layout.empty())
    x = ops.convert_to_tensor(_data(rng, shape, nonfinite, 0.7, offset))
    for each in (fold, _fold_finite.fold):
        assert each.takes_histogram
        for flag, reference in ((True, layout), (False, bare)):
            new = each(state, x, layout, histogram=ops.convert_to_tensor(flag))
            _assert_same(new, fold(state, x, reference))
