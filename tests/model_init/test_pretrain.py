"""`pretrain` on real models and data: both methods, every backend, seeds, report, bad input.

The small cases run on whichever backend the session uses (run the file with
KERAS_BACKEND=tensorflow, jax and torch). The digits acceptance (issue 16) is slow and
runs on TensorFlow only.
"""

import importlib.util
import re
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers

import keras_initkit


def _np(value):
    return np.array(keras.ops.convert_to_numpy(value))


def _weights(model):
    return [_np(w) for w in model.weights]


def binary_patterns(samples=240, features=24, seed=0):
    """Noisy copies of 4 binary prototypes: structure an RBM can learn."""
    rng = np.random.default_rng(seed)
    prototypes = rng.uniform(size=(4, features)) < 0.5
    rows = prototypes[rng.integers(0, 4, samples)]
    flips = rng.uniform(size=rows.shape) < 0.05
    return np.where(flips, ~rows, rows).astype("float32")


def real_patterns(samples=240, features=12, seed=0):
    """Real-valued data on a 3-dimensional subspace, plus noise, with unequal feature scales."""
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((samples, 3)) @ rng.standard_normal((3, features))
    data += 0.1 * rng.standard_normal(data.shape)
    return (data * np.linspace(0.5, 3.0, features) + 2.0).astype("float32")


def mlp(features, units=(16, 16), activation="sigmoid", out=3, seed=0):
    init = keras.initializers.RandomNormal(stddev=0.01, seed=seed)
    return keras.Sequential(
        [keras.Input((features,))]
        + [layers.Dense(u, activation, kernel_initializer=init, name=f"hidden_{i + 1}")
           for i, u in enumerate(units)]
        + [layers.Dense(out, "softmax", kernel_initializer=init, name="output")]
    )


# 60 SGD steps per layer: from N(0, 0.01^2) a small RBM needs a large step to get going
FAST = {"epochs": 4, "batch_size": 16, "momentum": 0.0, "verbose": 0}
BINARY_RATE, REAL_RATE = 0.5, 0.05
BINARY = {**FAST, "learning_rate": BINARY_RATE}


# --- Real training, both methods ----------------------------------------------------------
def test_rbm_lowers_every_layers_reconstruction_error_and_writes_its_weights():
    x = binary_patterns()
    model = mlp(x.shape[1])
    before = _weights(model)
    features = keras.Model(model.inputs[0], model.get_layer("hidden_2").output)
    spread = _np(features(x)).std(axis=0).mean()  # collapsed: ~1e-4 after 2 tiny layers
    report = keras_initkit.pretrain(model, x, "rbm", learning_rate=BINARY_RATE, seed=0,
                                    **FAST)
    # the pretrained top layer tells the 4 prototypes apart
    assert _np(features(x)).std(axis=0).mean() > 20 * spread
    assert report.column("status") == ["ok", "ok", "skipped: the output layer (pass layers= "
                                       "to include it)"]
    for row in report[:2]:
        errors = row["errors"]
        assert len(errors) == FAST["epochs"] + 1
        assert errors[0] == row["error before"] and errors[-1] == row["error after"]
        # N(0, 0.01^2) weights reconstruct every sample as the mean; the RBM learns the
        # 4 prototypes, so the error falls well below the start, not just by a rounding
        assert row["error after"] < 0.7 * row["error before"], row
        assert all(np.isfinite(errors))
    after = _weights(model)
    for name, old, new in zip([w.path for w in model.weights], before, after, strict=True):
        if "/output/" in f"/{name}":
            np.testing.assert_array_equal(old, new)  # the output layer is left alone
        else:
            assert not np.allclose(old, new), name
    assert report[0]["visible"] == "bernoulli" and report[1]["visible"] == "bernoulli"


