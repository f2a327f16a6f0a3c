"""The bad-input catalogue: every public entry point, given a wrong argument, raises early
a `ValueError` whose message names the argument (and, for the CLI, exits 2 with one line
naming the option). One table; each row is (id, call, argument named in the message).

Classes of failure it pins down (issue 14): overflow (`10**400`, `1e308`), silent garbage
(NaN weights, gain 0), wrong types reaching Python internals, Keras's nameless "Could not
interpret ... identifier", the misleading "not built", late and partial `reinitialize`,
malformed or newer `keras_initkit_version`, and CLI tracebacks. ActivationStats has its own
catalogue (tests/stats).
"""

import contextlib
import io
import math
import warnings

import keras
import numpy as np
import pytest

import keras_initkit
from keras_initkit import activations as ka
from keras_initkit import initializers as ki
from keras_initkit import layers as kl
from keras_initkit.cli import main

HUGE_INT = 10**400
NAN, INF = float("nan"), float("inf")

CASES = []  # (id, call, argument)


def case(case_id, call, argument):
    CASES.append(pytest.param(call, argument, id=case_id))


# --- Initializer constructors ------------------------------------------------------------
NAMED = {
    "GlorotNormal": ki.GlorotNormal,
    "GlorotUniform": ki.GlorotUniform,
    "HeNormal": ki.HeNormal,
    "HeUniform": ki.HeUniform,
    "LecunNormal": ki.LecunNormal,
    "LecunUniform": ki.LecunUniform,
}
BAD_POSITIVE = {
    "zero": 0, "negative": -1, "nan": NAN, "inf": INF, "string": "1", "none": None,
    "bool": True, "huge": 1e308, "list": [1.0], "huge_int": HUGE_INT,
}
for name, cls in NAMED.items():
    for label, value in BAD_POSITIVE.items():
        case(f"{name}-gain-{label}", lambda cls=cls, value=value: cls(gain=value), "gain")
    for label, value in {"typo": "tanhh", "int": 123, "layer": keras.layers.ReLU(),
                         "empty": ""}.items():
        case(f"{name}-nonlinearity-{label}",
             lambda cls=cls, value=value: cls(nonlinearity=value), "nonlinearity")
    for label, value in {"negative": -1, "string": "x", "nan": NAN, "inf": INF,
                         "bool": True, "huge_int": HUGE_INT}.items():
        case(f"{name}-param-{label}",
             lambda cls=cls, value=value: cls(nonlinearity="leaky_relu", param=value), "param")
    case(f"{name}-param-for-relu", lambda cls=cls: cls(nonlinearity="relu", param=0.1), "param")
    for label, value in {"string": "x", "float": 1.5, "list": [1]}.items():
        case(f"{name}-seed-{label}", lambda cls=cls, value=value: cls(seed=value), "seed")
    for label, value in {"string": "0", "float": 1.5, "float_list": [1.5]}.items():
        case(f"{name}-input_axes-{label}",
             lambda cls=cls, value=value: cls(input_axes=value), "input_axes")
    for label, value in {"zero": (0, 3), "string": "ab", "short": (1,), "nan": (1, NAN),
                         "int": 5, "huge": (1, HUGE_INT)}.items():
        case(f"{name}-fans-{label}", lambda cls=cls, value=value: cls(fans=value), "fans")
    if name.startswith(("He", "Lecun")):
        for label, value in {"typo": "fanin", "int": 1, "none": None}.items():
            case(f"{name}-mode-{label}", lambda cls=cls, value=value: cls(mode=value), "mode")
    # Keras's positional order: the first positional is the seed, so a string is a bad seed.
    case(f"{name}-positional-seed-string", lambda cls=cls: cls("relu"), "seed")

for label, value in BAD_POSITIVE.items():
    case(f"VarianceScaling-scale-{label}",
         lambda value=value: ki.VarianceScaling(scale=value), "scale")
