"""`lsuv` on real models and data: tolerance, held-out acceptance, model kinds, bad input.

The std LSUV drives to `target_std` is that of each weighted layer's linear output (with
a fused `activation=` switched off, as documented). The tests measure it independently:
they run the layers one after the other and apply, to each weighted layer's input, a twin
of the layer built from its config with `activation="linear"` and the same weights.
"""

import keras
import numpy as np
import pytest
from keras import layers
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import keras_initkit


def _np(value):
    return np.array(keras.ops.convert_to_numpy(value))


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.4, random_state=0)
    scaler = StandardScaler().fit(x_train)
    return (
        scaler.transform(x_train).astype("float32"),
        y_train.astype("int32"),
        scaler.transform(x_test).astype("float32"),
        y_test.astype("int32"),
    )


def _is_weighted(layer):
    return any(w.path.split("/")[-1] == "kernel" for w in layer.weights)


def _linear_twin(layer, inputs):
    config = layer.get_config()
    if "activation" in config:
        config["activation"] = "linear"
    twin = type(layer).from_config(config)
    twin(inputs)  # build
    twin.set_weights(layer.get_weights())
    return twin


def _linear_stds(chain, x):
    """layer name -> std of its linear output, running `chain` (a list of layers) on `x`."""
    h = keras.ops.convert_to_tensor(x)
    stds = {}
    for layer in chain:
        if _is_weighted(layer):
            z = _np(_linear_twin(layer, h)(h))
            stds[layer.name] = float(np.std(z.astype(np.float64)))
        h = layer(h, training=False)
    return stds


def _chain(model):
    """The layers of a plain stack (nested models flattened), input layers dropped."""
    result = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            result.extend(_chain(layer))
        elif not isinstance(layer, keras.layers.InputLayer):
            result.append(layer)
    return result


def _all_layers(model):
    yield model
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer


def _snapshot(model):
    return [_np(w.value) for w in model.weights]


def _assert_unchanged(model, snapshot):
    current = _snapshot(model)
    assert len(current) == len(snapshot)
    for now, then in zip(current, snapshot, strict=True):
        assert np.array_equal(now, then)


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------


def sequential_tanh():
    return keras.Sequential(
        [keras.Input((64,))]
        + [layers.Dense(64, activation="tanh") for _ in range(4)]
        + [layers.Dense(10)],
        name="sequential_tanh",
    )


def functional_relu():
    inputs = keras.Input((64,))
    h = inputs
    for _ in range(4):
        h = layers.Dense(64, activation="relu")(h)
    return keras.Model(inputs, layers.Dense(10)(h), name="functional_relu")


def functional_dense_relu_layer():
    inputs = keras.Input((64,))
    h = inputs
    for _ in range(4):
        h = layers.Dense(64)(h)
        h = layers.ReLU()(h)
    return keras.Model(inputs, layers.Dense(10)(h), name="functional_dense_relu_layer")


def sequential_cnn():
    return keras.Sequential(
        [keras.Input((8, 8, 1))]
        + [layers.Conv2D(8, 3, padding="same", activation="relu") for _ in range(3)]
        + [layers.Flatten(), layers.Dense(10)],
        name="sequential_cnn",
    )


MODELS = [sequential_tanh, functional_relu, functional_dense_relu_layer, sequential_cnn]


def _inputs(build, x):
    return x.reshape(-1, 8, 8, 1) if build is sequential_cnn else x


# --------------------------------------------------------------------------------------
# LSUV reaches its tolerance
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("build", MODELS, ids=lambda f: f.__name__)
def test_lsuv_reaches_tolerance_and_holds_on_held_out_data(build, digits):
    x_train, _, x_test, _ = digits
    model = build()
    x = _inputs(build, x_train[:500])
    held_out = _inputs(build, x_test)

    report = keras_initkit.lsuv(model, x, seed=0)

    chain = _chain(model)
    weighted = [layer for layer in chain if _is_weighted(layer)]
    assert report.column("layer") == [layer.name for layer in weighted]
    assert report.column("class") == [type(layer).__name__ for layer in weighted]
    measured = _linear_stds(chain, x)
    for row in report:
        assert row["status"] == "ok", str(report)
        assert 0 <= row["iterations"] <= 10
        assert abs(row["std after"] - 1.0) <= 0.1, str(report)
        # the report tells the truth: an independent measurement on the same batch agrees
        assert measured[row["layer"]] == pytest.approx(row["std after"], rel=1e-4, abs=1e-6)
    assert any(row["iterations"] > 0 for row in report)  # it did rescale something
    # acceptance: on held-out data from the same distribution every weighted layer's
    # output std is in [0.9, 1.2]
    for name, std in _linear_stds(chain, held_out).items():
        assert 0.9 <= std <= 1.2, (name, std, str(report))
    # orthogonal=True zeroed the biases
    for layer in weighted:
        assert not np.any(_np(layer.bias))