def test_gaussian_visible_units_for_real_valued_input_absorb_the_feature_scale():
    """Gaussian units train on x / std(x): x and 10 x give kernels that differ by 10."""
    x = real_patterns()
    kernels = []
    for factor in (1.0, 10.0):
        model = mlp(x.shape[1], units=(8,))  # the same start for both, seen from x
        model.layers[0].kernel.assign(model.layers[0].kernel / factor)
        report = keras_initkit.pretrain(
            model, x * factor, learning_rate=REAL_RATE, seed=3, **FAST)
        assert report[0]["visible"] == "gaussian"
        assert report[0]["error after"] < report[0]["error before"]
        kernels.append((_np(model.layers[0].kernel), _np(model.layers[0].bias)))
    np.testing.assert_allclose(kernels[0][0], 10.0 * kernels[1][0], rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(kernels[0][1], kernels[1][1], rtol=1e-3, atol=1e-6)


def test_deeper_layers_decide_their_visible_units_from_their_input():
    x = real_patterns()
    model = mlp(x.shape[1], units=(8, 8))
    report = keras_initkit.pretrain(model, x, learning_rate=REAL_RATE, seed=0, **FAST)
    assert report.column("visible")[:2] == ["gaussian", "bernoulli"]  # x real; sigmoid in [0,1]


def test_visible_forces_the_first_layers_units():
    x = binary_patterns()
    report = keras_initkit.pretrain(mlp(x.shape[1]), x, visible="gaussian", layers="hidden_1",
                                    learning_rate=REAL_RATE, seed=0, **{**FAST, "epochs": 1})
    assert report.column("visible")[0] == "gaussian"


def test_cd_k_steps_change_the_result():
    x = binary_patterns()
    kernels = []
    for k in (1, 3):
        model = mlp(x.shape[1], units=(8,))
        keras_initkit.pretrain(model, x, k=k, seed=0, **{**BINARY, "epochs": 1})
        kernels.append(_np(model.layers[0].kernel))
    assert not np.allclose(*kernels)


@pytest.mark.parametrize("tied", [True, False])
def test_denoising_autoencoder_lowers_the_error_with_the_activation_the_layer_feeds(tied):
    x = real_patterns()
    init = keras.initializers.RandomNormal(stddev=0.01, seed=0)
    model = keras.Sequential([
        keras.Input((x.shape[1],)),
        layers.Dense(10, kernel_initializer=init, name="a"),
        layers.ReLU(name="relu"),
        layers.Dense(6, "tanh", kernel_initializer=init, name="b"),
        layers.Dense(2, name="out"),
    ])
    report = keras_initkit.pretrain(model, x, "autoencoder", learning_rate=REAL_RATE, noise=0.2,
                                    tied=tied, seed=0, epochs=6, batch_size=16, verbose=0)
    rows = {row["layer"]: row for row in report}
    assert rows["a"]["hidden"] == "ReLU" and rows["b"]["hidden"] == "tanh"
    assert rows["a"]["visible"] == "gaussian" and rows["b"]["visible"] == "gaussian"
    for name in ("a", "b"):
        assert rows[name]["status"] == "ok"
        assert rows[name]["error after"] < 0.9 * rows[name]["error before"], rows[name]


def test_autoencoder_on_bernoulli_input_uses_cross_entropy_and_learns():
    x = binary_patterns()
    model = mlp(x.shape[1], units=(12,), activation="sigmoid")
    report = keras_initkit.pretrain(model, x, "autoencoder", seed=0, **BINARY)
    assert report[0]["visible"] == "bernoulli" and report[0]["hidden"] == "sigmoid"
    assert report[0]["error after"] < 0.7 * report[0]["error before"]


def test_tied_and_untied_decoders_differ():
    x = binary_patterns()
    kernels = []
    for tied in (True, False):
        model = mlp(x.shape[1], units=(8,))
        keras_initkit.pretrain(model, x, "autoencoder", tied=tied, seed=0,
                               **{**BINARY, "epochs": 1})
        kernels.append(_np(model.layers[0].kernel))
    assert not np.allclose(*kernels)


def test_a_layer_without_bias_keeps_having_none():
    x = binary_patterns()
    model = keras.Sequential([keras.Input((x.shape[1],)),
                              layers.Dense(8, "sigmoid", use_bias=False), layers.Dense(2)])
    report = keras_initkit.pretrain(model, x, seed=0, **BINARY)
    assert report[0]["status"] == "ok" and len(model.layers[0].weights) == 1
    assert report[0]["error after"] < report[0]["error before"]


def test_the_rbm_notes_a_layer_whose_activation_is_not_sigmoid():
    x = binary_patterns()
    report = keras_initkit.pretrain(mlp(x.shape[1], activation="relu"), x, layers="hidden_1",
                                    learning_rate=REAL_RATE, seed=0, **{**FAST, "epochs": 1})
    assert report[0]["hidden"] == "sigmoid (Bernoulli); the layer applies relu"


# --- Which layers -------------------------------------------------------------------------
def test_conv_and_attention_layers_are_left_alone_and_named():
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(64, 6, 6, 1)).astype("float32")
    inputs = keras.Input((6, 6, 1))
    h = layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    h = layers.Reshape((16, 4))(h)
    h = layers.MultiHeadAttention(2, 4, name="attention")(h, h)
    h = layers.Flatten()(h)
    h = layers.Dense(8, "sigmoid", name="hidden")(h)
    outputs = layers.Dense(2, name="out")(h)
    model = keras.Model(inputs, outputs)
    frozen = {w.path: _np(w) for w in model.weights if "hidden/" not in w.path}
    report = keras_initkit.pretrain(model, images, learning_rate=REAL_RATE, seed=0, **FAST)
    status = dict(zip(report.column("layer"), report.column("status"), strict=True))
    assert status["conv"] == "skipped: Conv2D cannot be pretrained (only Dense layers); kept"
    assert status["attention"] == (
        "skipped: MultiHeadAttention cannot be pretrained (only Dense layers); kept")
    assert status["hidden"] == "ok"
    assert "Conv2D cannot be pretrained" in str(report)
    for w in model.weights:
        if w.path in frozen:
            np.testing.assert_array_equal(frozen[w.path], _np(w), err_msg=w.path)


