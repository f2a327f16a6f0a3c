"""A two-step fit with each initializer, on whatever backend KERAS_BACKEND selects."""

import keras
import numpy as np
import pytest

from keras_initkit import initializers as ki

INITIALIZERS = {
    "lecun_normal": lambda: ki.LecunNormal(seed=1),
    "lecun_uniform": lambda: ki.LecunUniform(seed=1),
    "glorot_normal": lambda: ki.GlorotNormal(nonlinearity="tanh", seed=1),
    "glorot_uniform": lambda: ki.GlorotUniform(seed=1),
    "he_normal": lambda: ki.HeNormal(seed=1),
    "he_uniform": lambda: ki.HeUniform(nonlinearity="leaky_relu", param=0.1, seed=1),
    "variance_scaling": lambda: ki.VarianceScaling(mode="fan_geo_avg", seed=1),
    "orthogonal": lambda: ki.Orthogonal(nonlinearity="relu", seed=1),
    "fixup": lambda: ki.Fixup(ki.HeNormal(seed=1), num_branches=4, branch_depth=2),
    "residual_zeros": lambda: ki.ResidualZeros(),
    "initializer_for_tanh": lambda: ki.initializer_for("tanh", seed=1),
}


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_two_step_fit(name):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 6)).astype("float32")
    y = (x.sum(axis=1, keepdims=True) > 0).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="relu", kernel_initializer=INITIALIZERS[name]()),
            keras.layers.Reshape((8, 1)),
            keras.layers.Conv1D(4, 3, activation="tanh", kernel_initializer=INITIALIZERS[name]()),
            keras.layers.Flatten(),
            keras.layers.Dense(1, activation="sigmoid", kernel_initializer=ki.LecunNormal(seed=2)),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy")
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    history = model.fit(x, y, batch_size=16, epochs=1, steps_per_epoch=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
