"""Keras 3's own `random_initializers_test.py`, run on keras_initkit's classes.

The calls and seeds are Keras's (keras/src/initializers/random_initializers_test.py);
`initializers` below is keras_initkit's module. Keras's RandomNormal/RandomUniform have no
keras_initkit counterpart: their seed-contract checks run here on `HeNormal`. Where Keras
asserts its own error wording, we assert the same exception type (our words say more).
After the port: draws equal to Keras's for the same seed, every class and dtype.
"""

import keras
import numpy as np
import pytest
from keras.src import backend, testing  # tests may read keras.src; the package never does

from keras_initkit import initializers
from keras_initkit.initializers import compute_fans

random = keras.random
utils = keras.utils


class RandomInitializersTest(testing.TestCase):
    def test_seed_contract(self):  # Keras's test_random_normal, on HeNormal
        utils.set_random_seed(1337)
        shape = (25, 20)
        seed = 1234
        initializer = initializers.HeNormal(seed=seed)
        values = initializer(shape=shape)
        self.assertEqual(initializer.seed, seed)
        self.assertEqual(values.shape, shape)
        self.assertAllClose(
            np.std(backend.convert_to_numpy(values)), np.sqrt(2 / 25), atol=1e-1
        )
        self.run_class_serialization_test(initializer)

        initializer = initializers.HeNormal(seed=1337)
        values = initializer(shape=shape)
        next_values = initializer(shape=shape)
        self.assertAllClose(values, next_values)

        initializer = initializers.HeNormal(seed=backend.random.SeedGenerator(1337))
        values = initializer(shape=shape)
        next_values = initializer(shape=shape)
        self.assertNotAllClose(values, next_values)

        initializer = initializers.HeNormal(seed=None)
        values = initializer(shape=shape)
        cloned_initializer = initializers.HeNormal.from_config(initializer.get_config())
        new_values = cloned_initializer(shape=shape)
        self.assertNotAllClose(values, new_values)

        initializer = initializers.HeNormal(seed=1337)
        values = initializer(shape=shape)
        cloned_initializer = initializers.HeNormal.from_config(initializer.get_config())
        new_values = cloned_initializer(shape=shape)
        self.assertAllClose(values, new_values)

    def test_variance_scaling(self):
        utils.set_random_seed(1337)
        shape = (25, 20)
        scale = 2.0
        seed = 1234
        initializer = initializers.VarianceScaling(scale=scale, seed=seed, mode="fan_in")
        values = initializer(shape=shape)
        self.assertEqual(initializer.scale, scale)
        self.assertEqual(initializer.seed, seed)
        self.assertEqual(values.shape, shape)
        self.assertAllClose(
            np.std(backend.convert_to_numpy(values)), np.sqrt(scale / 25), atol=1e-1
        )
        self.run_class_serialization_test(initializer)

        initializer = initializers.VarianceScaling(scale=scale, seed=seed, mode="fan_out")
        values = initializer(shape=shape)
        self.assertEqual(initializer.scale, scale)
        self.assertEqual(initializer.seed, seed)
        self.assertEqual(values.shape, shape)
        self.assertAllClose(
            np.std(backend.convert_to_numpy(values)), np.sqrt(scale / 20), atol=1e-1
        )
        self.run_class_serialization_test(initializer)

    def test_orthogonal(self):
        shape = (5, 5)
        gain = 2.0
        seed = 1234
        initializer = initializers.Orthogonal(gain=gain, seed=seed)
        values = initializer(shape=shape)
        self.assertEqual(initializer.seed, seed)
        self.assertEqual(initializer.gain, gain)

        self.assertEqual(values.shape, shape)
        array = backend.convert_to_numpy(values)
        for column in array.T:
            self.assertAlmostEqual(np.linalg.norm(column), gain * 1.0)
        for i in range(array.shape[-1]):
            for j in range(i + 1, array.shape[-1]):
                self.assertAlmostEqual(np.dot(array[..., i], array[..., j]), 0.0)

        self.run_class_serialization_test(initializer)

        # Test compatible class_name
        initializer = initializers.get("OrthogonalInitializer")
        self.assertIsInstance(initializer, initializers.Orthogonal)

    def test_get_method(self):
        obj = initializers.get("glorot_normal")
        self.assertTrue(obj, initializers.GlorotNormal)

        obj = initializers.get(None)
        self.assertEqual(obj, None)

        with self.assertRaises(ValueError):
            initializers.get("typo")

    def test_get_method_with_tensor(self):
        shape = (5, 5)

        tensor = random.uniform(shape=shape)
        initializer = initializers.get(tensor)
        values = initializer(shape=shape)
        self.assertAllClose(values, tensor)

        tensor = np.random.uniform(size=shape).astype("float32")
        initializer = initializers.get(tensor)
        values = initializer(shape=shape)
        self.assertAllClose(values, tensor)

        with self.assertRaisesRegex(ValueError, r"Expected `shape` to be"):
            initializer(shape=(10, 10))

    def test_variance_scaling_invalid_scale(self):
        seed = 1234
        with self.assertRaisesRegex(ValueError, "scale must be a positive number"):
            initializers.VarianceScaling(scale=-1.0, seed=seed, mode="fan_in")

    def test_variance_scaling_invalid_mode(self):
        scale = 2.0
        seed = 1234
        with self.assertRaisesRegex(ValueError, "mode must be one of"):
            initializers.VarianceScaling(scale=scale, seed=seed, mode="invalid_mode")

    def test_variance_scaling_invalid_distribution(self):
        scale = 2.0
        seed = 1234
        with self.assertRaisesRegex(ValueError, "distribution must be one of"):
            initializers.VarianceScaling(
                scale=scale, seed=seed, mode="fan_in", distribution="invalid_dist"
            )

    def test_serialization_with_seed_generator(self):
        seed = random.SeedGenerator()
        initializer = initializers.Orthogonal(seed=seed)
        self.run_class_serialization_test(initializer)

        seed = random.SeedGenerator()
        initializer = initializers.VarianceScaling(seed=seed)
        self.run_class_serialization_test(initializer)

    def test_compute_fans_with_axes(self):
        shape = (512, 8, 64)
        fan_in, fan_out = compute_fans(shape, input_axes=[0], output_axes=[1, 2])
        self.assertEqual(fan_in, 512)
        self.assertEqual(fan_out, 512)
        fan_in, fan_out = compute_fans(shape, input_axes=[0, 1], output_axes=[2])
        self.assertEqual(fan_in, 512 * 8)
        self.assertEqual(fan_out, 64)

    def test_variance_scaling_with_axes(self):
        utils.set_random_seed(1337)
        shape = (32, 4, 16)
        scale = 2.0
        seed = 1234
        initializer = initializers.VarianceScaling(
            scale=scale, seed=seed, mode="fan_in", input_axes=[0], output_axes=[1, 2]
        )
        values = initializer(shape=shape)
        self.assertEqual(values.shape, shape)
        self.assertAllClose(
            np.std(backend.convert_to_numpy(values)), np.sqrt(scale / 32), atol=1e-1
        )
        initializer = initializers.VarianceScaling(scale=scale, seed=seed, mode="fan_in")
        values = initializer(shape=shape)
        self.assertAllClose(
            np.std(backend.convert_to_numpy(values)), np.sqrt(scale / 128), atol=1e-1
        )

    def test_mha_query_projection_variance(self):
        utils.set_random_seed(1337)
        num_heads, key_dim, dim = 8, 16, 32
        mha = keras.layers.MultiHeadAttention(
            num_heads=num_heads,
            key_dim=key_dim,
            kernel_initializer=initializers.get("lecun_normal"),
        )
        mha.build((None, 10, dim), (None, 10, dim))
        kernel = mha.query_dense.kernel
        self.assertEqual(kernel.shape, (dim, num_heads, key_dim))
        expected_std = np.sqrt(1.0 / dim)
        actual_std = np.std(backend.convert_to_numpy(kernel))
        self.assertAllClose(actual_std, expected_std, atol=1e-1)

    def test_variance_scaling_serialization_with_axes(self):
        initializer = initializers.VarianceScaling(input_axes=[0], output_axes=[1, 2])
        self.run_class_serialization_test(initializer)