def test_layers_selects_the_layers_the_output_layer_included():
    x = binary_patterns()
    model = mlp(x.shape[1])
    report = keras_initkit.pretrain(model, x, layers=["hidden_2", "output"], seed=0,
                                    **{**BINARY, "epochs": 1})
    assert report.column("status") == ["skipped: not in layers", "ok", "ok"]


def test_functional_model_with_dropout_between_reads_each_layers_real_input():
    x = binary_patterns()
    inputs = keras.Input((x.shape[1],))
    h = layers.Dense(12, "sigmoid", name="d1")(inputs)
    h = layers.Dropout(0.5)(h)  # inference mode while reading inputs: no masking
    h = layers.Dense(12, "sigmoid", name="d2")(h)
    model = keras.Model(inputs, layers.Dense(2, name="d3")(h))
    report = keras_initkit.pretrain(model, x, seed=0, **{**BINARY, "epochs": 1})
    assert report.column("status")[:2] == ["ok", "ok"]
    assert report[1]["visible"] == "bernoulli"


# --- Seeds --------------------------------------------------------------------------------
def _pretrained(x, method, seed):
    model = mlp(x.shape[1], units=(8,))
    keras_initkit.pretrain(model, x, method, seed=seed, **{**BINARY, "epochs": 2})
    return _weights(model)


@pytest.mark.parametrize("method", ["rbm", "autoencoder"])
def test_an_int_seed_repeats_and_another_seed_differs(method):
    x = binary_patterns()
    first, again, other = (_pretrained(x, method, s) for s in (7, 7, 8))
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(np.allclose(a, b) for a, b in zip(first, other, strict=True))


def test_seed_none_follows_keras_set_random_seed():
    x = binary_patterns()
    runs = []
    for _ in range(2):
        keras.utils.set_random_seed(11)
        runs.append(_pretrained(x, "rbm", None))
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


# --- Report and progress ------------------------------------------------------------------
def test_report_columns_title_and_progress_lines(capsys):
    x = binary_patterns()
    model = mlp(x.shape[1], units=(8, 8))
    report = keras_initkit.pretrain(model, x, epochs=2, batch_size=16, seed=0, verbose=1)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert re.match(r"pretrain 1/2 hidden_1 \(24 -> 8, rbm, bernoulli visible\): "
                    r"reconstruction error [0-9.e-]+ -> [0-9.e-]+ in [0-9.]+ s$", lines[0])
    assert report.columns == ["layer", "class", "shape", "visible", "hidden", "error before",
                              "error after", "seconds", "status"]
    assert report.title == f"pretrain({model.name}, method='rbm', epochs=2)"
    assert report[1]["shape"] == "8 -> 8" and report[0]["seconds"] > 0
    assert str(report).splitlines()[0] == report.title
    keras_initkit.pretrain(model, x, epochs=2, batch_size=16, layers="hidden_1", verbose=2)
    assert len(capsys.readouterr().out.strip().splitlines()) == 1 + 2
    keras_initkit.pretrain(model, x, epochs=1, batch_size=16, layers="hidden_1", verbose=0)
    assert capsys.readouterr().out == ""


def test_a_diverging_layer_keeps_its_weights_and_says_so():
    x = real_patterns() * 1e3
    model = mlp(x.shape[1], units=(8,))
    before = _weights(model)
    with pytest.warns(RuntimeWarning, match="lower learning_rate|Lower learning_rate"):
        report = keras_initkit.pretrain(model, x, learning_rate=1e4, visible="gaussian",
                                        seed=0, **{**FAST, "momentum": 0.9})
    assert report[0]["status"] == "diverged (non-finite error): kept; lower learning_rate"
    for a, b in zip(before, _weights(model), strict=True):
        np.testing.assert_array_equal(a, b)