for label, value in {"typo": "fanin", "int": 1, "none": None}.items():
    case(f"VarianceScaling-mode-{label}", lambda value=value: ki.VarianceScaling(mode=value),
         "mode")
for label, value in {"typo": "gaussian", "int": 1, "none": None}.items():
    case(f"VarianceScaling-distribution-{label}",
         lambda value=value: ki.VarianceScaling(distribution=value), "distribution")
case("VarianceScaling-scale-and-gain-overflow",
     lambda: ki.VarianceScaling(scale=1e300, gain=1e10), "scale")
for label, value in BAD_POSITIVE.items():
    if label == "huge":  # finite in float64: refused when called for float32 weights
        case("Orthogonal-gain-huge-call", lambda: ki.Orthogonal(gain=1e308)((4, 4)), "gain")
        case("VarianceScaling-scale-huge-call",
             lambda: ki.VarianceScaling(scale=1e300)((4, 4)), "scale")
        continue
    case(f"Orthogonal-gain-{label}", lambda value=value: ki.Orthogonal(gain=value), "gain")
case("Orthogonal-nonlinearity-typo", lambda: ki.Orthogonal(nonlinearity="rellu"), "nonlinearity")
case("Orthogonal-nonlinearity-int", lambda: ki.Orthogonal(nonlinearity=3), "nonlinearity")
case("Orthogonal-seed-string", lambda: ki.Orthogonal(1.0, "x"), "seed")
for label, value in {"zero": 0, "float": 2.5, "bool": True, "huge": HUGE_INT, "string": "3",
                     "too_many": 2**31 + 1}.items():
    case(f"Fixup-num_branches-{label}",
         lambda value=value: ki.Fixup(num_branches=value), "num_branches")
for label, value in {"one": 1, "huge": HUGE_INT, "string": "x"}.items():
    case(f"Fixup-branch_depth-{label}",
         lambda value=value: ki.Fixup(branch_depth=value), "branch_depth")
for label, value in {"int": 123, "typo": "he_normall", "none": None,
                     "bad_dict": {"class_name": "NoSuch", "config": {}}}.items():
    case(f"Fixup-base-{label}", lambda value=value: ki.Fixup(base=value), "base")

# --- Initializer calls ---------------------------------------------------------------------
CALLABLE = {
    "HeNormal": lambda: ki.HeNormal(seed=0),
    "VarianceScaling_uniform": lambda: ki.VarianceScaling(distribution="uniform", seed=0),
    "Orthogonal": lambda: ki.Orthogonal(seed=0),
    "ResidualZeros": lambda: ki.ResidualZeros(),
    "Fixup": lambda: ki.Fixup(),
}
for name, make in CALLABLE.items():
    for label, shape in {"negative": (-1, 4), "string": "ab", "float": (2.5, 3),
                         "none": None, "int": 5, "none_dim": (None, 3)}.items():
        case(f"{name}-call-shape-{label}", lambda make=make, shape=shape: make()(shape), "shape")
    for label, dtype in {"int": "int32", "unknown": "foo", "bool": "bool"}.items():
        case(f"{name}-call-dtype-{label}",
             lambda make=make, dtype=dtype: make()((4, 4), dtype=dtype), "dtype")
case("Orthogonal-call-rank-1", lambda: ki.Orthogonal()((5,)), "shape")
case("HeNormal-call-float16-overflow",
     lambda: ki.HeNormal(gain=1e5)((4, 4), dtype="float16"), "gain")
case("Orthogonal-call-float16-overflow",
     lambda: ki.Orthogonal(gain=1e6)((4, 4), dtype="float16"), "gain")

