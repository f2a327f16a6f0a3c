"""ActivationStats on real training runs: numbers, side effects, model kinds, outputs."""

from __future__ import annotations

import json
import math
import os
import warnings

import keras
import numpy as np
import pytest
from _record_sizes import RecordSizes

import keras_initkit
from keras_initkit._capture import capture_outputs
from keras_initkit.callbacks import ActivationStats, ActivationStatsWarning

BACKEND = keras.backend.backend()


# -- models of every kind ---------------------------------------------------------------
def sequential():
    return keras.Sequential(
        [
            keras.Input((12,)),
            keras.layers.Dense(16, "tanh", name="dense"),
            keras.layers.Dense(16, name="linear"),
            keras.layers.ReLU(name="relu"),
            keras.layers.Dense(3, "softmax", name="out"),
        ]
    )


def functional():
    inputs = keras.Input((12,))
    a = keras.layers.Dense(16, "sigmoid")(inputs)
    b = keras.layers.Dense(16, name="pre")(inputs)
    b = keras.layers.Activation("relu", name="act")(b)
    merged = keras.layers.Concatenate()([a, b])
    return keras.Model(inputs, keras.layers.Dense(3, "softmax")(merged))


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(16, "tanh")
        self.pre = keras.layers.Dense(16)
        self.act = keras.layers.ReLU()
        self.out = keras.layers.Dense(3, "softmax")

    def call(self, x):
        return self.out(self.act(self.pre(self.hidden(x))))


def nested():
    inner = keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(16, name="dense_1"),
            keras.layers.ReLU(name="re_lu"),
        ],
        name="inner",
    )
    inputs = keras.Input((12,))
    h = keras.layers.Dense(16, "tanh", name="first")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, "softmax")(inner(h)))


KINDS = {"sequential": sequential, "functional": functional, "subclassed": Subclassed,
         "nested": nested}


def data(rows=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, 12)).astype("float32"), rng.integers(0, 3, rows)


def compiled(model, lr=0.0, **kwargs):
    model.compile(keras.optimizers.SGD(lr), "sparse_categorical_crossentropy", **kwargs)
    return model


def reference_outputs(model, batches):
    """Each watched layer's outputs on `batches` (weights fixed), by an eager pass."""
    from keras_initkit.stats.targets import select

    targets = select(model, None)
    outputs = {t.path: [] for t in targets}
    with capture_outputs([t.layer for t in targets]) as records:
        for batch in batches:
            model(batch)
            for t in targets:
                outputs[t.path].append(keras.ops.convert_to_numpy(records[id(t.layer)]))
    return {path: np.stack(v) for path, v in outputs.items()}, targets


def numpy_histogram(values, low, high, bins):
    scaled = (values - low) * (bins / (high - low))
    index = np.floor(np.clip(scaled, -1.0, bins)).astype(int) + 1
    return np.bincount(index, minlength=bins + 2).astype(float)


