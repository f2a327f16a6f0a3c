"""The layers in real models: configs, .keras files in a fresh process, fit, mixed precision.

Everything runs on whatever backend KERAS_BACKEND selects (CI runs all three).
"""

import inspect
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_initkit
from keras_initkit import activations as ka
from keras_initkit import layers as kl

# One factory per layer, with non-default arguments wherever the layer has any. Factories,
# not instances: the mixed-precision tests must build the layers under their policy.
CONFIG_CASES = {
    "Maxout": (
        lambda: kl.Maxout(4, axis=1, grouping="contiguous"),
        {"num_units": 4, "axis": 1, "grouping": "contiguous"},
    ),
    "MaxoutDense": (
        lambda: kl.MaxoutDense(6, pieces=3, use_bias=False, kernel_constraint="max_norm"),
        {"units": 6, "pieces": 3, "use_bias": False},
    ),
    "GELU": (lambda: kl.GELU(approximate=True), {"approximate": True}),
    "SELU": (lambda: kl.SELU(), {}),
    "Swish": (
        lambda: kl.Swish(beta=2.0, trainable=True),
        {"beta": 2.0, "trainable": True, "per_channel": True},
    ),
    "Mish": (lambda: kl.Mish(), {}),
    "Snake": (
        lambda: kl.Snake(frequency=0.5, trainable=False),
        {"frequency": 0.5, "trainable": False, "per_channel": False},
    ),
    # A per-channel weight that starts frozen.
    "Snake-frozen-per-channel": (
        lambda: kl.Snake(frequency=2.0, trainable=False, per_channel=True),
        {"frequency": 2.0, "trainable": False, "per_channel": True},
    ),
}

# Layers for the training tests, fed by an 8-wide Dense. The parametric ones are trainable.
MODEL_LAYERS = {
    "Maxout": lambda: kl.Maxout(4, grouping="contiguous"),
    "MaxoutDense": lambda: kl.MaxoutDense(6, pieces=3),
    "GELU": lambda: kl.GELU(approximate=True),
    "SELU": lambda: kl.SELU(),
    "Swish": lambda: kl.Swish(beta=2.0, trainable=True),
    "Mish": lambda: kl.Mish(),
    "Snake": lambda: kl.Snake(frequency=0.5),
}

# The weights each layer owns, and which must move during a fit.
OWN_WEIGHTS = {
    "MaxoutDense": ["kernel", "bias"],
    "Swish": ["beta"],
    "Snake": ["frequency"],
}