# --- calculate_gain, get, deserialize, configs --------------------------------------------
GAIN_CASES = {
    "maxout-huge": (("maxout", HUGE_INT), {}, "param"),
    "maxout-beyond-2**63": (("maxout", 2**63 + 1), {}, "param"),
    "maxout-one": (("maxout", 1), {}, "param"),
    "maxout-float": (("maxout", 2.5), {}, "param"),
    "leaky-negative": (("leaky_relu", -1), {}, "param"),
    "leaky-string": (("leaky_relu", "x"), {}, "param"),
    "leaky-nan": (("leaky_relu", NAN), {}, "param"),
    "elu-huge-alpha": (("elu", 1e200), {}, "param"),
    "unknown": (("tanhh",), {}, "nonlinearity"),
    "int": ((123,), {}, "nonlinearity"),
    "relu-with-param": (("relu", 0.1), {}, "param"),
    "snake-zero": (("snake", 0), {}, "param"),
    "snake-huge": (("snake", 1e308), {}, "param"),
    "silu-huge-beta": (("silu", 1e308), {}, "param"),
    "policy-typo": (("relu",), {"policy": "pytorch"}, "policy"),
    "policy-int": (("relu",), {"policy": 1}, "policy"),
    "torch-undefined": (("gelu",), {"policy": "torch"}, "policy"),
}
for label, (args, kwargs, argument) in GAIN_CASES.items():
    case(f"calculate_gain-{label}",
         lambda args=args, kwargs=kwargs: ki.calculate_gain(*args, **kwargs), argument)
case("initializer_for-unknown", lambda: ki.initializer_for("tanhh"), "nonlinearity")
case("get-typo", lambda: ki.get("typo"), "initializer")
case("get-int", lambda: ki.get(123), "initializer")
case("get-list", lambda: ki.get([1, "x"]), "initializer")
case("deserialize-string", lambda: ki.deserialize("he_normal"), "config")
case("deserialize-inner-not-dict",
     lambda: ki.deserialize({"class_name": "HeNormal", "config": "x"}), "config")
case("from_config-version-int",
     lambda: ki.HeNormal.from_config({"keras_initkit_version": 5}), "keras_initkit_version")
case("from_config-version-garbage",
     lambda: ki.HeNormal.from_config({"keras_initkit_version": "abc"}), "keras_initkit_version")
case("from_config-version-none-list",
     lambda: ki.Orthogonal.from_config({"keras_initkit_version": [0, 1]}),
     "keras_initkit_version")
case("from_config-not-dict", lambda: ki.HeNormal.from_config("x"), "config")

# --- Layers ----------------------------------------------------------------------------------
for label, value in {"zero": 0, "float": 2.5, "bool": True, "string": "3",
                     "huge": HUGE_INT}.items():
    case(f"Maxout-num_units-{label}", lambda value=value: kl.Maxout(value), "num_units")
for label, value in {"typo": "interleaved", "int": 1}.items():
    case(f"Maxout-grouping-{label}", lambda value=value: kl.Maxout(2, grouping=value), "grouping")
case("Maxout-axis-float", lambda: kl.Maxout(2, axis=1.5), "axis")
case("Maxout-axis-out-of-range", lambda: kl.Maxout(3, axis=2).build((None, 6)), "axis")
case("Maxout-not-divisible", lambda: kl.Maxout(4).build((None, 6)), "num_units")
for label, value in {"zero": 0, "string": "4", "huge": HUGE_INT}.items():
    case(f"MaxoutDense-units-{label}", lambda value=value: kl.MaxoutDense(value, 2), "units")
for label, value in {"one": 1, "float": 2.0, "huge": HUGE_INT, "billion_build": None}.items():
    if label == "billion_build":
        case("MaxoutDense-pieces-billion-build",
             lambda: kl.MaxoutDense(4, 10**9).build((None, 128)), "pieces")
    else:
        case(f"MaxoutDense-pieces-{label}", lambda value=value: kl.MaxoutDense(4, value), "pieces")
