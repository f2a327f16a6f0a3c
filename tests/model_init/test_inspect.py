"""inspect: per-layer statistics of one forward pass, checked against NumPy."""

import itertools
import math

import keras
import numpy as np
import pytest

import keras_initkit
from keras_initkit import initializers as ki

L = keras.layers
COLUMNS = ["layer", "class", "mean", "std", "min", "max", "zero", "saturated", "nan/inf",
           "distinct units"]


def numpy(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor), dtype="float64")


def row_for(report, label):
    rows = [row for row in report if row["layer"] == label]
    assert len(rows) == 1, (label, report.column("layer"))
    return rows[0]


def all_layers(model):
    """The model and every layer in it, nested models expanded (public API only)."""
    found = [model]
    for layer in model.layers:
        found += all_layers(layer) if isinstance(layer, keras.Model) else [layer]
    return found


def batch(n=64, features=8, seed=0):
    return np.random.default_rng(seed).standard_normal((n, features)).astype("float32")


# --- 7. recorded statistics equal a NumPy recomputation ---------------------------------------


def test_statistics_match_numpy():
    inp = keras.Input((8,))
    a = L.Dense(16, activation="relu", name="relu_dense")(inp)
    b = L.Dense(16, activation="tanh", name="tanh_dense", kernel_initializer=ki.LecunNormal(
        gain=4.0, seed=1))(a)
    c = L.Dense(16, name="linear_dense")(b)
    d = L.Activation("tanh", name="tanh_act")(c)
    e = L.Concatenate(name="concat")([a, d])
    out = L.Dense(3, activation="softmax", name="out")(e)
    model = keras.Model(inp, out)
    x = batch(64, 8)
    report = keras_initkit.inspect(model, x)
    names = ["relu_dense", "tanh_dense", "linear_dense", "tanh_act", "concat", "out"]
    assert report.column("layer") == names
    assert report.columns == COLUMNS
    for name in names:
        layer = model.get_layer(name)
        y = numpy(keras.Model(inp, layer.output)(x))
        row = row_for(report, name)
        assert row["class"] == type(layer).__name__
        expected = {
            "mean": y.mean(),
            "std": y.std(),
            "min": y.min(),
            "max": y.max(),
            "zero": np.mean(y == 0),
        }
        for key, value in expected.items():
            assert row[key] == pytest.approx(value, rel=1e-4, abs=1e-6), (name, key)
        assert row["nan/inf"] == 0
        if name in ("tanh_dense", "tanh_act"):
            saturated = np.mean(np.abs(y) >= 0.99)
            assert row["saturated"] == pytest.approx(saturated, rel=1e-4, abs=1e-6)
        else:
            assert math.isnan(row["saturated"])
    # the relu layer really has dead units and the gain-4 tanh layer really saturates
    assert row_for(report, "relu_dense")["zero"] > 0.2
    assert row_for(report, "tanh_dense")["saturated"] > 0.05


# --- 8. the seeds' lesson: 10 layers of tanh ---------------------------------------------------


def tanh_mlp(initializer):
    layers = [keras.Input((500,))]
    layers += [
        L.Dense(500, activation="tanh", kernel_initializer=initializer, name=f"tanh_{i}")
        for i in range(1, 11)
    ]
    return keras.Sequential(layers)


@pytest.fixture(scope="module")
def unit_normal_batch():
    return np.random.default_rng(0).standard_normal((1000, 500)).astype("float32")


def test_small_weights_collapse(unit_normal_batch):
    model = tanh_mlp(keras.initializers.RandomNormal(stddev=0.01, seed=0))
    report = keras_initkit.inspect(model, unit_normal_batch)
    stds = report.column("std")
    assert len(stds) == 10
    assert all(later < earlier for earlier, later in itertools.pairwise(stds))
    assert stds[0] == pytest.approx(0.01 * math.sqrt(500), rel=0.1)  # ~0.22
    assert stds[-1] < 1e-4
    assert any("tanh_10" in note and "collapsed" in note for note in report.notes)
    assert "collapsed" in str(report)


@pytest.mark.parametrize(
    "initializer", [ki.GlorotNormal, ki.XavierNormal], ids=["glorot", "xavier"]
)
def test_glorot_keeps_the_signal(unit_normal_batch, initializer):
    model = tanh_mlp(initializer(seed=0))
    report = keras_initkit.inspect(model, unit_normal_batch)
    stds = report.column("std")
    assert stds[0] == pytest.approx(0.63, abs=0.05)
    assert stds[-1] == pytest.approx(0.23, abs=0.05)
    assert not any("collapsed" in note or "saturated" in note for note in report.notes)


def test_large_weights_saturate(unit_normal_batch):
    model = tanh_mlp(keras.initializers.RandomNormal(stddev=1.0, seed=0))
    report = keras_initkit.inspect(model, unit_normal_batch)
    assert all(value > 0.5 for value in report.column("saturated"))
    assert any("tanh_1:" in note and "saturated" in note for note in report.notes)
    assert len([note for note in report.notes if "saturated" in note]) == 10


# --- 9. non-finite values, model kinds, tables, the model left unchanged ------------------------


def test_nan_is_reported_not_raised():
    model = keras.Sequential(
        [keras.Input((8,)), L.Dense(4, name="bad"), L.Dense(3, activation="relu", name="after")]
    )
    kernel = numpy(model.get_layer("bad").kernel).astype("float32")
    kernel[:, 1] = np.nan
    model.get_layer("bad").kernel.assign(kernel)
    x = batch(10, 8)
    report = keras_initkit.inspect(model, x)
    bad = row_for(report, "bad")
    assert bad["nan/inf"] == 10  # one column of 10 rows
    # the other statistics cover the finite values: the three good columns
    good = numpy(model.get_layer("bad")(x))[:, [0, 2, 3]]
    assert bad["std"] == pytest.approx(good.std(), rel=1e-4)
    assert bad["mean"] == pytest.approx(good.mean(), rel=1e-4, abs=1e-6)
    assert row_for(report, "after")["nan/inf"] == 30
    assert any(note.startswith("bad:") and "non-finite" in note for note in report.notes)
    assert any(note.startswith("after:") and "non-finite" in note for note in report.notes)


