"""One run of `ActivationStats` for `test_distributed_stats.py`, in a process of its own.

    python distributed_stats_run.py single       # one device: the reference
    python distributed_stats_run.py distributed  # two replicas

The backend comes from KERAS_BACKEND. `distributed` means `tf.distribute.MirroredStrategy`
over two logical CPU devices on TensorFlow (they must be configured before TensorFlow
initializes, hence a fresh process), and `keras.distribution.DataParallel` over the CPU
devices on JAX (start the process with `XLA_FLAGS=--xla_force_host_platform_device_count=2`).

The model's weights are fixed and never change (SGD with learning rate 0), so every
record depends only on the weights and the data. Two fits run on the same model, one per
entry of `CONFIGS`. Prints one line `RESULT {json}`: the replica count, a checksum of the
weights, a per-replica probe and, per config, every record as `ActivationRecord.to_json()`.

Importing this module does nothing (pytest's doctest collection imports it).
"""

import json
import os
import sys

GLOBAL_BATCH = 32
STEPS = 4
CONFIGS = {
    "all_rows": {"every": 2, "batches_per_record": "all"},
    # Fewer rows than one replica's share of a batch (16): only the first replica's
    # shard holds rows 0-4 of each global batch.
    "max_rows": {"every": 2, "batches_per_record": "all", "max_rows": 5},
}


def _weights(model):
    """Fixed weights from numpy, the same whatever the backend, device count or seeding.

    The first four units of the linear layer feeding the ReLU get a bias of -100, so the
    ReLU has four dead units: `dead_units` then has something to merge across replicas.
    """
    import numpy as np

    rng = np.random.default_rng(7)
    values = []
    for weight in model.weights:
        shape = tuple(weight.shape)
        if len(shape) == 2:
            values.append(rng.normal(0.0, 1.5 / np.sqrt(shape[0]), shape).astype("float32"))
        else:
            values.append(rng.normal(0.0, 0.1, shape).astype("float32"))
    values[3][:4] = -100.0  # the bias of "linear"
    return values


def _build(keras):
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="tanh", name="tanh"),
            keras.layers.Dense(16, name="linear"),
            keras.layers.ReLU(name="relu"),
            keras.layers.Dense(3, activation="softmax", name="softmax"),
        ]
    )
    model.set_weights(_weights(model))
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="categorical_crossentropy"
    )
    return model


def _probe(keras, stats, seen):
    """A callback reading the first watched layer's accumulator per replica after batch 1.

    Listed before `stats`, it runs before the record at that batch empties the
    accumulators. It shows how the work was split: under `tf.distribute` each replica
    holds the statistics of its share of every batch (merged on the host); under JAX one
    accumulator is replicated over the devices. Diagnostic only: it reads the callback's
    private instrumentation.
    """
    import numpy as np
    from keras import ops

    from keras_initkit.stats import _keras_internals
    from keras_initkit.stats.accumulator import COUNT

    class Probe(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch != 1:
                return
            variable = stats._recorder.instrumentation.slots[0].variable
            values = _keras_internals.local_values(self.model, variable)
            sharding = getattr(variable.value, "sharding", None)
            seen["local_counts"] = [
                float(np.asarray(ops.convert_to_numpy(v))[COUNT]) for v in values
            ]
            seen["accumulator_devices"] = (
                len(sharding.device_set) if sharding is not None else None
            )

    return Probe()


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

    import keras
    import numpy as np

    from keras_initkit.callbacks import ActivationStats

    assert keras.backend.backend() == backend, (keras.backend.backend(), backend)
    replicas, device_count = 1, None
    if strategy is not None:
        replicas = int(strategy.num_replicas_in_sync)
    if backend == "jax":
        import jax

        device_count = jax.device_count()
        if mode == "distributed":
            devices = keras.distribution.list_devices("cpu")
            keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
            replicas = len(devices)

    # No keras.utils.set_random_seed: nothing here draws from Keras's RNG (the weights
    # come from numpy), and on JAX it would import TensorFlow to seed it (5 s).
    rng = np.random.default_rng(0)
    x = (2.0 * rng.standard_normal((GLOBAL_BATCH * STEPS, 8))).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, GLOBAL_BATCH * STEPS)]

    if strategy is not None:
        with strategy.scope():
            model = _build(keras)
    else:
        model = _build(keras)
    initial = [np.asarray(w) for w in model.get_weights()]

    records, seen = {}, {}
    for name, config in CONFIGS.items():
        stats = ActivationStats(warn=False, histogram_every=1, **config)
        callbacks = [stats] if seen else [_probe(keras, stats, seen), stats]
        model.fit(
            x,
            y,
            batch_size=GLOBAL_BATCH,
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=callbacks,
        )
        records[name] = [r.to_json() for r in stats.records]

    final = [np.asarray(w) for w in model.get_weights()]
    result = {
        "backend": backend,
        "mode": mode,
        "replicas": replicas,
        "device_count": device_count,
        "probe": seen,
        "weights_checksum": float(sum(np.sum(np.abs(w), dtype="float64") for w in initial)),
        "weights_unchanged": all(np.array_equal(a, b) for a, b in zip(initial, final, strict=True)),
        "records": records,
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
