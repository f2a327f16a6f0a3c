"""Every activation function and layer: finite values and gradients in float16, bfloat16
and float32 over [-1e4, 1e4], on the current backend; and mixed_float16 models that train.

One table: each case is a layer factory (functions ride in `keras.layers.Activation`).
The inputs cover the whole range a float16 activation may see: zero, the tiny values
where Snake's sinc series switches (|a x| ~ 1e-3), and magnitudes up to 1e4.
"""

import keras
import numpy as np
import pytest

from keras_initkit import activations
from keras_initkit.layers import GELU, SELU, Maxout, MaxoutDense, Mish, Snake, Swish

BACKEND = keras.backend.backend()

CASES = {
    "GELU": lambda: GELU(),
    "GELU_approximate": lambda: GELU(approximate=True),
    "SELU": lambda: SELU(),
    "Mish": lambda: Mish(),
    "Swish": lambda: Swish(),
    "Swish_trainable": lambda: Swish(2.0, trainable=True),
    "Snake_trainable": lambda: Snake(),
    "Snake_fixed": lambda: Snake(0.5, trainable=False),
    "Snake_small_frequency": lambda: Snake(frequency=1e-4),
    "Maxout": lambda: Maxout(4),
    "MaxoutDense": lambda: MaxoutDense(4, pieces=3, kernel_initializer="ones"),
    "snake_function": lambda: keras.layers.Activation(activations.snake),
    "tanhexp_function": lambda: keras.layers.Activation(activations.tanhexp),
    "lisht_function": lambda: keras.layers.Activation(activations.lisht),
    "gelu_approximate_function": lambda: keras.layers.Activation(activations.gelu_approximate),
}

# At a = 1e-4, d/da [sin(a x)^2 / a] = x^2 (to first order): summed over this grid the
# true gradient of the frequency is ~1e9, beyond float16's 65504. Not a defect: under
# mixed precision (the way float16 is used) the weight and its gradient are float32.
TRUE_WEIGHT_GRADIENT_OVERFLOWS = {"Snake_small_frequency"}

_MAGNITUDES = np.concatenate([[0.0], np.geomspace(1e-5, 1e4, 59)])
# 120 values in [-1e4, 1e4], 12 channels. MaxoutDense (all-ones kernel) sums 12 inputs,
# so it gets inputs / 12 to keep its pre-activations inside float16's range.
GRID = np.concatenate([-_MAGNITUDES[::-1], _MAGNITUDES]).reshape(10, 12)


def value_and_gradients(layer, x):
    """The layer's output and the gradients of sum(output) w.r.t. x and the weights."""
    layer(x)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            out = layer(xt)
            total = tf.reduce_sum(tf.cast(out, "float32"))
        grads = tape.gradient(total, [xt] + list(layer.trainable_variables))
    elif BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        trainable = [v.value for v in layer.trainable_variables]
        non_trainable = [v.value for v in layer.non_trainable_variables]

        def total(trainable, xj):
            outputs, _ = layer.stateless_call(trainable, non_trainable, xj)
            return jnp.sum(outputs.astype("float32"))

        weight_grads, x_grad = jax.grad(total, argnums=(0, 1))(trainable, jnp.asarray(x))
        grads = [x_grad] + list(weight_grads)
        out = layer(x)
    else:
        import torch

        xt = torch.tensor(x, requires_grad=True)
        out = layer(xt)
        torch.sum(out.float()).backward()
        grads = [xt.grad] + [v.value.grad for v in layer.trainable_variables]
    return _to64(out), [_to64(g) for g in grads]


def _to64(tensor):
    return np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(tensor, "float32")), "float64")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_finite_values_and_gradients_from_minus_to_plus_1e4(case, dtype):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype)
    try:
        layer = CASES[case]()
        x = GRID / 12.0 if case == "MaxoutDense" else GRID
        x = keras.ops.convert_to_tensor(x, dtype=dtype)
        out, grads = value_and_gradients(layer, x)
    finally:
        keras.config.set_dtype_policy(previous)
    assert np.all(np.isfinite(out)), f"{case} {dtype}: non-finite values"
    if case in TRUE_WEIGHT_GRADIENT_OVERFLOWS and dtype == "float16":
        grads = grads[:1]  # the input gradient must still be finite
    for grad in grads:
        bad = ~np.isfinite(grad)
        where = GRID[bad] if grad.shape == GRID.shape else grad
        assert not bad.any(), f"{case} {dtype}: non-finite gradient at {where}"


@pytest.mark.parametrize("name", ["Snake", "Swish", "tanhexp"])
def test_mixed_float16_dense_activation_dense_trains(name):
    # The loss-scale optimizer skips every step whose gradients are not finite: a finite
    # loss alone cannot show that. The weights must move and the loss must fall.
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        activation = {
            "Snake": lambda: Snake(),
            "Swish": lambda: Swish(trainable=True),
            "tanhexp": lambda: keras.layers.Activation(activations.tanhexp),
        }[name]()
        model = keras.Sequential([
            keras.Input((4,)),
            keras.layers.Dense(16, name="first"),
            activation,
            keras.layers.Dense(1, dtype="float32", name="last"),
        ])
        model.compile(optimizer=keras.optimizers.SGD(0.02), loss="mse")
        rng = np.random.default_rng(0)
        # Small inputs: |a x| in 1e-3..4e-3, where Snake's float16 gradient once was -inf.
        x = rng.normal(size=(96, 4)).astype("float32") * 3e-3
        y = (x.sum(axis=1, keepdims=True) * 150.0).astype("float32")  # ~N(0, 0.8)
        before = [np.array(keras.ops.convert_to_numpy(w)) for w in model.trainable_weights]
        first_loss = model.evaluate(x, y, verbose=0)
        model.fit(x, y, batch_size=8, epochs=2, verbose=0)  # 24 steps
        after = [np.array(keras.ops.convert_to_numpy(w)) for w in model.trainable_weights]
        last_loss = model.evaluate(x, y, verbose=0)
        scale = float(keras.ops.convert_to_numpy(model.optimizer.dynamic_scale))
    finally:
        keras.config.set_dtype_policy(previous)
    moved = [not np.array_equal(b, a) for b, a in zip(before, after, strict=True)]
    assert all(moved), moved
    assert last_loss < first_loss
    assert scale >= 1.0, f"loss scale collapsed to {scale}: steps were skipped"
