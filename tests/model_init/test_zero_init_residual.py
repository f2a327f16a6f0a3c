"""`zero_init_residual` on real Functional models: detection, zeroing, Fixup, saving, training."""

import keras
import numpy as np
import pytest
from keras import layers

import keras_initkit
from keras_initkit.initializers import Fixup, ResidualZeros


def _np(value):
    return np.array(keras.ops.convert_to_numpy(value))


def _weights(model):
    """layer name -> {weight name: numpy copy}."""
    return {
        layer.name: {w.path.split("/")[-1]: _np(w.value) for w in layer.weights}
        for layer in model.layers
    }


# --------------------------------------------------------------------------------------
# A small ResNet: stem, three identity blocks and one projection block, GAP + Dense head.
# --------------------------------------------------------------------------------------

BLOCKS = ("b1", "b2", "b3", "b4")
PROJECTED = "b3"


def _block(h, filters, name, project=False):
    a = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv1")(h)
    a = layers.ReLU(name=f"{name}_relu")(a)
    a = layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(a)
    if project:
        skip = layers.Conv2D(filters, 1, name=f"{name}_proj")(h)
        # the branch first, the projection second: the order of the Add must not matter
        out = layers.Add(name=f"{name}_add")([a, skip])
    else:
        out = layers.Add(name=f"{name}_add")([h, a])
    return layers.ReLU(name=f"{name}_out")(out)


def _resnet():
    inputs = keras.Input((8, 8, 3))
    h = layers.Conv2D(4, 3, padding="same", activation="relu", name="stem")(inputs)
    h = _block(h, 4, "b1")
    h = _block(h, 4, "b2")
    h = _block(h, 8, "b3", project=True)
    h = _block(h, 8, "b4")
    h = layers.GlobalAveragePooling2D(name="gap")(h)
    outputs = layers.Dense(3, name="head")(h)
    return keras.Model(inputs, outputs, name="tiny_resnet")


def test_resnet_branches_are_found_zeroed_and_fixup_scaled():
    model = _resnet()
    originals = {name: model.get_layer(f"{name}_conv1").kernel_initializer for name in BLOCKS}
    proj_init = model.get_layer(f"{PROJECTED}_proj").kernel_initializer
    before = _weights(model)

    report = keras_initkit.zero_init_residual(model)

    # one row per block, in model order, naming the Add and the last conv of the branch
    assert len(report) == len(BLOCKS)
    assert report.column("add") == [f"{n}_add" for n in BLOCKS]
    assert report.column("zeroed") == [f"{n}_conv2/kernel" for n in BLOCKS]
    assert report.column("weighted layers") == [2] * 4
    for row, name in zip(report, BLOCKS, strict=True):
        assert f"{name}_conv1" in row["branch"] and f"{name}_conv2" in row["branch"]
        assert f"{name}_proj" not in row["branch"]  # the projection is the skip
    # L = 4 branches of m = 2 layers: 4 ** (-1 / (2 * 2 - 2)) = 0.5
    assert report.column("fixup scale") == pytest.approx([0.5] * 4)
    assert "L = 4" in str(report)
    assert "b1_conv2/kernel" in str(report)

    after = _weights(model)
    for name in BLOCKS:
        last = model.get_layer(f"{name}_conv2")
        assert not np.any(after[last.name]["kernel"])
        assert not np.any(after[last.name]["bias"])
        assert isinstance(last.kernel_initializer, ResidualZeros)
        assert isinstance(last.bias_initializer, ResidualZeros)

        first = model.get_layer(f"{name}_conv1")
        # multiplying by 0.5 is exact in floating point
        np.testing.assert_array_equal(
            after[first.name]["kernel"], before[first.name]["kernel"] * 0.5
        )
        np.testing.assert_array_equal(after[first.name]["bias"], before[first.name]["bias"])
        init = first.kernel_initializer
        assert isinstance(init, Fixup)
        assert init.num_branches == 4 and init.branch_depth == 2
        assert init.factor == pytest.approx(0.5)
        assert type(init.base) is type(originals[name])
        assert init.base.get_config() == originals[name].get_config()

    # the projection shortcut, the stem and the head are untouched
    for name in (f"{PROJECTED}_proj", "stem", "head"):
        for weight, value in before[name].items():
            np.testing.assert_array_equal(after[name][weight], value)
    assert model.get_layer(f"{PROJECTED}_proj").kernel_initializer is proj_init
    assert not isinstance(model.get_layer("stem").kernel_initializer, (Fixup, ResidualZeros))

    # every identity block now starts as the identity: relu(h + 0) = h for h >= 0
    x = np.random.default_rng(0).standard_normal((4, 8, 8, 3)).astype("float32")
    probe = keras.Model(
        model.input, [model.get_layer("stem").output, model.get_layer("b2_out").output]
    )
    stem, b2 = probe(x)
    np.testing.assert_allclose(_np(b2), _np(stem), atol=1e-6)


