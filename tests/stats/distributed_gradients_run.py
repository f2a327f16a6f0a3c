"""One run of `GradientStats` for `test_distributed_gradients.py`, in a process of its own.

    python distributed_gradients_run.py single       # one device: the reference
    python distributed_gradients_run.py distributed  # two replicas

The backend comes from KERAS_BACKEND. `distributed` means `tf.distribute.MirroredStrategy`
over two logical CPU devices on TensorFlow (configured before TensorFlow initializes,
hence a fresh process), and `keras.distribution.DataParallel` over the CPU devices on JAX
(start the process with `XLA_FLAGS=--xla_force_host_platform_device_count=2`).

The weights come from NumPy. Before training, the process computes the gradient of the
loss on the first global batch with the backend's own autodiff, on one device, as the
reference; then one `fit` of two steps (SGD with momentum, a record every step) records
the statistics, and the weights are read before and after the first step. Prints one
line `RESULT {json}`: the replica count, the reference gradient norms, the weight change
of the first step, every record as `GradientRecord.to_json()`, and the error a
distributed run raises for a clipping optimizer (`null` in a single run).

Importing this module does nothing (pytest's doctest collection imports it).
"""

import json
import os
import sys

GLOBAL_BATCH = 32
STEPS = 2


def _weights(model):
    import numpy as np

    rng = np.random.default_rng(7)
    return [
        rng.normal(0.0, 1.0 / np.sqrt(w.shape[0]) if len(w.shape) == 2 else 0.1, w.shape)
        .astype("float32")
        for w in model.weights
    ]


def _build(keras, optimizer):
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="tanh", name="tanh"),
            keras.layers.Dense(16, activation="relu", name="relu"),
            keras.layers.Dense(3, activation="softmax", name="softmax"),
        ]
    )
    model.set_weights(_weights(model))
    model.compile(optimizer=optimizer, loss="categorical_crossentropy")
    return model


def _reference_norms(keras, backend, model, x, y):
    """The norm of dL/dW on the whole global batch, by the backend's autodiff."""
    import numpy as np

    loss_fn = keras.losses.CategoricalCrossentropy()
    variables = model.trainable_variables
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, [v.value for v in variables])
    else:
        import jax

        values = [np.asarray(v.value) for v in variables]
        others = [np.asarray(v.value) for v in model.non_trainable_variables]

        def loss_of(trainable):
            y_pred, _ = model.stateless_call(trainable, others, x, training=True)
            return loss_fn(y, y_pred)

        grads = jax.grad(loss_of)(values)
    grads = [np.asarray(keras.ops.convert_to_numpy(g), "float64") for g in grads]
    return {v.path: float(np.linalg.norm(g)) for v, g in zip(variables, grads, strict=True)}


def main(mode):
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    strategy = None
    if backend == "tensorflow":
        import tensorflow as tf

        if mode == "distributed":
            (cpu,) = tf.config.list_physical_devices("CPU")
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * 2
            )
            strategy = tf.distribute.MirroredStrategy(
                [d.name for d in tf.config.list_logical_devices("CPU")]
            )

    import contextlib

    import keras
    import numpy as np

    from keras_initkit.callbacks import GradientStats

    assert keras.backend.backend() == backend, (keras.backend.backend(), backend)
    replicas = 1
    if strategy is not None:
        replicas = int(strategy.num_replicas_in_sync)
    if backend == "jax" and mode == "distributed":
        devices = keras.distribution.list_devices("cpu")
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        replicas = len(devices)
    scope = strategy.scope if strategy is not None else contextlib.nullcontext

    rng = np.random.default_rng(0)
    x = (2.0 * rng.standard_normal((GLOBAL_BATCH * STEPS, 8))).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, GLOBAL_BATCH * STEPS)]

    with scope():
        model = _build(keras, keras.optimizers.SGD(learning_rate=0.1, momentum=0.9))
    reference = _reference_norms(keras, backend, model, x[:GLOBAL_BATCH], y[:GLOBAL_BATCH])

    class WeightsAfterFirstStep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                variables = self.model.trainable_variables
                seen["after"] = [np.asarray(v.numpy(), "float64") for v in variables]
                # How many devices hold the statistics vector (JAX: replicated).
                vector = stats._hooks[0].accumulator.value
                sharding = getattr(vector, "sharding", None)
                seen["devices"] = None if sharding is None else len(sharding.device_set)

    seen = {"before": [np.asarray(v.numpy(), "float64") for v in model.trainable_variables]}
    stats = GradientStats(every=1, histogram_every=1, warn=False)
    model.fit(x, y, batch_size=GLOBAL_BATCH, epochs=1, shuffle=False, verbose=0,
              callbacks=[stats, WeightsAfterFirstStep()])
    change = {
        v.path: float(np.linalg.norm(a - b))
        for v, a, b in zip(model.trainable_variables, seen["after"], seen["before"], strict=True)
    }

    refused = None
    if mode == "distributed":
        with scope():
            clipped = _build(keras, keras.optimizers.SGD(learning_rate=0.1, clipnorm=1.0))
        try:
            clipped.fit(x, y, batch_size=GLOBAL_BATCH, epochs=1, verbose=0,
                        callbacks=[GradientStats(every=1, warn=False)])
        except NotImplementedError as error:
            refused = str(error)

    result = {
        "backend": backend,
        "mode": mode,
        "replicas": replicas,
        "paths": [v.path for v in model.trainable_variables],
        "reference_norms": reference,
        "first_step_change": change,
        "records": [r.to_json() for r in stats.records],
        "accumulator_devices": seen["devices"],
        "refused": refused,
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