MAXOUT_DENSE_KWARGS = {
    "use_bias-string": ("use_bias", "no"),
    "kernel_initializer-typo": ("kernel_initializer", "he_normall"),
    "kernel_initializer-int": ("kernel_initializer", 123),
    "bias_initializer-typo": ("bias_initializer", "zeroes"),
    "kernel_regularizer-typo": ("kernel_regularizer", "l3"),
    "bias_regularizer-int": ("bias_regularizer", 5),
    "kernel_constraint-typo": ("kernel_constraint", "maxnorm"),
    "bias_constraint-int": ("bias_constraint", 7),
}
for label, (argument, value) in MAXOUT_DENSE_KWARGS.items():
    case(f"MaxoutDense-{label}",
         lambda argument=argument, value=value: kl.MaxoutDense(4, 2, **{argument: value}),
         argument)
for label, value in {"string": "yes", "int": 1, "none": None}.items():
    case(f"GELU-approximate-{label}", lambda value=value: kl.GELU(approximate=value),
         "approximate")
for label, value in {"zero": 0, "negative": -1, "inf": INF, "nan": NAN, "string": "1",
                     "huge": 1e308, "bool": True, "none": None}.items():
    case(f"Snake-frequency-{label}", lambda value=value: kl.Snake(frequency=value), "frequency")
    case(f"snake-function-frequency-{label}",
         lambda value=value: ka.snake(np.ones(3, "float32"), frequency=value), "frequency")
for label, value in {"nan": NAN, "inf": INF, "huge": 1e308, "string": "1", "none": None,
                     "huge_int": HUGE_INT}.items():
    case(f"Swish-beta-{label}", lambda value=value: kl.Swish(beta=value), "beta")
for cls in (kl.Snake, kl.Swish):
    case(f"{cls.__name__}-trainable-string", lambda cls=cls: cls(trainable="no"), "trainable")
    case(f"{cls.__name__}-per_channel-string", lambda cls=cls: cls(per_channel="x"),
         "per_channel")
    case(f"{cls.__name__}-per-channel-unknown-channels",
         lambda cls=cls: cls(trainable=True).build((None, None)), "per")
case("activations-get-typo", lambda: ka.get("snakee"), "activation")
case("activations-get-int", lambda: ka.get(3), "activation")


# --- Model operations ------------------------------------------------------------------------
def small_model():
    return keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, name="d1"), keras.layers.Dense(2, name="d2")]
    )


def no_weights_model():
    return keras.Sequential([keras.Input((4,)), keras.layers.ReLU()])


X = np.ones((8, 4), "float32")
REINIT = {
    "model-string": (lambda: keras_initkit.reinitialize("m"), "model"),
    "model-none": (lambda: keras_initkit.reinitialize(None), "model"),
    "model-no-weights": (lambda: keras_initkit.reinitialize(no_weights_model()), "weighted"),
    "scheme-int": (lambda: keras_initkit.reinitialize(small_model(), 123), "scheme"),
    "scheme-typo": (lambda: keras_initkit.reinitialize(small_model(), "bogus"), "scheme"),
    "scheme-none": (lambda: keras_initkit.reinitialize(small_model(), None), "scheme"),
    "scheme-dict-bad-value": (
        lambda: keras_initkit.reinitialize(small_model(), {"d1": "he_normal", "d2": "bogus"}),
        "scheme",
    ),
    "scheme-dict-none-value": (
        lambda: keras_initkit.reinitialize(small_model(), {"d1": None}), "scheme"),
    "scheme-dict-unknown-key": (
        lambda: keras_initkit.reinitialize(small_model(), {"nope": "he_normal"}), "scheme"),
    "scheme-dict-int-key": (
        lambda: keras_initkit.reinitialize(small_model(), {3: "he_normal"}), "scheme"),
    "scheme-serialized-dict": (
        lambda: keras_initkit.reinitialize(small_model(), ki.serialize(ki.HeNormal())),
        "scheme",
    ),
    "scheme-keras-serialized-dict": (
        lambda: keras_initkit.reinitialize(
            small_model(), keras.initializers.serialize(keras.initializers.HeNormal())),
        "scheme",
    ),
    "scheme-empty-dict": (lambda: keras_initkit.reinitialize(small_model(), {}), "scheme"),
    "seed-string": (lambda: keras_initkit.reinitialize(small_model(), seed="x"), "seed"),
    "seed-negative": (lambda: keras_initkit.reinitialize(small_model(), seed=-1), "seed"),
    "seed-float": (lambda: keras_initkit.reinitialize(small_model(), seed=1.5), "seed"),
    "seed-huge": (lambda: keras_initkit.reinitialize(small_model(), seed=2**40), "seed"),
    "seed-bool": (lambda: keras_initkit.reinitialize(small_model(), seed=True), "seed"),
    "bias-typo": (lambda: keras_initkit.reinitialize(small_model(), bias="zeroes"), "bias"),
    "bias-int": (lambda: keras_initkit.reinitialize(small_model(), bias=3), "bias"),
    "layers-unknown": (lambda: keras_initkit.reinitialize(small_model(), layers=["nope"]),
                       "layers"),
    "layers-int": (lambda: keras_initkit.reinitialize(small_model(), layers=[123]), "layers"),
    "layers-string-unknown": (lambda: keras_initkit.reinitialize(small_model(), layers="d9"),
                              "layers"),
}
for label, (call, argument) in REINIT.items():
    case(f"reinitialize-{label}", call, argument)