def test_inf_in_the_input_is_reported():
    model = keras.Sequential(
        [keras.Input((8,)), L.Dense(4, name="linear"), L.Activation("tanh", name="tanh")]
    )
    x = batch(5, 8)
    x[0, 0] = np.inf
    report = keras_initkit.inspect(model, x)
    assert row_for(report, "linear")["nan/inf"] == 4  # the first example's 4 outputs
    assert row_for(report, "tanh")["nan/inf"] == 0  # tanh(+-inf) = +-1
    assert row_for(report, "tanh")["saturated"] >= 4 / 20
    assert report.notes == ["linear: 4 non-finite values"]


class Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.first = L.Dense(16, activation="relu", name="first")
        self.second = L.Dense(16, activation="tanh", name="second")
        self.head = L.Dense(3, name="head")

    def call(self, x):
        return self.head(self.second(self.first(x)))


def sequential_model():
    return keras.Sequential(
        [keras.Input((8,)), L.Dense(16, activation="relu", name="first"),
         L.Dense(16, activation="tanh", name="second"), L.Dense(3, name="head")]
    )


def functional_model():
    inp = keras.Input((8,))
    h = L.Dense(16, activation="relu", name="first")(inp)
    h = L.Dense(16, activation="tanh", name="second")(h)
    return keras.Model(inp, L.Dense(3, name="head")(h))


def nested_model():
    inner = keras.Sequential(
        [keras.Input((8,)), L.Dense(16, activation="relu", name="first"),
         L.Dense(16, activation="tanh", name="second")],
        name="inner",
    )
    inp = keras.Input((8,))
    return keras.Model(inp, L.Dense(3, name="head")(inner(inp)))


def subclassed_model():
    model = Subclassed()
    model(batch(2, 8))
    return model


KINDS = {
    "sequential": (sequential_model, ["first", "second", "head"]),
    "functional": (functional_model, ["first", "second", "head"]),
    "nested": (nested_model, ["inner/first", "inner/second", "head"]),
    "subclassed": (subclassed_model, ["first", "second", "head"]),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_model_kinds(kind):
    build, labels = KINDS[kind]
    model = build()
    x = batch(32, 8)
    expected_output = numpy(model(x))
    weights = [numpy(v) for v in model.weights]
    report = keras_initkit.inspect(model, x)
    assert report.column("layer") == labels
    assert report.column("class") == ["Dense"] * 3
    head = row_for(report, labels[-1])
    assert head["mean"] == pytest.approx(expected_output.mean(), rel=1e-4, abs=1e-6)
    assert head["std"] == pytest.approx(expected_output.std(), rel=1e-4)
    assert 0 < row_for(report, labels[0])["zero"] < 1
    assert 0 <= row_for(report, labels[1])["saturated"] < 1
    assert math.isnan(head["saturated"])

    # the table and the DataFrame
    frame = report.to_dataframe()
    assert list(frame.columns) == COLUMNS
    assert list(frame["layer"]) == labels
    np.testing.assert_allclose(frame["std"].to_numpy(), report.column("std"))
    lines = str(report).splitlines()
    assert lines[0] == f"inspect({model.name})"
    assert lines[1].split() == " ".join(COLUMNS).split()
    assert set(lines[2]) == {"-", " "}
    assert lines[3].split()[:2] == [labels[0], "Dense"]
    assert repr(report) == str(report)

    # the model is left as it was: no instance-level call, same weights, same outputs
    for layer in all_layers(model):
        assert "call" not in vars(layer), layer.name
    for before, variable in zip(weights, model.weights, strict=True):
        np.testing.assert_array_equal(before, numpy(variable))
    np.testing.assert_allclose(numpy(model(x)), expected_output, rtol=1e-6)
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(x, np.zeros((32, 3), "float32"), epochs=2, batch_size=16, verbose=0)
    assert all(math.isfinite(loss) for loss in history.history["loss"])
    assert len(keras_initkit.inspect(model, x)) == 3  # and it can be inspected again


def test_call_is_restored_when_the_forward_pass_fails():
    model = sequential_model()
    with pytest.raises(ValueError):
        keras_initkit.inspect(model, batch(4, 5))  # wrong number of features
    for layer in all_layers(model):
        assert "call" not in vars(layer), layer.name
    assert numpy(model(batch(4, 8))).shape == (4, 3)


def test_runs_in_inference_mode():
    model = keras.Sequential(
        [keras.Input((8,)), L.Dense(16, name="dense"), L.Dropout(0.5, name="drop"),
         L.BatchNormalization(name="bn")]
    )
    x = batch(32, 8)
    report = keras_initkit.inspect(model, x)
    expected = numpy(model(x, training=False))
    row = row_for(report, "bn")
    assert row["mean"] == pytest.approx(expected.mean(), rel=1e-4, abs=1e-6)
    assert row["std"] == pytest.approx(expected.std(), rel=1e-4)
    drop = row_for(report, "drop")
    assert drop["std"] == pytest.approx(row_for(report, "dense")["std"], rel=1e-6)
    assert drop["zero"] == 0


def test_empty_batch_is_an_error():
    model = sequential_model()
    with pytest.raises(ValueError, match="non-empty"):
        keras_initkit.inspect(model, np.zeros((0, 8), "float32"))