def constructor_arguments(cls):
    return {
        name
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


# --------------------------------------------------------------------------------------
# 1. The config contract
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_config_holds_every_constructor_argument(name):
    make, expected = CONFIG_CASES[name]
    layer = make()
    config = layer.get_config()
    missing = constructor_arguments(type(layer)) - set(config)
    assert not missing, f"{name}.get_config() lacks constructor arguments {sorted(missing)}"
    for key, value in expected.items():
        assert config[key] == value, (key, config[key], value)
    json.dumps(config)  # plain JSON, as .keras files store it


@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_from_config_round_trip(name):
    layer = CONFIG_CASES[name][0]()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert type(clone) is type(layer)
    assert clone.get_config() == config


@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_keras_serialize_round_trip(name):
    layer = CONFIG_CASES[name][0]()
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == f"keras_initkit>{type(layer).__name__}"
    json.dumps(serialized)
    for deserialize in (keras.saving.deserialize_keras_object, keras.layers.deserialize):
        restored = deserialize(serialized)
        assert type(restored) is type(layer), deserialize
        assert restored.get_config() == layer.get_config(), deserialize


# --------------------------------------------------------------------------------------
# 2 and 5. A trained model with every layer (one nested in a sub-model) saved and loaded
# in fresh processes with safe_mode=True. Three subprocess launches in all.
# --------------------------------------------------------------------------------------

SAVE_CODE = """
import keras, numpy as np
import keras_initkit
from keras_initkit import activations as ka, layers as kl

keras.utils.set_random_seed(0)
# A sub-model (Sequential) holding trainable Swish/Snake and a MaxoutDense, used as a
# layer of the outer Functional model.
inner = keras.Sequential(
    [
        keras.Input((8,)),
        kl.Swish(beta=1.5, trainable=True, name="inner_swish"),
        kl.Snake(frequency=0.5, name="inner_snake"),
        kl.MaxoutDense(8, pieces=2, name="inner_maxout_dense"),
    ],
    name="inner",
)
inputs = keras.Input((6,))
h = keras.layers.Dense(16, activation=ka.snake)(inputs)
h = kl.Maxout(8, grouping="contiguous")(h)
h = kl.MaxoutDense(8, pieces=3, kernel_constraint="max_norm")(h)
h = kl.GELU(approximate=True)(h)
h = kl.SELU()(h)
h = kl.Swish(beta=2.0, trainable=True, name="swish")(h)
h = kl.Mish()(h)
h = kl.Snake(frequency=0.5, name="snake")(h)
h = keras.layers.Dense(8, activation=ka.get("tanhexp"))(h)
h = keras.layers.Activation(ka.lisht)(h)
h = inner(h)
outputs = keras.layers.Dense(1)(h)
model = keras.Model(inputs, outputs)

x = np.load("x.npy")
model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
model.fit(x, x[:, :1], batch_size=8, epochs=1, verbose=0)  # 2 steps
model.save("model.keras")
np.savez(
    "saved.npz",
    prediction=keras.ops.convert_to_numpy(model(x)),
    swish=keras.ops.convert_to_numpy(model.get_layer("swish").parameter),
    snake=keras.ops.convert_to_numpy(model.get_layer("snake").parameter),
    inner_swish=keras.ops.convert_to_numpy(inner.get_layer("inner_swish").parameter),
    inner_snake=keras.ops.convert_to_numpy(inner.get_layer("inner_snake").parameter),
)
"""

LOAD_CODE = """
import keras, numpy as np
import keras_initkit

model = keras.saving.load_model("model.keras", safe_mode=True)
inner = model.get_layer("inner")
np.savez(
    "loaded.npz",
    prediction=keras.ops.convert_to_numpy(model(np.load("x.npy"))),
    swish=keras.ops.convert_to_numpy(model.get_layer("swish").parameter),
    snake=keras.ops.convert_to_numpy(model.get_layer("snake").parameter),
    inner_swish=keras.ops.convert_to_numpy(inner.get_layer("inner_swish").parameter),
    inner_snake=keras.ops.convert_to_numpy(inner.get_layer("inner_snake").parameter),
)
layers = list(model.layers) + list(inner.layers)
print("CLASSES", sorted({type(l).__module__.split(".")[0] + "." + type(l).__name__
                         for l in layers if type(l).__module__.startswith("keras_initkit")}))
print("ACTIVATIONS", [l.activation.__name__ for l in model.layers
                      if type(l).__name__ in ("Dense", "Activation")])
"""

# What each trainable parameter started at in SAVE_CODE.
INITIAL = {"swish": 2.0, "snake": 0.5, "inner_swish": 1.5, "inner_snake": 0.5}


def run_python(code, cwd):
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        # The same backend as this process, even if it came from keras.json.
        "KERAS_BACKEND": keras.backend.backend(),
    }
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], check=False, cwd=cwd, env=env,
        capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def saved_model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("saved_model")
    x = np.random.default_rng(0).standard_normal((16, 6)).astype("float32")
    np.save(directory / "x.npy", x)
    result = run_python(SAVE_CODE, directory)
    assert result.returncode == 0, result.stderr[-3000:]
    return directory