LSUV = {
    "model-string": (lambda: keras_initkit.lsuv("m", X), "model"),
    "model-no-weights": (lambda: keras_initkit.lsuv(no_weights_model(), X), "weighted"),
    "x-string": (lambda: keras_initkit.lsuv(small_model(), "x"), "x"),
    "x-none": (lambda: keras_initkit.lsuv(small_model(), None), "x"),
    "x-empty": (lambda: keras_initkit.lsuv(small_model(), np.ones((0, 4), "float32")), "x"),
    "x-nan": (lambda: keras_initkit.lsuv(small_model(), X * NAN), "x"),
    "x-huge": (lambda: keras_initkit.lsuv(small_model(), X * 1e38), "x"),
    "x-wrong-shape": (lambda: keras_initkit.lsuv(small_model(), np.ones((8, 5), "float32")),
                      "x"),
    "x-strings": (lambda: keras_initkit.lsuv(small_model(), np.array([["a"] * 4])), "x"),
}
for label, value in {"zero": 0, "negative": -1, "huge": 1e308, "string": "1", "nan": NAN,
                     "bool": True}.items():
    LSUV[f"target_std-{label}"] = (
        lambda value=value: keras_initkit.lsuv(small_model(), X, target_std=value), "target_std")
for label, value in {"zero": 0, "string": "x", "inf": INF}.items():
    LSUV[f"tol-{label}"] = (lambda value=value: keras_initkit.lsuv(small_model(), X, tol=value),
                            "tol")
for label, value in {"zero": 0, "float": 1.5, "bool": True, "huge": HUGE_INT}.items():
    LSUV[f"max_iter-{label}"] = (
        lambda value=value: keras_initkit.lsuv(small_model(), X, max_iter=value), "max_iter")
LSUV["orthogonal-string"] = (lambda: keras_initkit.lsuv(small_model(), X, orthogonal="no"),
                             "orthogonal")
LSUV["seed-string"] = (lambda: keras_initkit.lsuv(small_model(), X, seed="x"), "seed")
LSUV["seed-huge"] = (lambda: keras_initkit.lsuv(small_model(), X, seed=HUGE_INT), "seed")
for label, (call, argument) in LSUV.items():
    case(f"lsuv-{label}", call, argument)