# -- the numbers ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_records_equal_numpy_on_the_same_batches(kind):
    x, y = data(64)
    model = compiled(KINDS[kind]())
    model(x[:1])  # build (subclassed models learn their shapes on the first step)
    stats = ActivationStats(every=2, batches_per_record="all", bins=20, histogram_every=1)
    # Two epochs: the first fit step of a subclassed model learns output widths.
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=[stats])
    expected, targets = reference_outputs(model, [x[i:i + 16] for i in range(0, 64, 16)])
    last_epoch = [r for r in stats.records if r.epoch == 1]
    assert {r.layer for r in last_epoch} == {t.path for t in targets}
    assert sorted({r.batch for r in last_epoch}) == [1, 3]
    for record in last_epoch:
        first = record.batch - 1
        values = expected[record.layer][first:first + 2].astype("float64")
        flat = values.reshape(-1)
        s = record.stats
        assert s["count"] == flat.size and s["batches"] == 2
        np.testing.assert_allclose(s["mean"], flat.mean(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(s["std"], flat.std(), rtol=1e-5)
        np.testing.assert_allclose([s["min"], s["max"]], [flat.min(), flat.max()], rtol=1e-6)
        assert s["zero_fraction"] == pytest.approx(np.mean(flat == 0.0))
        units = values.reshape(-1, values.shape[-1])
        assert s["units"] == values.shape[-1]
        assert s["dead_units"] == np.sum(np.all(units == 0.0, axis=0))
        np.testing.assert_array_equal(
            record.counts,
            numpy_histogram(flat, record.edges[0], record.edges[-1], 20),
        )
        if record.activation in ("tanh", "sigmoid"):
            low, high = (-1.0, 1.0) if record.activation == "tanh" else (0.0, 1.0)
            margin = 0.01 * (high - low) / 2
            expected_sat = np.mean((flat <= low + margin) | (flat >= high - margin))
            assert s["saturated_fraction"] == pytest.approx(expected_sat)
        else:
            assert math.isnan(s["saturated_fraction"])


def test_default_records_one_batch_per_window_the_last_one():
    x, y = data(160)
    model = compiled(sequential())
    stats = ActivationStats(every=5)
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[stats])
    assert sorted({r.step for r in stats.records}) == [5, 10]
    expected, _ = reference_outputs(model, [x[64:80], x[144:160]])  # batches 4 and 9
    for record in stats.records:
        assert record.stats["batches"] == 1
        window = 0 if record.step == 5 else 1
        np.testing.assert_allclose(
            record.stats["mean"], expected[record.layer][window].mean(), rtol=1e-5, atol=1e-6
        )


def test_max_rows_folds_only_the_first_rows():
    x, y = data(32)
    model = compiled(sequential())
    stats = ActivationStats(every=2, max_rows=4)
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[stats])
    expected, _ = reference_outputs(model, [x[16:20]])
    record = stats.records[0]
    assert record.stats["count"] == expected[record.layer].size
    np.testing.assert_allclose(record.stats["std"], expected[record.layer].std(), rtol=1e-5)


def test_training_is_unchanged_by_the_callback():
    x, y = data(96)
    losses, weights = [], []
    for callbacks in ([], [ActivationStats(every=1, batches_per_record="all")]):
        keras.utils.set_random_seed(3)
        model = compiled(sequential(), lr=0.1)
        history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
                            callbacks=callbacks)
        losses.append(history.history["loss"])
        weights.append([keras.ops.convert_to_numpy(w) for w in model.weights])
    np.testing.assert_array_equal(losses[0], losses[1])
    assert len(weights[0]) == len(weights[1])
    for a, b in zip(weights[0], weights[1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_jit_compile_on_matches_numpy():
    if BACKEND == "torch" and not os.environ.get("KERAS_INITKIT_TORCH_COMPILE"):
        pytest.skip("torch.compile takes ~85 s on 2 CPUs (passes); set "
                    "KERAS_INITKIT_TORCH_COMPILE=1 to run it")
    x, y = data(32)
    model = compiled(sequential(), jit_compile=True)
    stats = ActivationStats(every=2, batches_per_record="all")
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[stats])
    expected, _ = reference_outputs(model, [x[:16], x[16:]])
    for record in stats.records:
        np.testing.assert_allclose(record.stats["std"], expected[record.layer].std(), rtol=1e-5)


def test_steps_per_execution_windows_end_on_execution_boundaries():
    if BACKEND == "torch":
        pytest.skip("Keras does not support steps_per_execution > 1 on torch")
    x, y = data(128)
    model = compiled(sequential(), steps_per_execution=4)
    stats = ActivationStats(every=3, batches_per_record="all")
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[stats])
    # Batch ends arrive at 3, 7: windows [0, 4) and [4, 8).
    assert sorted({r.step for r in stats.records}) == [4, 8]
    expected, _ = reference_outputs(model, [x[i:i + 16] for i in range(64, 128, 16)])
    record = next(r for r in stats.records if r.step == 8)
    assert record.stats["batches"] == 4
    np.testing.assert_allclose(record.stats["std"], expected[record.layer].std(), rtol=1e-5)


def test_mixed_precision_statistics_in_float32():
    x, y = data(32)
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        model = compiled(sequential())
        stats = ActivationStats(every=2, batches_per_record="all")
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[stats])
        expected, _ = reference_outputs(model, [x[:16], x[16:]])
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    for record in stats.records:
        values = expected[record.layer].astype("float32")
        assert record.stats["count"] == values.size
        np.testing.assert_allclose(record.stats["std"], values.std(), rtol=1e-4)


