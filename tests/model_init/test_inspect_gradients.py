"""inspect(model, x, y): the weight-gradient RMS of one backward pass, no optimizer step."""

import math

import keras
import numpy as np
import pytest

import keras_initkit

L = keras.layers
BACKEND = keras.backend.backend()


def batch(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def row_for(report, label):
    [row] = [row for row in report if row["layer"] == label]
    return row


def rms(array):
    return float(np.sqrt(np.mean(np.square(np.asarray(array, "float64")))))


def numpy(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable), "float64")


# -- the numbers --------------------------------------------------------------------------------
def test_gradient_rms_equals_hand_written_backpropagation():
    """A tanh MLP with MSE, back-propagated by hand in NumPy (float64)."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6,)), L.Dense(5, "tanh", name="hidden"),
                              L.Dense(3, name="out")])
    x, y = batch((16, 6), 2), batch((16, 3), 3)
    report = keras_initkit.inspect(model, x, y, loss="mse")
    w1, b1 = numpy(model.get_layer("hidden").kernel), numpy(model.get_layer("hidden").bias)
    w2, b2 = numpy(model.get_layer("out").kernel), numpy(model.get_layer("out").bias)
    h = np.tanh(x @ w1 + b1)
    delta_out = 2.0 * (h @ w2 + b2 - y) / y.size  # d mean((p - y)^2) / dp
    delta_hidden = (delta_out @ w2.T) * (1 - h**2)
    grads = {"hidden/kernel": x.T @ delta_hidden, "hidden/bias": delta_hidden.sum(0),
             "out/kernel": h.T @ delta_out, "out/bias": delta_out.sum(0)}
    assert row_for(report, "hidden")["grad rms"] == pytest.approx(rms(grads["hidden/kernel"]),
                                                                  rel=1e-5)
    assert row_for(report, "out")["grad rms"] == pytest.approx(rms(grads["out/kernel"]),
                                                               rel=1e-5)
    for name, expected in grads.items():
        stats = row_for(report, name.split("/")[0])["gradients"][name]
        assert stats["gradient_rms"] == pytest.approx(rms(expected), rel=1e-5), name
        assert stats["gradient_norm"] == pytest.approx(np.linalg.norm(expected), rel=1e-5)
        assert math.isnan(stats["update_norm"]) and math.isnan(stats["update_ratio"])


def native_gradients(model, x, y, loss):
    """The reference: the backend's own autodiff, written as its tutorials write it."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = loss(y, model(x, training=False))
        return [g.numpy() for g in tape.gradient(value, model.trainable_variables)]
    if BACKEND == "jax":
        import jax

        def value(trainable):
            y_pred, _ = model.stateless_call(
                trainable, [v.value for v in model.non_trainable_variables], x, training=False)
            return loss(y, y_pred)

        return [np.asarray(g) for g in jax.grad(value)([v.value for v in
                                                         model.trainable_variables])]
    import torch

    for v in model.trainable_variables:
        v.value.grad = None
    loss(torch.as_tensor(y), model(x, training=False)).backward()
    grads = [v.value.grad.detach().cpu().numpy() for v in model.trainable_variables]
    for v in model.trainable_variables:
        v.value.grad = None
    return grads


def cnn():
    keras.utils.set_random_seed(4)
    return keras.Sequential([
        keras.Input((10, 10, 2)),
        L.Conv2D(4, 3, activation="relu", name="conv"),
        L.BatchNormalization(name="norm"),
        L.Dropout(0.5, name="drop"),
        L.Conv2D(3, 3, activation="tanh", name="conv_2"),
        L.GlobalAveragePooling2D(name="pool"),
        L.Dense(5, "softmax", name="head"),
    ])


def test_gradient_rms_equals_the_backends_own_autodiff():
    model = cnn()
    x = batch((8, 10, 10, 2), 5)
    y = np.eye(5, dtype="float32")[np.arange(8) % 5]
    loss = keras.losses.CategoricalCrossentropy()
    report = keras_initkit.inspect(model, x, y, loss=loss)
    expected = native_gradients(model, x, y, loss)
    by_id = {id(v): g for v, g in zip(model.trainable_variables, expected, strict=True)}
    for layer in ("conv", "conv_2", "head"):
        assert row_for(report, layer)["grad rms"] == pytest.approx(
            rms(by_id[id(model.get_layer(layer).kernel)]), rel=1e-5), layer
    # BatchNormalization has no weight matrix: its row combines gamma and beta
    norm = model.get_layer("norm")
    gamma, beta = by_id[id(norm.gamma)], by_id[id(norm.beta)]
    assert row_for(report, "norm")["grad rms"] == pytest.approx(
        rms(np.concatenate([gamma, beta])), rel=1e-5)
    assert row_for(report, "drop")["grad rms"] is None  # no weights: "-" in the table
    assert "grad rms" in str(report).splitlines()[1]


