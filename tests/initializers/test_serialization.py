"""The serialization contract: configs, string ids, and .keras files in a fresh process."""

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
from keras_initkit import initializers as ki

INSTANCES = [
    ki.VarianceScaling(
        scale=0.5, mode="fan_geo_avg", distribution="uniform", seed=3, gain=1.5,
        nonlinearity="elu", param=0.5, fans=(10, 20),
    ),
    ki.VarianceScaling(input_axes=[0], output_axes=[1, 2]),
    ki.LecunNormal(nonlinearity="maxout", param=4),
    ki.LecunUniform(mode="fan_avg", seed=1),
    ki.GlorotNormal(gain=2.0),
    ki.GlorotUniform(nonlinearity="tanh", seed=keras.random.SeedGenerator(5)),
    ki.HeNormal(nonlinearity="leaky_relu", param=0.2, mode="fan_out"),
    ki.HeUniform(seed=7),
    ki.Orthogonal(gain=0.5, nonlinearity="relu", seed=2),
    ki.ResidualZeros(),
    ki.Fixup(ki.HeNormal(seed=1), num_branches=8, branch_depth=3),
]


def name_of(init):
    return type(init).__name__


@pytest.mark.parametrize("init", INSTANCES, ids=name_of)
def test_config_holds_every_constructor_argument(init):
    parameters = {
        name
        for name, p in inspect.signature(type(init).__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    config = init.get_config()
    assert next(iter(config)) == "keras_initkit_version"  # first: see _config.py
    assert config["keras_initkit_version"] == keras_initkit.__version__
    assert set(config) - {"keras_initkit_version"} == parameters


@pytest.mark.parametrize("init", INSTANCES, ids=name_of)
def test_from_config_round_trip(init):
    config = init.get_config()
    clone = type(init).from_config(config)
    assert clone.get_config() == config
    json.dumps(config)  # plain JSON, as .keras files store it
    shape = (6, 5)
    if "seed" in config and isinstance(config["seed"], int) or isinstance(init, ki.ResidualZeros):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(init(shape)), keras.ops.convert_to_numpy(clone(shape))
        )


@pytest.mark.parametrize("init", INSTANCES, ids=name_of)
def test_keras_serialize_round_trip(init):
    config = keras.initializers.serialize(init)
    assert config["registered_name"] == f"keras_initkit>{type(init).__name__}"
    restored = keras.initializers.deserialize(config)
    assert type(restored) is type(init)
    assert restored.get_config() == init.get_config()


@pytest.mark.parametrize(
    "identifier, cls",
    [
        ("he_normal", ki.HeNormal),
        ("kaiming_uniform", ki.HeUniform),
        ("xavier_normal", ki.GlorotNormal),
        ("glorot_uniform", ki.GlorotUniform),
        ("lecun_normal", ki.LecunNormal),
        ("orthogonal", ki.Orthogonal),
        ("residual_zeros", ki.ResidualZeros),
        ("fixup", ki.Fixup),
        ("keras_initkit>HeNormal", ki.HeNormal),
        ("KaimingNormal", ki.HeNormal),
    ],
)
def test_get_resolves_our_ids(identifier, cls):
    assert type(ki.get(identifier)) is cls


def test_get_falls_back_to_keras_and_explains_unknown_names():
    assert isinstance(ki.get("random_normal"), keras.initializers.RandomNormal)
    with pytest.raises(ValueError, match="initializer must be one of .*he_normal.*got 'hee'"):
        ki.get("hee")


@pytest.mark.parametrize(
    "identifier, cls",
    [
        ("keras_initkit>HeNormal", ki.HeNormal),
        ("keras_initkit>XavierUniform", ki.GlorotUniform),
        ("keras_initkit>KaimingNormal", ki.HeNormal),
        ("keras_initkit>Orthogonal", ki.Orthogonal),
    ],
)
def test_keras_layers_accept_registered_strings(identifier, cls):
    layer = keras.layers.Dense(3, kernel_initializer=identifier)
    assert type(layer.kernel_initializer) is cls


def test_einsum_dense_gives_our_initializer_its_axes():
    layer = keras.layers.EinsumDense(
        "abc,cde->abde", output_shape=(None, 4, 8),
        kernel_initializer=ki.HeNormal(nonlinearity="leaky_relu", param=0.2, seed=0),
    )
    layer.build((None, 5, 64))
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    assert kernel.shape == (64, 4, 8)
    # fan_in is 64 (the contracted axis), not 4 * 64 as a conv kernel would have it.
    assert kernel.std() == pytest.approx(np.sqrt(2 / 1.04 / 64), rel=0.1)


MODEL_CODE = """
import keras, numpy as np
import keras_initkit
from keras_initkit import initializers as ki

inputs = keras.Input((12,))
h = keras.layers.Dense(16, activation="relu", kernel_initializer=ki.HeNormal(seed=1))(inputs)
h = keras.layers.Dense(16, activation="tanh", kernel_initializer=ki.GlorotUniform(
    nonlinearity="tanh", seed=2))(h)
h = keras.layers.Dense(16, activation="selu", kernel_initializer=ki.LecunNormal(seed=3))(h)
h = keras.layers.Dense(16, kernel_initializer=ki.Orthogonal(nonlinearity="relu", seed=4))(h)
b = keras.layers.Dense(16, kernel_initializer=ki.Fixup("he_normal", 4, 2))(h)
b = keras.layers.Dense(16, kernel_initializer=ki.ResidualZeros())(b)
h = keras.layers.Add()([h, b])
h = keras.layers.Conv1D(4, 3, kernel_initializer="keras_initkit>XavierNormal")(
    keras.layers.Reshape((4, 4))(h))
outputs = keras.layers.Dense(3, kernel_initializer=ki.VarianceScaling(
    mode="fan_geo_avg", distribution="untruncated_normal", nonlinearity="leaky_relu",
    param=0.1, seed=5))(keras.layers.Flatten()(h))
model = keras.Model(inputs, outputs)
"""


def run_python(code, cwd):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=300,
    )