def test_resnet_without_fixup_only_zeroes():
    model = _resnet()
    originals = {name: model.get_layer(f"{name}_conv1").kernel_initializer for name in BLOCKS}
    before = _weights(model)

    report = keras_initkit.zero_init_residual(model, fixup=False)

    assert report.column("zeroed") == [f"{n}_conv2/kernel" for n in BLOCKS]
    assert report.column("fixup scale") == [1.0] * 4
    after = _weights(model)
    for name in BLOCKS:
        assert not np.any(after[f"{name}_conv2"]["kernel"])
        assert isinstance(model.get_layer(f"{name}_conv2").kernel_initializer, ResidualZeros)
        first = model.get_layer(f"{name}_conv1")
        np.testing.assert_array_equal(after[first.name]["kernel"], before[first.name]["kernel"])
        assert first.kernel_initializer is originals[name]
    for layer in model.layers:
        if layer.name not in {f"{n}_conv2" for n in BLOCKS}:
            for weight, value in before[layer.name].items():
                np.testing.assert_array_equal(after[layer.name][weight], value)


def test_branch_ending_in_batch_norm_zeroes_gamma_without_fixup():
    inputs = keras.Input((6, 6, 4))
    h = layers.Conv2D(4, 3, padding="same", activation="relu", name="stem")(inputs)
    # block 1: conv - relu - conv - BN, identity skip (Goyal et al.: zero the BN gamma)
    a = layers.Conv2D(4, 3, padding="same", name="n_conv1")(h)
    a = layers.ReLU()(a)
    a = layers.Conv2D(4, 3, padding="same", name="n_conv2")(a)
    a = layers.BatchNormalization(name="n_bn")(a)
    h1 = layers.Add(name="n_add")([h, a])
    # block 2: plain conv - relu - conv (Fixup)
    b = layers.Conv2D(4, 3, padding="same", name="p_conv1")(h1)
    b = layers.ReLU()(b)
    b = layers.Conv2D(4, 3, padding="same", name="p_conv2")(b)
    h2 = layers.Add(name="p_add")([h1, b])
    model = keras.Model(inputs, layers.Dense(2, name="head")(layers.Flatten()(h2)))
    # give BN non-trivial statistics so "the block is the identity" is not a coincidence
    bn = model.get_layer("n_bn")
    bn.beta.assign(np.zeros(4, "float32"))
    bn.moving_mean.assign(np.full(4, 0.3, "float32"))
    bn.moving_variance.assign(np.full(4, 2.0, "float32"))
    before = _weights(model)

    report = keras_initkit.zero_init_residual(model)

    rows = {row["add"]: row for row in report}
    assert set(rows) == {"n_add", "p_add"}
    assert rows["n_add"]["zeroed"] == "n_bn/gamma"
    assert rows["n_add"]["fixup scale"] == 1.0  # no Fixup scaling behind a normalization
    assert rows["p_add"]["zeroed"] == "p_conv2/kernel"
    assert rows["p_add"]["fixup scale"] == pytest.approx(2**-0.5)  # L = 2, m = 2

    after = _weights(model)
    assert not np.any(after["n_bn"]["gamma"])
    assert isinstance(bn.gamma_initializer, ResidualZeros)
    for name in ("n_conv1", "n_conv2"):  # the convs of the normalized branch keep their kernels
        for weight, value in before[name].items():
            np.testing.assert_array_equal(after[name][weight], value)
        assert not isinstance(model.get_layer(name).kernel_initializer, (Fixup, ResidualZeros))
    np.testing.assert_array_equal(
        after["p_conv1"]["kernel"], before["p_conv1"]["kernel"] * np.float32(2**-0.5)
    )
    assert not np.any(after["p_conv2"]["kernel"])

    # the normalized block is the identity at init (inference mode, beta = 0)
    x = np.random.default_rng(1).standard_normal((3, 6, 6, 4)).astype("float32")
    probe = keras.Model(model.input, [model.get_layer("stem").output, h1, h2])
    stem, out1, out2 = (_np(t) for t in probe(x, training=False))
    np.testing.assert_allclose(out1, stem, atol=1e-6)
    np.testing.assert_allclose(out2, stem, atol=1e-6)


# --------------------------------------------------------------------------------------
# Acceptance: a 50-block residual MLP without normalization.
# --------------------------------------------------------------------------------------

DEPTH = 50
WIDTH = 32


def _residual_mlp(features=8):
    inputs = keras.Input((features,))
    stem = layers.Dense(WIDTH, name="stem")(inputs)
    h = stem
    for i in range(DEPTH):
        a = layers.Dense(WIDTH, activation="relu", name=f"block{i}_a")(h)
        a = layers.Dense(WIDTH, name=f"block{i}_b")(a)
        h = layers.Add(name=f"block{i}_add")([h, a])
    outputs = layers.Dense(1, name="head")(h)
    model = keras.Model(inputs, outputs, name="residual_mlp")
    return model, stem, h