def test_validation_evaluate_and_predict_are_not_recorded():
    x, y = data(64)
    model = compiled(sequential())

    class Meddler(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.model.predict_on_batch(x[:8])

    stats = ActivationStats(every="epoch", batches_per_record="all")
    model.fit(x[:32], y[:32], batch_size=16, epochs=1, shuffle=False, verbose=0,
              validation_data=(x, y), callbacks=[stats, Meddler()])
    (record, *_) = stats.records
    assert record.stats["count"] == 32 * 16 and record.stats["batches"] == 2


# -- the model after fit --------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_model_is_the_original_after_fit(kind, tmp_path):
    x, y = data(32)
    model = compiled(KINDS[kind]())
    model(x[:1])
    before = [w.path for w in model.weights]
    stats = ActivationStats(every=1)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[stats])
    assert stats.records
    assert [w.path for w in model.weights] == before
    assert not any("activation_stats" in v.path for v in model.variables)
    for layer in model._flatten_layers():
        assert "call" not in layer.__dict__ and "save_own_variables" not in layer.__dict__
    assert "train_step" not in model.__dict__
    path = str(tmp_path / "model.weights.h5")
    model.save_weights(path)
    clean = KINDS[kind]()
    clean(x[:1])
    clean.load_weights(path)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(clean(x)), keras.ops.convert_to_numpy(model(x)), rtol=1e-6
    )
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # plain fit works again


def test_memory_stays_bounded_over_a_long_run_and_the_files_keep_everything(tmp_path):
    x, y = data(64)
    model = compiled(sequential())
    stats = ActivationStats(every=1, warn=False, max_records=40, log_dir=tmp_path)
    sizes = RecordSizes(stats)
    model.fit(x, y, batch_size=2, epochs=3, verbose=0, callbacks=[stats, sizes])  # 96 steps
    assert max(sizes.sizes) <= 40
    layers = {r.layer for r in stats.records}
    steps = sorted({r.step for r in stats.records})
    assert steps[-1] == 96 and steps[0] <= 2  # the whole run's span
    assert all({r.layer for r in stats.records if r.step == s} == layers for s in steps)
    written, _ = keras_initkit.stats.load_json(tmp_path / "activation_stats.jsonl")
    assert len(written) > len(stats.records)
    assert {r.step for r in written} == set(range(steps[0], 97))


def test_checkpoint_written_mid_fit_loads_into_the_plain_model(tmp_path):
    x, y = data(32)
    model = compiled(sequential())
    path = str(tmp_path / "mid.keras")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[
        ActivationStats(every=1), keras.callbacks.ModelCheckpoint(path, save_freq=1)])
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert len(loaded.weights) == len(model.weights)
    loaded.predict(x, verbose=0)


def test_one_callback_reused_across_fits_keeps_counting():
    x, y = data(32)
    model = compiled(sequential())
    stats = ActivationStats(every=2)
    for _ in range(2):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[stats])
    assert [(r.fit, r.step) for r in stats.records if r.layer == "dense"] == [(0, 2), (1, 4)]


class Branching(keras.Model):
    """Calls `positive` on batches whose mean is positive, `negative` on the others."""

    def __init__(self):
        super().__init__()
        self.positive = keras.layers.Dense(8, "tanh", name="positive")
        self.negative = keras.layers.Dense(8, "tanh", name="negative")
        self.out = keras.layers.Dense(3, "softmax", name="out")

    def build(self, input_shape):
        self.positive.build(input_shape)
        self.negative.build(input_shape)
        self.out.build((None, 8))

    def call(self, x):
        hidden = keras.ops.cond(
            keras.ops.mean(x) > 0, lambda: self.positive(x), lambda: self.negative(x)
        )
        return self.out(hidden)