# --- Beyond the port: the same draws as Keras, and Keras's positional calls. ---

NAMED = ["GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "LecunNormal", "LecunUniform"]
DTYPES = ["float16", "bfloat16", "float32", "float64"]


def _numpy(values):
    return np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(values, "float64")))


def _mismatch(ours, theirs, dtype):
    """Fraction of entries that differ by more than one unit of `dtype`'s rounding."""
    eps = {"float16": 1e-3, "bfloat16": 8e-3, "float32": 1e-7, "float64": 1e-15}[dtype]
    close = np.abs(ours - theirs) <= eps * np.maximum(1.0, np.abs(theirs)) * 2
    return 1.0 - close.mean()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMED)
def test_named_draws_equal_keras(name, dtype):
    shape = (64, 48)
    for seed in (0, 1337):
        ours = _numpy(getattr(initializers, name)(seed)(shape, dtype=dtype))
        theirs = _numpy(getattr(keras.initializers, name)(seed)(shape, dtype=dtype))
        if dtype == "float32":
            np.testing.assert_array_equal(ours, theirs)
        else:
            assert _mismatch(ours, theirs, dtype) == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("distribution", ["truncated_normal", "untruncated_normal", "uniform"])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
def test_variance_scaling_draws_equal_keras(mode, distribution, dtype):
    args = (0.7, mode, distribution, 42)  # Keras's positional order
    ours = _numpy(initializers.VarianceScaling(*args)((30, 20, 3), dtype=dtype))
    theirs = _numpy(keras.initializers.VarianceScaling(*args)((30, 20, 3), dtype=dtype))
    assert _mismatch(ours, theirs, dtype) == 0.0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_orthogonal_draws_equal_keras(dtype):
    for shape in ((7, 5), (5, 7), (3, 3, 4, 6)):
        ours = _numpy(initializers.Orthogonal(1.5, 1337)(shape, dtype=dtype))
        theirs = _numpy(keras.initializers.Orthogonal(1.5, 1337)(shape, dtype=dtype))
        np.testing.assert_allclose(ours, theirs, atol=1e-5 if dtype == "float32" else 1e-12)


def test_positional_arguments_mean_what_they_mean_in_keras():
    for name in NAMED:
        init = getattr(initializers, name)(1337, [0], [1])
        assert (init.seed, init.input_axes, init.output_axes) == (1337, [0], [1])
    orthogonal = initializers.Orthogonal(2.0, 1337)
    assert (orthogonal.gain, orthogonal.seed) == (2.0, 1337)
    scaling = initializers.VarianceScaling(2.0, "fan_out", "uniform", 7)
    assert (scaling.scale, scaling.mode, scaling.distribution, scaling.seed) == (
        2.0, "fan_out", "uniform", 7
    )


def test_float64_kernels_equal_keras_exactly():
    # The closed-form gains (linear 1, relu sqrt(2)) make the std Keras's to the last bit.
    for name in NAMED:
        ours = _numpy(getattr(initializers, name)(3)((40, 30), dtype="float64"))
        theirs = _numpy(getattr(keras.initializers, name)(3)((40, 30), dtype="float64"))
        np.testing.assert_array_equal(ours, theirs)