def test_trained_model_loads_in_a_fresh_process_with_safe_mode(saved_model_dir):
    result = run_python(LOAD_CODE, saved_model_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = np.load(saved_model_dir / "saved.npz")
    loaded = np.load(saved_model_dir / "loaded.npz")
    np.testing.assert_allclose(loaded["prediction"], saved["prediction"], atol=1e-5)
    for name, initial in INITIAL.items():
        # The fit moved the parameter off its start, and the file kept the trained value
        # (a layer rebuilt from its config alone would be back at the initial value).
        assert not np.allclose(saved[name], initial, rtol=0, atol=1e-7), name
        np.testing.assert_allclose(loaded[name], saved[name], rtol=0, atol=1e-7, err_msg=name)
    assert (
        "CLASSES ['keras_initkit.GELU', 'keras_initkit.Maxout', 'keras_initkit.MaxoutDense', "
        "'keras_initkit.Mish', 'keras_initkit.SELU', 'keras_initkit.Snake', "
        "'keras_initkit.Swish']" in result.stdout
    ), result.stdout
    # Dense(snake), Dense(get("tanhexp")), Activation(lisht), then the head Dense (linear).
    assert "ACTIVATIONS ['snake', 'tanhexp', 'lisht', 'linear']" in result.stdout, result.stdout


def test_load_without_the_import_fails_naming_the_package(saved_model_dir):
    code = 'import keras\nkeras.saving.load_model("model.keras", safe_mode=True)\n'
    result = run_python(code, saved_model_dir)
    assert result.returncode != 0
    # The first custom object in the file is Dense(activation=keras_initkit's snake): Keras
    # stops there, and the last line of its error names it with the package prefix.
    last_line = result.stderr.strip().splitlines()[-1]
    assert "Could not locate function 'keras_initkit>snake'" in last_line, last_line


# --------------------------------------------------------------------------------------
# 3. A short fit in Sequential, Functional and subclassed models
# --------------------------------------------------------------------------------------


class Subclassed(keras.Model):
    """Creates the layer in __init__ and uses it in call."""

    def __init__(self, make_layer, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(8, name="hidden")
        self.activation_layer = make_layer()
        self.head = keras.layers.Dense(1, name="head")

    def call(self, inputs):
        return self.head(self.activation_layer(self.hidden(inputs)))


def build_model(style, make_layer):
    """(model, layer): the new layer between an 8-wide Dense "hidden" and a Dense head."""
    if style == "subclassed":
        model = Subclassed(make_layer)
        model(np.zeros((1, 6), "float32"))  # builds the weights, so there is a "before"
        return model, model.activation_layer
    layer = make_layer()
    if style == "sequential":
        model = keras.Sequential(
            [
                keras.Input((6,)),
                keras.layers.Dense(8, name="hidden"),
                layer,
                keras.layers.Dense(1, name="head"),
            ]
        )
        return model, layer
    inputs = keras.Input((6,))
    outputs = keras.layers.Dense(1, name="head")(
        layer(keras.layers.Dense(8, name="hidden")(inputs))
    )
    return keras.Model(inputs, outputs), layer


def tiny_data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 6)).astype("float32")
    y = (np.sin(x[:, :1]) + 0.5 * x[:, 1:2]).astype("float32")
    return x, y


def snapshot(weights):
    return {w.path: keras.ops.convert_to_numpy(w).copy() for w in weights}


@pytest.mark.parametrize("style", ["sequential", "functional", "subclassed"])
@pytest.mark.parametrize("name", sorted(MODEL_LAYERS))
def test_short_fit(name, style):
    model, layer = build_model(style, MODEL_LAYERS[name])
    assert [w.name for w in layer.trainable_weights] == OWN_WEIGHTS.get(name, [])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    before = snapshot(model.trainable_weights)
    x, y = tiny_data()
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # 2 steps
    assert np.isfinite(history.history["loss"]).all()
    after = snapshot(model.trainable_weights)
    # The layer's own weights got gradients...
    for weight in layer.trainable_weights:
        assert not np.array_equal(before[weight.path], after[weight.path]), weight.path
    # ...and gradients flow through it to the Dense before it.
    hidden = model.get_layer("hidden").kernel
    assert not np.array_equal(before[hidden.path], after[hidden.path])