@pytest.mark.skipif(BACKEND == "jax", reason="a layer call inside a JAX cond cannot assign")
def test_a_layer_skipped_by_a_step_has_no_record_for_that_window():
    # Each window is one batch. A window where a layer is not called reads as empty
    # (the accumulator still holds an older window) and has no record for that layer;
    # where it is called, the record is of that batch alone.
    x, y = data(64)
    x = np.abs(x)
    x[16:32] *= -1.0  # batch 1 (of 0..3) takes the negative branch, the others the positive
    model = compiled(Branching())
    model.build((None, 12))
    stats = ActivationStats(every=1, layers=["positive", "negative"], warn=False)
    # Two epochs: the first step of a subclassed model learns the output widths.
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=[stats])
    last = [r for r in stats.records if r.epoch == 1]
    batches = {layer: [r.batch for r in last if r.layer == layer]
               for layer in ("positive", "negative")}
    assert batches == {"positive": [0, 2, 3], "negative": [1]}
    for record in last:
        batch = x[record.batch * 16:(record.batch + 1) * 16]
        layer = getattr(model, record.layer)
        expected = keras.ops.convert_to_numpy(layer(batch)).astype("float64")
        assert record.stats["count"] == expected.size and record.stats["batches"] == 1
        np.testing.assert_allclose(record.stats["mean"], expected.mean(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(record.stats["max"], expected.max(), rtol=1e-6)


# -- the lesson -------------------------------------------------------------------------
def seeds_mlp(init):
    layers = [keras.Input((500,))]
    layers += [keras.layers.Dense(500, "tanh", kernel_initializer=init) for _ in range(10)]
    return keras.Sequential(layers + [keras.layers.Dense(10, "softmax")])


def test_seeds_experiment_collapse_is_recorded_and_named():
    x = np.random.default_rng(0).normal(size=(256, 500)).astype("float32")
    y = np.zeros(256, "int64")
    stds = {}
    for name, init in (
        ("small", keras.initializers.RandomNormal(stddev=0.01)),
        ("glorot", keras_initkit.initializers.GlorotNormal()),
    ):
        model = compiled(seeds_mlp(init))
        stats = ActivationStats(every=1, warn=False)
        model.fit(x, y, batch_size=256, epochs=1, verbose=0, callbacks=[stats])
        stds[name] = [r.stats["std"] for r in stats.records][:10]
        stats_warnings = stats.warnings
        if name == "small":
            assert any("vanish" in w for w in stats_warnings), stats_warnings
        else:
            assert not any("vanish" in w for w in stats_warnings), stats_warnings
    assert all(a > b for a, b in zip(stds["small"], stds["small"][1:], strict=False))
    assert stds["small"][-1] < 1e-4
    assert min(stds["glorot"]) > 0.15


def test_nan_is_reported_and_stops_training():
    x, y = data(64)
    model = keras.Sequential([
        keras.Input((12,)),
        keras.layers.Dense(8, "tanh"),
        keras.layers.Activation(keras.ops.log, name="log"),  # log of negatives: NaN
        keras.layers.Dense(3, "softmax"),
    ])
    compiled(model, lr=0.1)
    stats = ActivationStats(every=50, on_nan="stop", warn=False)
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[stats])
    assert len(history.history["loss"]) == 1  # stopped in the first epoch
    assert stats.stopped_by is not None and stats.stopped_by.layer == "log"
    assert any("'log'" in w and "NaN" in w for w in stats.warnings)
    assert "call" not in model.layers[1].__dict__


def test_warnings_are_emitted_once_per_condition_and_layer():
    x = np.random.default_rng(0).normal(size=(64, 20)).astype("float32")
    model = keras.Sequential([keras.Input((20,))] + [
        keras.layers.Dense(32, "tanh", kernel_initializer=keras.initializers.RandomNormal(
            stddev=2.0)) for _ in range(2)] + [keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    stats = ActivationStats(every=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, np.zeros((64, 1)), batch_size=16, epochs=1, verbose=0, callbacks=[stats])
    ours = [w for w in caught if issubclass(w.category, ActivationStatsWarning)]
    assert len(ours) == 2 and all("saturated" in str(w.message) for w in ours)


# -- outputs ----------------------------------------------------------------------------
def test_log_dir_files_and_tensorboard(tmp_path):
    x, y = data(32)
    model = compiled(sequential())
    stats = ActivationStats(every=1, log_dir=tmp_path)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[stats])
    frame = stats.to_dataframe()
    assert len(frame) == len(stats.records) * 13  # the 13 STATISTICS, unit_spread included
    with open(tmp_path / "activation_stats.csv") as file:
        assert len(file.read().strip().splitlines()) == len(frame) + 1
    records, _ = keras_initkit.stats.load_json(tmp_path / "activation_stats.jsonl")
    assert [r.layer for r in records] == [r.layer for r in stats.records]
    np.testing.assert_array_equal(records[0].counts, stats.records[0].counts)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp")]
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    )
    reader = event_accumulator.EventAccumulator(
        str(tmp_path / "activations"), size_guidance={"scalars": 0, "histograms": 0})
    reader.Reload()
    assert "dense/std" in reader.Tags()["scalars"]
    assert "dense/activations" in reader.Tags()["histograms"]
    assert [e.step for e in reader.Scalars("dense/std")] == [1, 2]


def test_to_json_is_valid_json_with_nan_as_null(tmp_path):
    x, y = data(32)
    model = compiled(sequential())
    stats = ActivationStats(every=2)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[stats])
    stats.to_json(tmp_path / "s.json")
    payload = json.loads((tmp_path / "s.json").read_text())
    relu = next(r for r in payload["records"] if r["activation"] == "relu")
    assert relu["stats"]["saturated_fraction"] is None


