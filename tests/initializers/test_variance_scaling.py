"""Every initializer x kernel rank x dtype: dtype, shape, variance, bounds and seeds.

Statistical tolerance: each draw has n = 250 000 values. The relative standard error of
a sample std is about sqrt((kurtosis - 1) / 4n) <= 1/sqrt(2n) = 0.0014 for the normal
(less for truncated and uniform draws), so a 1% tolerance on the std is > 7 standard
errors: the test fails only if the formula is wrong.
"""

import math

import keras
import numpy as np
import pytest

from keras_initkit import initializers as ki

# One kernel of each rank with 250 000 entries: Dense, Conv1D, Conv2D, Conv3D layouts.
SHAPES = [(500, 500), (10, 100, 250), (5, 5, 100, 100), (2, 5, 5, 50, 100)]
DTYPES = ["float16", "bfloat16", "float32", "float64"]
TRUNCATED_STD = 0.87962566103423978


def keras_fans(shape):
    """Keras's shape convention, written out independently of the package."""
    if len(shape) == 2:
        return shape[0], shape[1]
    rf = math.prod(shape[:-2])
    return shape[-2] * rf, shape[-1] * rf


# name -> (factory, expected variance as a function of (fan_in, fan_out), distribution)
CASES = {
    "lecun_normal": (ki.LecunNormal, lambda i, o: 1 / i, "truncated_normal"),
    "lecun_uniform": (ki.LecunUniform, lambda i, o: 1 / i, "uniform"),
    "glorot_normal": (ki.GlorotNormal, lambda i, o: 2 / (i + o), "truncated_normal"),
    "glorot_uniform": (ki.GlorotUniform, lambda i, o: 2 / (i + o), "uniform"),
    "he_normal": (ki.HeNormal, lambda i, o: 2 / i, "truncated_normal"),
    "he_uniform": (ki.HeUniform, lambda i, o: 2 / i, "uniform"),
    "he_leaky_0.2": (
        lambda seed: ki.HeNormal(nonlinearity="leaky_relu", param=0.2, seed=seed),
        lambda i, o: 2 / (1.04 * i),
        "truncated_normal",
    ),
    "xavier_tanh_torch_gain": (
        lambda seed: ki.XavierNormal(gain=5 / 3, seed=seed),
        lambda i, o: (5 / 3) ** 2 * 2 / (i + o),
        "truncated_normal",
    ),
    "vs_untruncated_fan_out": (
        lambda seed: ki.VarianceScaling(
            scale=3.0, mode="fan_out", distribution="untruncated_normal", seed=seed
        ),
        lambda i, o: 3 / o,
        "untruncated_normal",
    ),
    "vs_fan_geo_avg_uniform": (
        lambda seed: ki.VarianceScaling(mode="fan_geo_avg", distribution="uniform", seed=seed),
        lambda i, o: 1 / math.sqrt(i * o),
        "uniform",
    ),
    "lecun_maxout_3": (
        lambda seed: ki.LecunNormal(nonlinearity="maxout", param=3, seed=seed),
        lambda i, o: 0.78391 / i,
        "truncated_normal",
    ),
    "fixup_he_16_3": (
        lambda seed: ki.Fixup(ki.HeNormal(seed=seed), num_branches=16, branch_depth=3),
        lambda i, o: 2 / i * 0.25,
        "truncated_normal",
    ),
}


def draw(factory, shape, dtype, seed=7):
    values = factory(seed=seed)(shape, dtype=dtype)
    return values, keras.ops.convert_to_numpy(keras.ops.cast(values, "float64"))


def expected_dtype(dtype):
    if (
        dtype == "float64"
        and keras.backend.backend() == "jax"
        and not __import__("jax").config.jax_enable_x64
    ):
        return "float32"  # JAX without x64 has no float64 arrays
    return dtype


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"rank{len(s)}")
@pytest.mark.parametrize("name", sorted(CASES))
def test_variance_matches_formula(name, shape):
    factory, variance, _ = CASES[name]
    _, values = draw(factory, shape, "float32")
    fan_in, fan_out = keras_fans(shape)
    expected_std = math.sqrt(variance(fan_in, fan_out))
    assert values.shape == shape
    assert abs(values.mean()) < 0.01 * expected_std
    assert values.std() == pytest.approx(expected_std, rel=0.01)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_float_dtype(name, dtype):
    factory, variance, _ = CASES[name]
    tensor, values = draw(factory, (250, 1000), dtype)
    assert keras.backend.standardize_dtype(tensor.dtype) == expected_dtype(dtype)
    # float16/bfloat16 keep 10/7 mantissa bits: rounding moves the std by < 0.3%.
    assert values.std() == pytest.approx(math.sqrt(variance(250, 1000)), rel=0.01)


@pytest.mark.parametrize("name", [n for n in sorted(CASES) if CASES[n][2] == "uniform"])
def test_uniform_bounds_are_exact(name):
    factory, variance, _ = CASES[name]
    _, values = draw(factory, (500, 500), "float32")
    limit = math.sqrt(3 * variance(500, 500))
    assert np.abs(values).max() <= limit * (1 + 1e-6)
    # 250k draws: the largest |w| is within 0.01% of the limit with certainty.
    assert np.abs(values).max() >= limit * 0.999