@pytest.mark.parametrize("build", [functional_relu, sequential_cnn], ids=lambda f: f.__name__)
def test_lsuv_other_target_std(build, digits):
    x = _inputs(build, digits[0][:500])
    model = build()
    report = keras_initkit.lsuv(model, x, target_std=0.5, tol=0.05, seed=0)
    measured = _linear_stds(_chain(model), x)
    assert len(report) == len(measured)
    for row in report:
        assert abs(row["std after"] - 0.5) <= 0.05, str(report)
        assert abs(measured[row["layer"]] - 0.5) <= 0.05 + 1e-6


def test_lsuv_on_gaussian_rows_and_max_iter_bound():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 64)).astype("float32")
    held_out = rng.standard_normal((500, 64)).astype("float32")
    model = keras.Sequential(
        [keras.Input((64,))] + [layers.Dense(64, activation="relu") for _ in range(6)]
    )
    report = keras_initkit.lsuv(model, x, seed=0, max_iter=3)
    assert all(row["iterations"] <= 3 for row in report)
    assert all(abs(row["std after"] - 1.0) <= 0.1 for row in report)
    for std in _linear_stds(_chain(model), held_out).values():
        assert 0.9 <= std <= 1.2


def test_lsuv_runs_in_inference_mode(digits):
    x = digits[0][:500]
    inputs = keras.Input((64,))
    h = layers.Dense(64, name="d1")(inputs)
    h = layers.BatchNormalization(name="bn")(h)
    h = layers.ReLU()(h)
    h = layers.Dropout(0.5)(h)
    h = layers.Dense(64, activation="relu", name="d2")(h)
    model = keras.Model(inputs, layers.Dense(10, name="logits")(h))
    bn = model.get_layer("bn")
    moving = [_np(bn.moving_mean), _np(bn.moving_variance)]

    report = keras_initkit.lsuv(model, x, seed=0)

    # BatchNormalization statistics are not updated, Dropout does not drop
    np.testing.assert_array_equal(_np(bn.moving_mean), moving[0])
    np.testing.assert_array_equal(_np(bn.moving_variance), moving[1])
    measured = _linear_stds(_chain(model), x)
    assert report.column("layer") == ["d1", "d2", "logits"]
    for row in report:
        assert abs(row["std after"] - 1.0) <= 0.1
        assert measured[row["layer"]] == pytest.approx(row["std after"], rel=1e-4)


# --------------------------------------------------------------------------------------
# Model kinds
# --------------------------------------------------------------------------------------