# --- Bad input ----------------------------------------------------------------------------
X = binary_patterns(samples=32)
BAD = {
    "model-string": (lambda m: keras_initkit.pretrain("m", X), "model"),
    "method-typo": (lambda m: keras_initkit.pretrain(m, X, "rbn"), "method"),
    "epochs-zero": (lambda m: keras_initkit.pretrain(m, X, epochs=0), "epochs"),
    "epochs-float": (lambda m: keras_initkit.pretrain(m, X, epochs=2.5), "epochs"),
    "learning_rate-zero": (lambda m: keras_initkit.pretrain(m, X, learning_rate=0),
                           "learning_rate"),
    "learning_rate-nan": (lambda m: keras_initkit.pretrain(m, X, learning_rate=float("nan")),
                          "learning_rate"),
    "batch_size-zero": (lambda m: keras_initkit.pretrain(m, X, batch_size=0), "batch_size"),
    "batch_size-above-samples": (lambda m: keras_initkit.pretrain(m, X, batch_size=33),
                                 "batch_size"),
    "momentum-one": (lambda m: keras_initkit.pretrain(m, X, momentum=1.0), "momentum"),
    "k-zero": (lambda m: keras_initkit.pretrain(m, X, k=0), "k"),
    "k-with-autoencoder": (lambda m: keras_initkit.pretrain(m, X, "autoencoder", k=2), "k"),
    "noise-with-rbm": (lambda m: keras_initkit.pretrain(m, X, noise=0.1), "noise"),
    "noise-one": (lambda m: keras_initkit.pretrain(m, X, "autoencoder", noise=1.0), "noise"),
    "tied-string": (lambda m: keras_initkit.pretrain(m, X, "autoencoder", tied="yes"), "tied"),
    "visible-typo": (lambda m: keras_initkit.pretrain(m, X, visible="binary"), "visible"),
    "visible-bernoulli-real": (
        lambda m: keras_initkit.pretrain(m, X * 3 - 1, visible="bernoulli"), "visible"),
    "seed-string": (lambda m: keras_initkit.pretrain(m, X, seed="0"), "seed"),
    "verbose-3": (lambda m: keras_initkit.pretrain(m, X, verbose=3), "verbose"),
    "x-nan": (lambda m: keras_initkit.pretrain(m, X * np.nan), "x"),
    "x-wrong-shape": (lambda m: keras_initkit.pretrain(m, np.ones((8, 5), "float32")), "x"),
    "x-none": (lambda m: keras_initkit.pretrain(m, None), "x"),
    "layers-unknown": (lambda m: keras_initkit.pretrain(m, X, layers=["nope"]), "layers"),
    "layers-empty": (lambda m: keras_initkit.pretrain(m, X, layers=[]), "layers"),
}


@pytest.mark.parametrize("call, argument", list(BAD.values()), ids=list(BAD))
def test_bad_input_raises_early_naming_the_argument_and_changes_nothing(call, argument):
    model = mlp(X.shape[1])
    before = _weights(model)
    with pytest.raises(ValueError, match=re.escape(argument)):
        call(model)
    for a, b in zip(before, _weights(model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_layers_naming_a_conv_layer_is_refused():
    inputs = keras.Input((6, 6, 1))
    h = layers.Flatten()(layers.Conv2D(2, 3, name="conv")(inputs))
    model = keras.Model(inputs, layers.Dense(2)(layers.Dense(4, name="dense")(h)))
    with pytest.raises(ValueError, match="only Dense layers can be pretrained"):
        keras_initkit.pretrain(model, np.ones((4, 6, 6, 1), "float32"), layers=["conv"])


def test_a_model_with_only_an_output_dense_layer_has_nothing_to_pretrain():
    model = keras.Sequential([keras.Input((4,)), layers.Dense(2)])
    with pytest.raises(ValueError, match="nothing to pretrain"):
        keras_initkit.pretrain(model, np.ones((8, 4), "float32"))


# --- Acceptance (issue 16): digits, 5 x Dense(256, sigmoid) from N(0, 0.01^2) -------------
@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="slow; TF only")
def test_rbm_pretraining_rescues_a_deep_sigmoid_net_on_digits():
    path = Path(__file__).resolve().parents[2] / "examples" / "pretrain_rbm.py"
    spec = importlib.util.spec_from_file_location("pretrain_rbm_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)  # the example's data, network and training, not a copy

    keras.utils.set_random_seed(0)
    train, test = example.digits()
    baseline = example.deep_sigmoid_net()
    model = example.deep_sigmoid_net()
    model.set_weights(baseline.get_weights())
    report = keras_initkit.pretrain(model, train[0], "rbm", epochs=5, learning_rate=0.1,
                                    momentum=0.9, seed=0, verbose=0)
    for row in report[:5]:
        assert row["error after"] < 0.8 * row["error before"], row
    chance = example.supervised_accuracy(baseline, train, test)
    pretrained = example.supervised_accuracy(model, train, test)
    assert chance < 0.2, chance  # near chance (0.1): the signal dies in 5 sigmoid layers
    assert pretrained >= chance + 0.2, (chance, pretrained)