PRETRAIN = {
    "model-string": (lambda: keras_initkit.pretrain("m", X), "model"),
    "method-typo": (lambda: keras_initkit.pretrain(small_model(), X, "rbn"), "method"),
    "x-nan": (lambda: keras_initkit.pretrain(small_model(), X * NAN), "x"),
    "x-wrong-shape": (lambda: keras_initkit.pretrain(small_model(), np.ones((8, 5), "float32")),
                      "x"),
    "batch_size-above-samples": (lambda: keras_initkit.pretrain(small_model(), X, batch_size=9),
                                 "batch_size"),
    "k-with-autoencoder": (lambda: keras_initkit.pretrain(small_model(), X, "autoencoder", k=2),
                           "k"),
    "visible-typo": (lambda: keras_initkit.pretrain(small_model(), X, visible="binary"),
                     "visible"),
    "layers-unknown": (lambda: keras_initkit.pretrain(small_model(), X, layers=["nope"]),
                       "layers"),
}
for label, value in {"zero": 0, "float": 1.5, "bool": True, "huge": HUGE_INT}.items():
    PRETRAIN[f"epochs-{label}"] = (
        lambda value=value: keras_initkit.pretrain(small_model(), X, epochs=value), "epochs")
    PRETRAIN[f"k-{label}"] = (
        lambda value=value: keras_initkit.pretrain(small_model(), X, k=value), "k")
for label, value in {"zero": 0, "negative": -1, "nan": NAN, "inf": INF, "string": "1"}.items():
    PRETRAIN[f"learning_rate-{label}"] = (
        lambda value=value: keras_initkit.pretrain(small_model(), X, learning_rate=value),
        "learning_rate")
for label, value in {"one": 1.0, "negative": -0.1, "nan": NAN}.items():
    PRETRAIN[f"momentum-{label}"] = (
        lambda value=value: keras_initkit.pretrain(small_model(), X, momentum=value), "momentum")
    PRETRAIN[f"noise-{label}"] = (
        lambda value=value: keras_initkit.pretrain(small_model(), X, "autoencoder", noise=value),
        "noise")
PRETRAIN["seed-huge"] = (lambda: keras_initkit.pretrain(small_model(), X, seed=HUGE_INT), "seed")
for label, (call, argument) in PRETRAIN.items():
    case(f"pretrain-{label}", call, argument)

INSPECT = {
    "model-string": (lambda: keras_initkit.inspect("m", X), "model"),
    "model-int": (lambda: keras_initkit.inspect(3, X), "model"),
    "x-string": (lambda: keras_initkit.inspect(small_model(), "x"), "x"),
    "x-none": (lambda: keras_initkit.inspect(small_model(), None), "x"),
    "x-empty": (lambda: keras_initkit.inspect(small_model(), np.ones((0, 4), "float32")), "x"),
}
for label, value in {"zero": 0, "above-one": 1.5, "string": "x", "nan": NAN,
                     "bool": True}.items():
    INSPECT[f"saturation-{label}"] = (
        lambda value=value: keras_initkit.inspect(small_model(), X, saturation=value),
        "saturation")
for label, (call, argument) in INSPECT.items():
    case(f"inspect-{label}", call, argument)

case("zero_init_residual-model-string", lambda: keras_initkit.zero_init_residual("m"), "model")
case("zero_init_residual-model-no-weights",
     lambda: keras_initkit.zero_init_residual(no_weights_model()), "weighted")
case("zero_init_residual-fixup-string",
     lambda: keras_initkit.zero_init_residual(small_model(), fixup="no"), "fixup")
case("zero_init_residual-sequential",
     lambda: keras_initkit.zero_init_residual(small_model()), "model")

# --- GradientStats ---------------------------------------------------------------------------
# (ActivationStats has its own catalogue in tests/stats/test_nan_and_arguments.py.)
GradientStats = keras_initkit.callbacks.GradientStats
for label, value in {"typo": "raise", "upper": "STOP", "none": None, "bool": True,
                     "int": 1}.items():
    case(f"GradientStats-on_nan-{label}", lambda value=value: GradientStats(on_nan=value),
         "on_nan must be one of 'warn', 'stop', 'ignore'")


@pytest.mark.parametrize("call, argument", CASES)
def test_bad_input_raises_a_value_error_naming_the_argument(call, argument):
    with pytest.raises(ValueError) as info:
        call()
    assert argument in str(info.value), str(info.value)
    assert len(str(info.value)) < 2000