def _regression(n=256, features=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype("float32")
    w = rng.standard_normal((features, 1)).astype("float32") / np.sqrt(features)
    y = (np.sin(x @ w * 2.0) + 0.5 * (x @ w)).astype("float32")
    return x, y


def test_50_block_residual_mlp_starts_as_its_stem_and_saves(tmp_path):
    model, stem, last_add = _residual_mlp()
    x = np.random.default_rng(2).standard_normal((64, 8)).astype("float32")
    probe = keras.Model(model.input, [stem, last_add])
    out_stem, out_last = (_np(t) for t in probe(x))
    assert not np.allclose(out_last, out_stem, atol=1e-3)  # not the identity before

    report = keras_initkit.zero_init_residual(model)

    assert len(report) == DEPTH
    assert report.column("zeroed") == [f"block{i}_b/kernel" for i in range(DEPTH)]
    assert report.column("fixup scale") == pytest.approx([DEPTH**-0.5] * DEPTH)
    out_stem, out_last = (_np(t) for t in probe(x))
    np.testing.assert_allclose(out_last, out_stem, atol=1e-6)
    head = model.get_layer("head")
    np.testing.assert_allclose(_np(model(x)), _np(head(out_stem)), atol=1e-6)

    # the saved model names the initializers and loads with only `import keras_initkit`
    config = model.get_config()
    by_name = {entry["config"]["name"]: entry["config"] for entry in config["layers"]}
    assert "ResidualZeros" in str(by_name["block0_b"]["kernel_initializer"])
    assert "ResidualZeros" in str(by_name["block0_b"]["bias_initializer"])
    assert "Fixup" in str(by_name["block0_a"]["kernel_initializer"])
    path = tmp_path / "residual_mlp.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(_np(loaded(x)), _np(model(x)), atol=1e-6)
    for i in (0, DEPTH - 1):
        zeroed = loaded.get_layer(f"block{i}_b")
        scaled = loaded.get_layer(f"block{i}_a")
        assert isinstance(zeroed.kernel_initializer, ResidualZeros)
        assert isinstance(zeroed.bias_initializer, ResidualZeros)
        assert isinstance(scaled.kernel_initializer, Fixup)
        assert scaled.kernel_initializer.num_branches == DEPTH
        assert scaled.kernel_initializer.branch_depth == 2
        assert not np.any(_np(zeroed.kernel))


def test_50_block_residual_mlp_trains_without_diverging():
    model, _, _ = _residual_mlp()
    keras_initkit.zero_init_residual(model)
    x, y = _regression()
    # 50 branches that all start at zero share the first gradient steps: a modest rate;
    # full-batch steps keep the test cheap on eager backends
    model.compile(optimizer=keras.optimizers.SGD(0.005, momentum=0.9), loss="mse")
    history = model.fit(x, y, batch_size=len(x), epochs=8, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)), losses
    assert np.all(np.diff(losses) < 0), losses  # decreasing at every step, never blowing up
    assert losses[-1] < 0.5 * losses[0], losses
    weights = [_np(w) for w in model.weights]
    assert all(np.all(np.isfinite(w)) for w in weights)
    # the zeroed layers have started learning
    assert np.any(_np(model.get_layer("block0_b").kernel))


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.a = layers.Dense(4, activation="relu")
        self.b = layers.Dense(4)

    def call(self, x):
        return x + self.b(self.a(x))


def test_sequential_is_rejected_with_a_clear_message():
    model = keras.Sequential([keras.Input((4,)), layers.Dense(4), layers.Dense(4)])
    with pytest.raises(ValueError, match="Functional"):
        keras_initkit.zero_init_residual(model)


def test_subclassed_model_is_traced_and_its_branch_zeroed():
    model = _Subclassed()
    x = np.random.default_rng(0).standard_normal((3, 4)).astype("float32")
    model(x)
    report = keras_initkit.zero_init_residual(model)
    assert len(report) == 1
    assert report[0]["zeroed"] == f"{model.b.name}/kernel"
    assert not np.any(_np(model.b.kernel))
    np.testing.assert_allclose(_np(model(x)), x, atol=1e-6)  # x + 0


@pytest.mark.parametrize("kind", ["no_add", "balanced_add"])
def test_functional_without_residual_branch_is_rejected(kind):
    inputs = keras.Input((4,))
    h = layers.Dense(4, activation="relu")(inputs)
    if kind == "no_add":
        outputs = layers.Dense(2)(h)
    else:  # an Add of two paths with as many weighted layers: no skip, no branch
        outputs = layers.Add()([layers.Dense(4)(h), layers.Dense(4)(h)])
    model = keras.Model(inputs, outputs)
    before = [_np(w) for w in model.weights]
    with pytest.raises(ValueError, match="no residual branch"):
        keras_initkit.zero_init_residual(model)
    for weight, value in zip(model.weights, before, strict=True):
        np.testing.assert_array_equal(_np(weight), value)


@pytest.mark.parametrize("kind", ["sequential", "subclassed"])
def test_unbuilt_model_is_rejected(kind):
    model = keras.Sequential([layers.Dense(4)]) if kind == "sequential" else _Subclassed()
    with pytest.raises(ValueError, match="not built"):
        keras_initkit.zero_init_residual(model)


def test_not_a_model_is_rejected():
    with pytest.raises(ValueError, match="keras.Model"):
        keras_initkit.zero_init_residual(layers.Dense(4))