def test_saved_model_loads_in_a_fresh_process_with_safe_mode(tmp_path):
    x = np.random.default_rng(0).standard_normal((8, 12)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    save = MODEL_CODE + """
model.save("model.keras")
np.save("expected.npy", keras.ops.convert_to_numpy(model(np.load("x.npy"))))
"""
    result = run_python(save, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    load = """
import keras, numpy as np
import keras_initkit
model = keras.saving.load_model("model.keras", safe_mode=True)
np.testing.assert_allclose(
    keras.ops.convert_to_numpy(model(np.load("x.npy"))), np.load("expected.npy"), atol=1e-5)
names = sorted({type(l.kernel_initializer).__module__.split(".")[0]
                for l in model.layers if hasattr(l, "kernel_initializer")})
print("initializer packages:", names)
"""
    result = run_python(load, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "initializer packages: ['keras_initkit']" in result.stdout

    # Without the import, Keras falls back to its own class of the same name, which
    # rejects our config at its first key: the last line of the error names the package.
    without_import = 'import keras\nkeras.saving.load_model("model.keras", safe_mode=True)\n'
    result = run_python(without_import, tmp_path)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "unexpected keyword argument 'keras_initkit_version'" in last_line


@pytest.mark.parametrize(
    "init", [i for i in INSTANCES if hasattr(keras.initializers, type(i).__name__)], ids=name_of
)
def test_keras_namesake_never_silently_accepts_our_config(init):
    """Loading without `import keras_initkit` fails loudly instead of building Keras's class."""
    namesake = getattr(keras.initializers, type(init).__name__)
    with pytest.raises(TypeError, match="unexpected keyword argument 'keras_initkit_version'"):
        namesake(**init.get_config())