@pytest.mark.parametrize("name", ["Maxout", "MaxoutDense"])
def test_fit_with_unknown_spatial_dims(name):
    """The reshaping layers in a conv model whose height and width are None."""
    inputs = keras.Input((None, None, 3))
    hidden = keras.layers.Conv2D(8, 3, padding="same", name="hidden")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(MODEL_LAYERS[name]()(hidden))
    model = keras.Model(inputs, keras.layers.Dense(1)(pooled))
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    rng = np.random.default_rng(0)
    for size in (5, 7):
        x = rng.standard_normal((4, size, size, 3)).astype("float32")
        history = model.fit(x, np.zeros((4, 1), "float32"), batch_size=4, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
        assert tuple(model.predict(x, verbose=0).shape) == (4, 1)


# --------------------------------------------------------------------------------------
# 3b. Freezing (layer.trainable = False, as in transfer learning) a layer with a learned
# parameter. Keras flips `trainable` on every sub-layer when a model is frozen, and that
# flag goes into get_config: the weight must survive it (`per_channel` keeps it).
# --------------------------------------------------------------------------------------

LEARNED = {  # a layer with a learned per-channel parameter, and the parameter's name
    "Swish": (lambda: kl.Swish(beta=2.0, trainable=True, name="act"), "beta"),
    "Snake": (lambda: kl.Snake(frequency=0.5, name="act"), "frequency"),
}


def trained_frozen_model(name, freeze="model"):
    make, _ = LEARNED[name]
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(make()(hidden)))
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    x, y = tiny_data()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    if freeze == "model":
        model.trainable = False
    else:
        model.get_layer("act").trainable = False
    return model, x


@pytest.mark.parametrize("name", sorted(LEARNED))
def test_freezing_stops_updates_of_the_learned_parameter(name):
    model, x = trained_frozen_model(name, freeze="layer")
    layer = model.get_layer("act")
    assert layer.trainable is False
    assert layer.trainable_weights == []
    assert [w.name for w in layer.non_trainable_weights] == [LEARNED[name][1]]
    before = snapshot(model.weights)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")  # recompile after freezing
    model.fit(x, x[:, :1], batch_size=8, epochs=1, verbose=0)
    after = snapshot(model.weights)
    np.testing.assert_array_equal(after[layer.parameter.path], before[layer.parameter.path])
    # The rest still trains, through the frozen layer.
    for other in ("hidden", "head"):
        kernel = model.get_layer(other).kernel
        assert not np.array_equal(after[kernel.path], before[kernel.path]), other


@pytest.mark.parametrize("cls, parameter", [(kl.Swish, "beta"), (kl.Snake, "frequency")])
def test_per_channel_weight_can_start_frozen(cls, parameter):
    layer = cls(2.0, trainable=False, per_channel=True)
    layer(np.ones((2, 4), "float32"))
    assert [w.name for w in layer.non_trainable_weights] == [parameter]
    assert layer.trainable_weights == []
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.parameter), [2.0] * 4)


@pytest.mark.parametrize("name", sorted(LEARNED))
def test_frozen_layer_rebuilt_from_its_config_keeps_its_learned_parameter(name):
    make, parameter = LEARNED[name]
    layer = make()
    layer(np.ones((2, 4), "float32"))
    layer.trainable = False
    clone = type(layer).from_config(layer.get_config())
    clone(np.ones((2, 4), "float32"))  # as Keras uses it: __call__ builds if needed
    assert clone.trainable is False
    assert [w.name for w in clone.weights] == [parameter]


@pytest.mark.parametrize("name", sorted(LEARNED))
def test_clone_model_of_a_frozen_model_keeps_the_learned_parameter(name):
    model, x = trained_frozen_model(name)
    clone = keras.models.clone_model(model)
    assert [w.path for w in clone.weights] == [w.path for w in model.weights]
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(clone(x)), keras.ops.convert_to_numpy(model(x)), atol=1e-6
    )


@pytest.mark.parametrize("name", sorted(LEARNED))
def test_frozen_model_saves_and_loads(name, tmp_path):
    model, x = trained_frozen_model(name)
    trained = keras.ops.convert_to_numpy(model.get_layer("act").parameter)
    model.save(tmp_path / "frozen.keras")
    loaded = keras.saving.load_model(tmp_path / "frozen.keras", safe_mode=True)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)), atol=1e-6
    )
    layer = loaded.get_layer("act")
    assert layer.trainable is False
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.parameter), trained)


# --------------------------------------------------------------------------------------
# 4. Mixed precision
# --------------------------------------------------------------------------------------


@pytest.fixture(params=["mixed_float16", "mixed_bfloat16"])
def mixed_policy(request):
    keras.config.set_dtype_policy(request.param)
    try:
        yield request.param
    finally:
        keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("name", sorted(MODEL_LAYERS))