class SubclassedMLP(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden1 = layers.Dense(64, activation="relu")
        self.hidden2 = layers.Dense(64, activation="tanh")
        self.logits = layers.Dense(10)

    def call(self, x):
        return self.logits(self.hidden2(self.hidden1(x)))


def _nested():
    inner = keras.Sequential(
        [
            keras.Input((64,)),
            layers.Dense(64, activation="relu"),
            layers.Dense(64, activation="tanh"),
        ],
        name="inner",
    )
    inputs = keras.Input((64,))
    h = layers.Dense(64, activation="relu", name="first")(inputs)
    h = inner(h)
    return keras.Model(inputs, layers.Dense(10, name="logits")(h), name="outer")


def _subclassed():
    model = SubclassedMLP(name="subclassed")
    model(np.zeros((2, 64), "float32"))
    return model


@pytest.mark.parametrize("build", [_nested, _subclassed], ids=["nested", "subclassed"])
def test_lsuv_nested_and_subclassed_models(build, digits):
    x_train, y_train, x_test, _ = digits
    model = build()
    x = x_train[:500]

    report = keras_initkit.lsuv(model, x, seed=0)

    chain = _chain(model)
    assert len(report) == (4 if build is _nested else 3)
    assert report.column("layer")[-1].endswith(chain[-1].name)
    if build is _nested:
        inner = model.get_layer("inner")
        assert report.column("layer") == ["first"] + [
            f"inner/{lay.name}" for lay in inner.layers
        ] + ["logits"]
    measured = _linear_stds(chain, x)
    for row, layer in zip(report, chain, strict=True):
        assert abs(row["std after"] - 1.0) <= 0.1, str(report)
        assert measured[layer.name] == pytest.approx(row["std after"], rel=1e-4)
    for std in _linear_stds(chain, x_test).values():
        assert 0.9 <= std <= 1.2
    # no layer keeps the wrapped `call` used to read outputs
    for layer in _all_layers(model):
        assert "call" not in vars(layer), layer.name

    # and the model still trains
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(x_train, y_train, batch_size=64, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses


# --------------------------------------------------------------------------------------
# Bad input: a clear error, and the weights are left as they were
# --------------------------------------------------------------------------------------


def _small(kind):
    if kind == "sequential":
        return keras.Sequential(
            [keras.Input((8,)), layers.Dense(16, activation="relu"), layers.Dense(4)]
        )
    inputs = keras.Input((8,))
    h = layers.Dense(16, activation="relu")(inputs)
    return keras.Model(inputs, layers.Dense(4)(h))


def _nan_batch():
    x = np.random.default_rng(0).standard_normal((32, 8)).astype("float32")
    x[3, 5] = np.nan
    return x


GOOD = np.random.default_rng(1).standard_normal((32, 8)).astype("float32")

BAD = {
    "empty batch": (np.zeros((0, 8), "float32"), {}, "non-empty"),
    "wrong feature count": (np.ones((32, 5), "float32"), {}, "does not fit"),
    "nan in x": (_nan_batch(), {}, "finite"),
    "inf in x": (np.full((32, 8), np.inf, "float32"), {}, "finite"),
    "target_std zero": (GOOD, {"target_std": 0.0}, "target_std"),
    "target_std negative": (GOOD, {"target_std": -1.0}, "target_std"),
    "tol zero": (GOOD, {"tol": 0.0}, "tol"),
    "tol negative": (GOOD, {"tol": -0.1}, "tol"),
    "max_iter zero": (GOOD, {"max_iter": 0}, "max_iter"),
}


@pytest.mark.parametrize("kind", ["sequential", "functional"])
@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_a_clear_error_and_keeps_weights(case, kind):
    model = _small(kind)
    before = _snapshot(model)
    x, kwargs, message = BAD[case]
    with pytest.raises(ValueError, match=message):
        keras_initkit.lsuv(model, x, seed=0, **kwargs)
    _assert_unchanged(model, before)
    for layer in _all_layers(model):
        assert "call" not in vars(layer)


def test_model_without_weighted_layer_is_a_clear_error():
    model = keras.Sequential([keras.Input((4,)), layers.ReLU()])
    with pytest.raises(ValueError, match="no weighted layer"):
        keras_initkit.lsuv(model, np.ones((8, 4), "float32"))


# --------------------------------------------------------------------------------------
# orthogonal=False keeps the direction of the existing kernels
# --------------------------------------------------------------------------------------


def test_without_orthogonal_kernels_are_only_rescaled(digits):
    x = digits[0][:500]
    model = functional_relu()
    for layer in model.layers:  # non-zero biases, which must survive untouched
        if _is_weighted(layer):
            layer.bias.assign(np.full(layer.bias.shape, 0.01, "float32"))
    weighted = [layer for layer in model.layers if _is_weighted(layer)]
    kernels = {layer.name: _np(layer.kernel) for layer in weighted}
    biases = {layer.name: _np(layer.bias) for layer in weighted}

    report = keras_initkit.lsuv(model, x, orthogonal=False)

    scales = []
    for layer in weighted:
        old, new = kernels[layer.name].astype(np.float64), _np(layer.kernel).astype(np.float64)
        scale = float(np.sum(new * old) / np.sum(old * old))
        assert scale > 0
        np.testing.assert_allclose(new, scale * old, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(_np(layer.bias), biases[layer.name])
        scales.append(scale)
    assert any(abs(s - 1.0) > 0.05 for s in scales)  # Glorot's relu stack was rescaled
    for row in report:
        assert abs(row["std after"] - 1.0) <= 0.1


# --------------------------------------------------------------------------------------
# Recurrent layers: the input projection x_t @ kernel is measured and scaled
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["GRU", "LSTM", "SimpleRNN", "Bidirectional"])
def test_lsuv_on_recurrent_layers(cell):
    rng = np.random.default_rng(0)
    x = (3.0 * rng.standard_normal((64, 7, 12))).astype("float32")
    if cell == "Bidirectional":
        rnn = layers.Bidirectional(layers.LSTM(16), name="rnn")
    else:
        rnn = getattr(layers, cell)(16, name="rnn")
    model = keras.Sequential([keras.Input((7, 12)), rnn, layers.Dense(3, name="head")])
    recurrent_before = [
        _np(v) for v in model.weights if "recurrent_kernel" in v.path
    ]
    report = keras_initkit.lsuv(model, x, seed=0, orthogonal=False)
    row = report[0]
    assert row["layer"] == "rnn" and row["status"].startswith("ok: input projection")
    assert abs(row["std after"] - 1.0) <= 0.1
    # measured independently: the pre-activation x_t @ kernel of every cell has std 1
    kernels = [v for v in model.weights if v.path.endswith("/kernel") and "head" not in v.path]
    for kernel in kernels:
        projection = x.reshape(-1, 12).astype("float64") @ _np(kernel).astype("float64")
        assert projection.std() == pytest.approx(1.0, rel=1e-3)
    # the recurrent kernels are not touched when orthogonal=False
    recurrent_after = [_np(v) for v in model.weights if "recurrent_kernel" in v.path]
    for before, after in zip(recurrent_before, recurrent_after, strict=True):
        np.testing.assert_array_equal(before, after)
    assert np.all(np.isfinite(_np(model(x))))
