"""One statistics path and one diagnosis: `inspect` and `ActivationStats` agree on every
statistic for the same batch (NaN included), and the diagnosis compares like with like."""

import math

import keras
import numpy as np
import pytest

import keras_initkit
from keras_initkit.callbacks import ActivationStats
from keras_initkit.stats import STATISTICS, diagnose, summarize


def test_summarize_counts_finite_values_only():
    """The review's example: one meaning of count, zero and saturated fractions."""
    stats = summarize(np.array([0.0, 1.0, np.nan, -1.0]), bounds=(-1.0, 1.0))
    assert stats["count"] == 3 and stats["nan_count"] == 1
    assert stats["zero_fraction"] == pytest.approx(1 / 3)
    assert stats["saturated_fraction"] == pytest.approx(2 / 3)


def test_inspect_and_the_callback_agree_on_every_statistic_nan_included():
    keras.utils.set_random_seed(0)
    # elu, not relu: TensorFlow's graph mode runs Dense + ReLU as one fused kernel whose
    # max(x, 0) turns NaN into 0, so the step's layer output differs from the eager one
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, "elu", name="r"),
                              keras.layers.Dense(8, "tanh", name="t"),
                              keras.layers.Dense(3, "softmax", name="s")])
    model.compile(keras.optimizers.SGD(0.0), "mse")
    x = np.random.default_rng(1).normal(size=(16, 6)).astype("float32") * 2
    x[3] = np.nan  # one row of NaN: every layer has finite and non-finite values
    x[5, 0] = np.inf
    report = keras_initkit.inspect(model, x)
    stats = ActivationStats(every=1, warn=False)
    model.fit(x, np.zeros((16, 3)), batch_size=16, epochs=1, shuffle=False, verbose=0,
              callbacks=[stats])
    rows = {row["layer"]: row for row in report.rows}
    assert {r.layer for r in stats.records} == {"r", "t", "s"}
    for record in stats.records:
        mine = rows[record.layer]["stats"]
        assert mine["nan_count"] > 0
        for name in STATISTICS:
            a, b = mine[name], record.stats[name]
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(
                b, rel=1e-5, abs=1e-6), (record.layer, name, a, b)


class LayerScale(keras.layers.Layer):
    """ConvNeXt's LayerScale: multiplies by a learned per-channel scale that starts at 1e-6."""

    def build(self, shape):
        self.gamma = self.add_weight(shape=(shape[-1],),
                                     initializer=keras.initializers.Constant(1e-6))

    def call(self, x):
        return x * self.gamma


def test_small_by_design_and_output_layers_are_not_called_vanishing():
    """Issue 12 finding 8: LayerScale's 1e-6 start and a 2-class softmax output's std
    are not compared with hidden layers' std."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16,))
    h = keras.layers.Dense(16, "gelu", name="gelu_1")(inputs)
    branch = LayerScale(name="layer_scale")(keras.layers.Dense(16, name="proj")(h))
    h = keras.layers.Add(name="add")([h, branch])
    h = keras.layers.Dense(16, "gelu", name="gelu_2")(h)
    outputs = keras.layers.Dense(2, "softmax", name="classifier",
                                 kernel_initializer="zeros")(h)  # std 0: uniform output
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(64, 16)).astype("float32")
    report = keras_initkit.inspect(model, x)
    assert not any("vanish" in note or "collapse" in note for note in report.notes), report.notes
    model.compile("sgd", "mse")
    stats = ActivationStats(every=1, layers=lambda layer: layer.name != "add")
    model.fit(x, np.zeros((64, 2)), batch_size=64, epochs=1, verbose=0, callbacks=[stats])
    assert not [w for w in stats.warnings if "vanish" in w], stats.warnings
    # ... while a hidden GELU layer that really vanishes is still found
    std = {r.layer: r.stats["std"] for r in stats.records}
    shrunk = [r for r in stats.records if r.layer in ("gelu_1", "gelu_2")]
    shrunk[1].stats["std"] = std["gelu_1"] / 1000
    assert [f.layer for f in diagnose(shrunk) if f.condition == "vanishing"] == ["gelu_2"]