def test_mixed_precision(name, mixed_policy):
    compute_dtype = mixed_policy.split("_")[1]
    layer = MODEL_LAYERS[name]()
    assert layer.compute_dtype == compute_dtype
    assert layer.variable_dtype == "float32"
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, name="hidden")(inputs)
    activated = layer(hidden)
    # Symbolic output in the compute dtype; the head computes in float32 for the loss.
    assert keras.backend.standardize_dtype(activated.dtype) == compute_dtype
    model = keras.Model(inputs, keras.layers.Dense(1, dtype="float32")(activated))

    # Eager call on float32 data: the layer autocasts and answers in the compute dtype.
    data = np.linspace(-3, 3, 16, dtype="float32").reshape(2, 8)
    eager = layer(keras.ops.convert_to_tensor(data))
    assert keras.backend.standardize_dtype(eager.dtype) == compute_dtype
    assert np.isfinite(keras.ops.convert_to_numpy(keras.ops.cast(eager, "float32"))).all()

    assert [w.name for w in layer.weights] == OWN_WEIGHTS.get(name, [])
    for weight in layer.weights:
        assert keras.backend.standardize_dtype(weight.dtype) == "float32", weight.path

    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    x, y = tiny_data()
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # 1 step
    assert np.isfinite(history.history["loss"]).all()
    for weight in layer.weights:
        assert keras.backend.standardize_dtype(weight.dtype) == "float32", weight.path


def test_mixed_policy_fixture_restored_float32():
    # Runs after the mixed-precision tests in file order: the global policy is back.
    assert keras.config.dtype_policy().name == "float32"


# --------------------------------------------------------------------------------------
# 5. Nested use, in process (the fresh-process load above also nests a sub-model)
# --------------------------------------------------------------------------------------


def test_layers_inside_a_sub_model_inside_a_model_round_trip_in_memory():
    inner = keras.Sequential(
        [
            keras.Input((8,)),
            kl.Swish(beta=1.5, trainable=True),
            kl.Maxout(4),
            kl.Snake(),
        ],
        name="inner",
    )
    inputs = keras.Input((6,))
    outputs = keras.layers.Dense(1)(inner(kl.MaxoutDense(8, pieces=2)(inputs)))
    model = keras.Model(inputs, outputs)
    x, y = tiny_data()
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(clone(x)), keras.ops.convert_to_numpy(model(x)), atol=1e-6
    )
    inner = clone.get_layer("inner").layers
    assert [type(layer) for layer in inner] == [kl.Swish, kl.Maxout, kl.Snake]


# --------------------------------------------------------------------------------------
# 6. keras_initkit.activations
# --------------------------------------------------------------------------------------

OUR_ACTIVATIONS = ["gelu_approximate", "lisht", "snake", "tanhexp"]


def test_names_lists_our_four_functions():
    assert ka.names() == OUR_ACTIVATIONS


@pytest.mark.parametrize("name", OUR_ACTIVATIONS)
def test_get_resolves_our_names_with_and_without_the_package_prefix(name):
    function = getattr(ka, name)
    assert ka.get(name) is function
    assert ka.get(f"keras_initkit>{name}") is function
    assert ka.get(function) is function


@pytest.mark.parametrize("name", ["relu", "gelu", "silu", "linear"])
def test_get_falls_back_to_keras(name):
    assert ka.get(name) is getattr(keras.activations, name)


def test_get_none_is_linear():
    assert ka.get(None) is keras.activations.linear


def test_get_unknown_name_lists_our_names():
    with pytest.raises(ValueError) as info:
        ka.get("no_such")
    message = str(info.value)
    assert "no_such" in message
    for name in OUR_ACTIVATIONS:
        assert name in message


@pytest.mark.parametrize("name", OUR_ACTIVATIONS)
def test_keras_serializes_our_functions_under_the_package_name(name):
    function = getattr(ka, name)
    serialized = keras.activations.serialize(function)
    assert f"keras_initkit>{name}" in str(serialized)
    assert keras.activations.deserialize(serialized) is function
    layer = keras.layers.Dense(2, activation=function)
    restored = keras.layers.Dense.from_config(layer.get_config())
    assert restored.activation is function


def test_package_exposes_activations_and_layers():
    assert keras_initkit.activations is ka
    assert keras_initkit.layers is kl