@pytest.mark.parametrize(
    "name", [n for n in sorted(CASES) if CASES[n][2] == "truncated_normal"]
)
def test_truncated_at_two_sigma(name):
    factory, variance, _ = CASES[name]
    _, values = draw(factory, (500, 500), "float32")
    # The cut is at 2 standard deviations of the *underlying* normal, whose std is the
    # target std / 0.8796.
    bound = 2 * math.sqrt(variance(500, 500)) / TRUNCATED_STD
    assert np.abs(values).max() <= bound * (1 + 1e-6)
    assert np.abs(values).max() >= bound * 0.99


def test_untruncated_normal_has_tails():
    init = ki.VarianceScaling(distribution="untruncated_normal", seed=1)
    values = keras.ops.convert_to_numpy(init((500, 500)))
    std = math.sqrt(1 / 500)
    # 4.6% of a normal lies beyond 2 sigma: 11 500 of 250 000 values.
    assert 0.04 < np.mean(np.abs(values) > 2 * std) < 0.052


def test_normal_means_truncated_normal_as_in_keras():
    ours = ki.VarianceScaling(distribution="normal")
    assert ours.distribution == "truncated_normal"
    assert keras.initializers.VarianceScaling(distribution="normal").distribution == (
        "truncated_normal"
    )


def test_acceptance_he_normal_1000x1000():
    values = keras.ops.convert_to_numpy(ki.HeNormal(seed=0)((1000, 1000)))
    assert values.std() == pytest.approx(math.sqrt(2 / 1000), rel=0.01)
    leaky = ki.HeNormal(nonlinearity="leaky_relu", param=0.2, seed=0)
    values = keras.ops.convert_to_numpy(leaky((1000, 1000)))
    assert values.var() == pytest.approx(2 / (1.04 * 1000), rel=0.01)


def test_matches_keras_for_same_seed_and_shape():
    """Drop-in: same scale, mode, distribution and int seed give Keras's own values."""
    for ours, theirs in [
        (ki.GlorotUniform(seed=5), keras.initializers.GlorotUniform(seed=5)),
        (ki.HeUniform(seed=5), keras.initializers.HeUniform(seed=5)),
        (ki.LecunNormal(seed=5), keras.initializers.LecunNormal(seed=5)),
    ]:
        a = keras.ops.convert_to_numpy(ours((64, 32)))
        b = keras.ops.convert_to_numpy(theirs((64, 32)))
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_explicit_fans_override_the_shape():
    init = ki.HeNormal(fans=(9, 9), seed=0)
    assert init.stddev((3, 3, 32, 1)) == pytest.approx(math.sqrt(2 / 9))
    assert ki.HeNormal().stddev((3, 3, 32, 1)) == pytest.approx(math.sqrt(2 / 288))


def test_for_layer_uses_layer_aware_fans():
    layer = keras.layers.DepthwiseConv2D(3)
    layer.build((None, 8, 8, 32))
    init = ki.HeNormal(seed=3).for_layer(layer)
    assert tuple(init.fans) == (9, 9)
    values = keras.ops.convert_to_numpy(init((3, 3, 32, 1)))
    assert values.std() == pytest.approx(math.sqrt(2 / 9), rel=0.1)  # only 288 values
    assert init.get_config()["fans"] == [9, 9]


# --- seeds: Keras's contract ------------------------------------------------------------------


def values_of(init, shape=(40, 30)):
    return keras.ops.convert_to_numpy(init(shape))


@pytest.mark.parametrize("cls", [ki.HeNormal, ki.GlorotUniform, ki.Orthogonal])
def test_int_seed_repeats(cls):
    a, b = cls(seed=42), cls(seed=42)
    np.testing.assert_array_equal(values_of(a), values_of(a))
    np.testing.assert_array_equal(values_of(a), values_of(b))
    assert not np.array_equal(values_of(a), values_of(cls(seed=43)))


@pytest.mark.parametrize("cls", [ki.HeNormal, ki.GlorotUniform, ki.Orthogonal])
def test_seed_generator_advances(cls):
    init = cls(seed=keras.random.SeedGenerator(42))
    assert not np.array_equal(values_of(init), values_of(init))


@pytest.mark.parametrize("cls", [ki.HeNormal, ki.GlorotUniform, ki.Orthogonal])
def test_unseeded_instances_differ_but_each_repeats(cls):
    a, b = cls(), cls()
    assert not np.array_equal(values_of(a), values_of(b))
    np.testing.assert_array_equal(values_of(a), values_of(a))  # as in Keras


@pytest.mark.parametrize("cls", [ki.HeNormal, ki.GlorotUniform, ki.Orthogonal])
def test_unseeded_follows_set_random_seed(cls):
    keras.utils.set_random_seed(123)
    first = values_of(cls())
    keras.utils.set_random_seed(123)
    np.testing.assert_array_equal(first, values_of(cls()))


def test_config_keeps_the_seed_as_passed():
    assert ki.HeNormal().get_config()["seed"] is None
    assert ki.HeNormal(seed=3).get_config()["seed"] == 3
    generator_config = ki.HeNormal(seed=keras.random.SeedGenerator(3)).get_config()["seed"]
    assert generator_config["class_name"] == "SeedGenerator"
    # A clone of an unseeded initializer draws new values; a seeded one repeats.
    unseeded = ki.HeNormal()
    assert not np.array_equal(values_of(unseeded), values_of(unseeded.clone()))
    seeded = ki.HeNormal(seed=9)
    np.testing.assert_array_equal(values_of(seeded), values_of(seeded.clone()))