# --- CLI -------------------------------------------------------------------------------------
CLI_CASES = {
    "study-seed-huge": (["study", "--seed", "99999999999999999999999"], "--seed"),
    "study-seed-negative": (["study", "--seed", "-1"], "--seed"),
    "study-seed-string": (["study", "--seed", "x"], "--seed"),
    "study-width-huge": (["study", "--width", "200000"], "--width"),
    "study-width-zero": (["study", "--width", "0"], "--width"),
    "study-width-float": (["study", "--width", "1.5"], "--width"),
    "study-depth-zero": (["study", "--depth", "0"], "--depth"),
    "study-depth-huge": (["study", "--depth", "100000"], "--depth"),
    "study-batch-zero": (["study", "--batch", "0"], "--batch"),
    "study-batch-huge": (["study", "--batch", "1000000000"], "--batch"),
    "study-activation-typo": (["study", "--activation", "tanhh"], "--activation"),
    "study-activation-empty": (["study", "--activation", ","], "--activation"),
    "study-init-typo": (["study", "--init", "he_normall"], "--init"),
    "study-json-proc": (["study", "--json", "/proc/x.json"], "--json"),
    "study-json-folder": (["study", "--json", "/tmp"], "--json"),
    "study-plot-missing-folder": (["study", "--plot", "/nonexistent/dir/x.png"], "--plot"),
    "study-plot-suffix": (["study", "--plot", "x.txt"], "--plot"),
    "study-backend-typo": (["study", "--backend", "theano"], "--backend"),
    "demo-epochs-zero": (["demo", "--epochs", "0"], "--epochs"),
    "demo-epochs-string": (["demo", "--epochs", "many"], "--epochs"),
    "demo-out-is-file": (["demo", "--out", "/etc/hostname"], "--out"),
    "demo-seed-huge": (["demo", "--seed", str(2**64)], "--seed"),
    "demo-width-huge": (["demo", "--width", "99999"], "--width"),
    "demo-activation-two": (["demo", "--activation", "tanh,relu"], "--activation"),
    "unknown-command": (["train"], "invalid choice: 'train'"),
}


@pytest.mark.parametrize("argv, option", list(CLI_CASES.values()), ids=list(CLI_CASES))
def test_cli_bad_input_is_one_line_and_exit_code_2(argv, option):
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code
    message = stderr.getvalue().strip()
    assert code == 2, message
    assert "\n" not in message and "Traceback" not in message, message
    assert option in message, message


def test_catalogue_size():
    assert len(CASES) + len(CLI_CASES) >= 300


# --- Behaviour behind some rows --------------------------------------------------------------
def test_reinitialize_changes_nothing_when_any_scheme_entry_is_bad():
    model = small_model()
    before = [np.array(keras.ops.convert_to_numpy(w)) for w in model.weights]
    with pytest.raises(ValueError, match="bogus"):
        keras_initkit.reinitialize(model, {"d1": "he_normal", "d2": "bogus"})
    after = [np.array(keras.ops.convert_to_numpy(w)) for w in model.weights]
    assert all(np.array_equal(b, a) for b, a in zip(before, after, strict=True))


def test_newer_config_version_loads_with_a_warning_and_drops_unknown_arguments():
    config = ki.HeNormal(seed=3).get_config()
    config["keras_initkit_version"] = "99.0.0"
    config["future_argument"] = 1
    with pytest.warns(UserWarning, match=r"99\.0\.0.*future_argument"):
        init = ki.HeNormal.from_config(config)
    assert init.seed == 3


def test_same_version_config_loads_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ki.HeNormal.from_config(ki.HeNormal(seed=3).get_config())


def test_gains_that_used_to_overflow_or_vanish_are_right():
    assert ki.calculate_gain("maxout", 2**63) == pytest.approx(0.1103, abs=1e-4)
    assert ki.calculate_gain("leaky_relu", 1e200) == pytest.approx(math.sqrt(2) * 1e-200)
    assert ki.Fixup(num_branches=2**31, branch_depth=2).factor > 0