def test_no_step_is_taken_and_nothing_is_assigned():
    model = cnn()
    model.compile(keras.optimizers.Adam(0.1), "categorical_crossentropy", metrics=["accuracy"])
    x = batch((8, 10, 10, 2), 6)
    y = np.eye(5, dtype="float32")[np.arange(8) % 5]
    model.fit(x, y, epochs=1, verbose=0)  # optimizer, moving statistics and metrics in use
    before = [numpy(v) for v in model.variables + model.optimizer.variables
              + model.metrics_variables]
    if BACKEND == "torch":  # fit leaves .grad set; inspect must not touch it
        grads_before = [v.value.grad.clone() for v in model.trainable_variables]
    report = keras_initkit.inspect(model, x, y)
    after = [numpy(v) for v in model.variables + model.optimizer.variables
             + model.metrics_variables]
    assert len(before) == len(after)
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(old, new)
    weighted = [row["grad rms"] for row in report if row["class"] not in ("Dropout",
                                                                         "GlobalAveragePooling2D")]
    assert len(weighted) == 4 and all(value > 0 for value in weighted)
    if BACKEND == "torch":
        for old, v in zip(grads_before, model.trainable_variables, strict=True):
            assert v.value.grad is not None and bool((v.value.grad == old).all())


def test_compiled_loss_includes_regularization_as_fit_does():
    """At a perfect fit the data term's gradient is 0: what is left is the regularizers'."""
    keras.utils.set_random_seed(7)
    model = keras.Sequential([
        keras.Input((4,)),
        L.Dense(6, name="reg", kernel_regularizer=keras.regularizers.L2(0.1),
                activity_regularizer=keras.regularizers.L2(0.05)),
        L.Dense(2, name="out"),
    ])
    model.compile("sgd", "mse")
    x = batch((10, 4), 8)
    y = keras.ops.convert_to_numpy(model(x, training=False))
    report = keras_initkit.inspect(model, x, y)
    kernel, bias = numpy(model.get_layer("reg").kernel), numpy(model.get_layer("reg").bias)
    h = x @ kernel + bias
    # 0.1 * sum(W^2) and 0.05 * sum(h^2) / batch
    expected = 0.2 * kernel + (2 * 0.05 / len(x)) * (x.T @ h)
    assert row_for(report, "reg")["grad rms"] == pytest.approx(rms(expected), rel=1e-5)
    assert row_for(report, "out")["grad rms"] == pytest.approx(0.0, abs=1e-7)
    # loss= is that loss alone
    alone = keras_initkit.inspect(model, x, y, loss="mse")
    assert row_for(alone, "reg")["grad rms"] == pytest.approx(0.0, abs=1e-7)


# -- the diagnosis (stats.gradient_diagnosis's rules) ----------------------------------------------
def deep(activation, initializer):
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((64,))]
        + [L.Dense(64, activation, kernel_initializer=initializer, name=f"{activation}_{i}")
           for i in range(1, 11)]
        + [L.Dense(10, "softmax", name="readout")])


def test_deep_sigmoid_net_says_gradients_vanish_towards_the_input():
    x, y = batch((128, 64), 9), np.arange(128) % 10
    report = keras_initkit.inspect(deep("sigmoid", "glorot_uniform"), x, y,
                                   loss="sparse_categorical_crossentropy")
    first, last = row_for(report, "sigmoid_1")["grad rms"], row_for(report, "sigmoid_10")[
        "grad rms"]
    assert first < last / 100
    [note] = [n for n in report.notes if "vanish towards the input" in n]
    assert note.startswith("sigmoid_1: gradients vanish towards the input")


def test_relu_he_net_has_no_gradient_warning():
    x, y = batch((128, 64), 9), np.arange(128) % 10
    report = keras_initkit.inspect(deep("relu", "he_normal"), x, y,
                                   loss="sparse_categorical_crossentropy")
    ratio = row_for(report, "relu_1")["grad rms"] / row_for(report, "relu_10")["grad rms"]
    assert 0.1 < ratio < 10
    assert not [n for n in report.notes if "gradient" in n], report.notes


def test_zero_init_layers_get_no_gradient_and_are_named():
    model = keras.Sequential([keras.Input((8,))] + [
        L.Dense(8, "tanh", kernel_initializer="zeros", name=f"zero_{i}") for i in range(3)]
        + [L.Dense(2, name="out")])
    report = keras_initkit.inspect(model, batch((16, 8)), batch((16, 2), 1), loss="mse")
    assert [row_for(report, f"zero_{i}")["grad rms"] for i in range(3)] == [0.0] * 3
    assert any(n.startswith("zero_0: dead layers") for n in report.notes), report.notes
    assert all(f"zero_{i}: all 8 units identical" in report.notes for i in range(3))


# -- bad input ------------------------------------------------------------------------------
def test_targets_and_loss_are_validated_before_anything_runs():
    model = keras.Sequential([keras.Input((4,)), L.Dense(2, name="d")])
    x = batch((5, 4))
    with pytest.raises(ValueError, match="loss: y was given.*not compiled.*Pass loss="):
        keras_initkit.inspect(model, x, batch((5, 2)))
    with pytest.raises(ValueError, match="loss: given .* without y"):
        keras_initkit.inspect(model, x, loss="mse")
    with pytest.raises(ValueError, match="loss must be a Keras loss name.*got 'no_such_loss'"):
        keras_initkit.inspect(model, x, batch((5, 2)), loss="no_such_loss")
    with pytest.raises(ValueError, match=r"one target per example of x \(\[5\] rows\); got "
                                         r"shape \(4, 2\)"):
        keras_initkit.inspect(model, x, batch((4, 2)), loss="mse")
    with pytest.raises(ValueError, match="y must be numeric"):
        keras_initkit.inspect(model, x, np.array(["a"] * 5), loss="mse")
    report = keras_initkit.inspect(model, x)  # no targets: forward only, as before
    assert "grad rms" not in report.columns and "grad rms" not in report.rows[0]