# -- selection and errors ---------------------------------------------------------------
def test_layers_by_name_class_and_predicate():
    x, y = data(32)
    for selection, expected in (
        (["inner/dense_1"], {"inner/dense_1"}),
        ([keras.layers.ReLU], {"inner/re_lu"}),
        (lambda layer: layer.name == "first", {"first"}),
    ):
        keras.backend.clear_session()
        model = compiled(nested())
        stats = ActivationStats(every=2, layers=selection)
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[stats])
        assert {r.layer for r in stats.records} == expected


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"every": 0}, "every must be a positive int or 'epoch'; got 0"),
        ({"every": "batch"}, "every must be a positive int or 'epoch'"),
        ({"batches_per_record": 0}, "batches_per_record must be a positive int or 'all'"),
        ({"bins": 1.5}, "bins must be a positive int"),
        ({"histogram_range": (1, 0)}, "histogram_range must be (low, high)"),
        ({"on_nan": "raise"}, "on_nan must be one of 'warn', 'stop', 'ignore'"),
        ({"dead_threshold": 0}, "dead_threshold must be in (0, 1]"),
        ({"std_ratio": 1}, "std_ratio must be greater than 1"),
    ],
)
def test_bad_arguments_are_rejected_early(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ActivationStats(**kwargs)


def test_unknown_layer_name_lists_the_layers():
    model = compiled(sequential())
    x, y = data(16)
    with pytest.raises(ValueError, match="no layer named 'nope'.*'dense'"):
        model.fit(x, y, verbose=0, callbacks=[ActivationStats(layers=["nope"])])


def test_keras_internals_still_exist():
    from keras_initkit.stats import _keras_internals

    _keras_internals.check()


def test_early_stopping_restores_best_weights_with_the_callback_listed_first():
    x, y = data(64)
    model = compiled(sequential(), lr=0.1)
    stats = ActivationStats(every=1)
    during = []

    class Count(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            during.append((len(self.model.get_weights()), len(self.model.non_trainable_variables)))

    stop = keras.callbacks.EarlyStopping("loss", patience=0, restore_best_weights=True)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[stats, stop, Count()])
    assert during[0][0] == len(model.weights)  # accumulators are state, not weights
    if keras.backend.backend() == "jax":  # threaded through the stateless step
        assert during[0][1] > len(model.non_trainable_variables)
    else:  # free variables captured by the step: never the model's
        assert during[0][1] == len(model.non_trainable_variables)


def test_a_fit_that_raised_is_cleaned_up_by_the_next_one():
    x, y = data(32)
    model = compiled(sequential())

    class Boom(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        model.fit(x, y, batch_size=16, verbose=0, callbacks=[ActivationStats(every=1), Boom()])
    stats = ActivationStats(every=1)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[stats])
    assert [r.stats["count"] for r in stats.records if r.layer == "dense"] == [256.0, 256.0]
    assert "train_step" not in model.__dict__
    assert not any("activation_stats" in v.path for v in model.variables)


def test_dead_units_are_counted_and_named():
    x, y = data(32)
    model = compiled(sequential())
    bias = np.zeros(16, "float32")
    bias[:12] = -100.0  # 12 of the ReLU's 16 units can never fire
    model.get_layer("linear").bias.assign(bias)
    stats = ActivationStats(every=2, warn=False)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[stats])
    relu = next(r for r in stats.records if r.layer == "relu")
    assert relu.stats["dead_units"] == 12 and relu.stats["units"] == 16
    assert any("'relu'" in w and "12 of 16 units dead" in w for w in stats.warnings)
