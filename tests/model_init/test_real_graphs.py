"""Graph reading on graphs that users build, not only on chains of layers.

Keras records `h + 1.0`, `keras.ops.relu(h)` and `h * gate` in a Functional graph as
operation nodes that are not in `model.layers`; layers are shared and models nested. The
model operations must read these graphs, never raise on them, and say where the activation
after a layer cannot be known.
"""

import keras
import numpy as np
import pytest
from keras import layers as L
from keras import ops

import keras_initkit
from keras_initkit import initializers as ki


def _np(value):
    return np.array(keras.ops.convert_to_numpy(value))


def _row(report, layer):
    return next(row for row in report if row["layer"] == layer)


def _ops_model():
    inputs = keras.Input((8,), name="x")
    gate_in = keras.Input((16,), name="gate")
    h = L.Dense(16, name="shifted")(inputs)
    h = ops.relu(h + 1.0)  # a constant shift, then an activation operation
    h = L.Dense(16, name="to_op_relu")(h)
    h = ops.relu(h)
    g = L.Dense(16, name="gated")(h)
    h = g * gate_in  # a multiplicative gate: what follows cannot be known
    shared = L.Dense(16, name="shared")
    a = L.ReLU(name="relu_a")(shared(h))
    b = L.ReLU(name="relu_b")(shared(a))  # called twice, both times into a ReLU
    out1 = L.Dense(2, name="head1")(b)
    out2 = L.Dense(1, name="head2")(ops.tanh(b))
    return keras.Model([inputs, gate_in], [out1, out2], name="with_ops")


def _batch(n=32):
    rng = np.random.default_rng(0)
    return [rng.standard_normal((n, 8)).astype("float32"),
            rng.uniform(0.5, 1.5, (n, 16)).astype("float32")]


def test_functional_graph_with_operations_is_read():
    model = _ops_model()
    report = keras_initkit.reinitialize(model, seed=0)
    seen = dict(zip(report.column("layer"), report.column("activation seen"), strict=True))
    assert seen["shifted"] == "next operation 'relu'"  # through `+ 1.0`
    assert seen["to_op_relu"].startswith("next operation 'relu")
    assert seen["gated"] == "unknown (next is operation 'multiply'): assumed linear"
    assert seen["shared"] == "next layer ReLU 'relu_a'"  # both of its calls feed a ReLU
    assert seen["head1"] == "linear (model output)"
    assert type(model.get_layer("shifted").kernel_initializer) is ki.HeNormal
    assert type(model.get_layer("to_op_relu").kernel_initializer) is ki.HeNormal
    assert type(model.get_layer("shared").kernel_initializer) is ki.HeNormal
    assert type(model.get_layer("gated").kernel_initializer) is ki.LecunNormal
    # a layer feeding a tanh operation gets the tanh gain
    assert model.get_layer("head2").kernel_initializer.nonlinearity == "linear"
    x = _batch()
    inspected = keras_initkit.inspect(model, x)
    assert {"shifted", "gated", "shared", "head2"} <= set(inspected.column("layer"))
    lsuv = keras_initkit.lsuv(model, x, seed=0)
    for row in lsuv:
        assert row["status"] == "ok", row
        assert abs(row["std after"] - 1.0) <= 0.1


def test_shared_layer_with_different_activations_says_so():
    inputs = keras.Input((8,))
    shared = L.Dense(8, name="shared")
    a = L.ReLU()(shared(inputs))
    b = L.Activation("tanh")(shared(a))
    model = keras.Model(inputs, L.Dense(1, name="head")(b))
    report = keras_initkit.reinitialize(model, seed=0)
    assert _row(report, "shared")["activation seen"] == (
        "differs between its 2 calls: assumed linear"
    )


def test_nested_model_reads_the_activation_across_its_boundary():
    inner = keras.Sequential(
        [keras.Input((8,)), L.Dense(16, activation="tanh", name="hidden"),
         L.Dense(16, name="last")], name="inner"
    )
    inputs = keras.Input((8,))
    h = L.ReLU(name="outer_relu")(inner(inputs))
    model = keras.Model(inputs, L.Dense(2, name="head")(h))
    report = keras_initkit.reinitialize(model, seed=0)
    assert _row(report, "inner/last")["activation seen"] == "next layer ReLU 'outer_relu'"
    assert type(inner.get_layer("last").kernel_initializer) is ki.HeNormal
    assert _row(report, "head")["activation seen"] == "linear (model output)"


def test_layer_shared_by_an_inner_and_an_outer_model_is_read_once():
    dense = L.Dense(8, name="tied")
    inner_in = keras.Input((8,))
    inner = keras.Model(inner_in, L.ReLU()(dense(inner_in)), name="inner")
    inputs = keras.Input((8,))
    model = keras.Model(inputs, dense(inner(inputs)), name="outer")
    report = keras_initkit.reinitialize(model, seed=0)
    assert report.column("layer").count("inner/tied") == 1
    assert "tied" not in report.column("layer")


def _separable_stack(kind, depth=8, channels=64):
    model = keras.Sequential([keras.Input((32, 32, channels))], name=f"{kind}_stack")
    for i in range(depth):
        if kind == "separable":
            model.add(L.SeparableConv2D(channels, 3, padding="same", name=f"conv{i}"))
        else:
            model.add(L.Conv2D(channels, 3, padding="same", name=f"conv{i}"))
        model.add(L.ReLU(name=f"relu{i}"))
    return model


@pytest.mark.parametrize("kind", ["separable", "conv"])
def test_separable_conv_stack_keeps_its_scale(kind):
    model = _separable_stack(kind)
    x = np.random.default_rng(0).standard_normal((4, 32, 32, 64)).astype("float32")
    # three draws: 64 channels average the per-channel depthwise gains only so much
    # (one draw of a 32-channel stack can drift to 0.4); He on both kernels gave ~12
    for seed in (0, 1, 2):
        report = keras_initkit.reinitialize(model, seed=seed)
        if kind == "separable":
            layer = model.get_layer("conv0")
            # the depthwise kernel feeds the pointwise kernel (gain 1), the pointwise the ReLU
            assert type(layer.depthwise_initializer) is ki.LecunNormal
            assert type(layer.pointwise_initializer) is ki.HeNormal
            assert len(report) == 16
        stds = [row["std"] for row in keras_initkit.inspect(model, x)
                if row["layer"].startswith("conv")]
        assert 0.5 <= stds[-1] / stds[0] <= 2.0, (seed, stds)


@pytest.mark.slow
@pytest.mark.parametrize("name, blocks", [("MobileNetV3Small", 6), ("ConvNeXtTiny", 18)])
def test_keras_applications_graphs_with_operations(name, blocks):
    model = getattr(keras.applications, name)(
        weights=None, input_shape=(32, 32, 3), classes=10
    )
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype("float32")
    inspected = keras_initkit.inspect(model, x)
    assert len(inspected) > 100
    report = keras_initkit.reinitialize(model, seed=0)
    assert all(np.isfinite(row["std"]) for row in report if row["std"] is not None)
    residual = keras_initkit.zero_init_residual(model)
    assert len(residual) == blocks
    lsuv = keras_initkit.lsuv(model, x, seed=0)
    assert len(lsuv) > 50
    assert np.all(np.isfinite(_np(model(x))))
