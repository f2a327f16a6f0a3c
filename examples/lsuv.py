"""Data-driven initialization of an existing model: `keras_initkit.lsuv` (Mishkin & Matas).

A 20-layer tanh MLP whose kernels were drawn from N(0, 0.05^2), a scale hand-picked in
many older tutorials, loses its signal: `keras_initkit.inspect` shows the tanh outputs
shrinking a few-fold per layer. `keras_initkit.lsuv(model, x_batch, seed=0)` puts
orthogonal kernels in, then rescales each layer until its linear output has std 1 on a
batch of 512 training images; the report prints the std of every layer before and after.
Both models then train for 8 epochs on scikit-learn's digits (offline).

Run it (any KERAS_BACKEND: tensorflow, jax or torch):

    python examples/lsuv.py [--out DIR]
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
from sklearn.datasets import load_digits

import keras_initkit

DEPTH = 20
SHOWN = (1, 5, 10, 15, 20)


def digits():
    data = load_digits()
    x = data.data.astype("float32")
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], data.target[order]
    split = int(0.8 * len(x))
    return (x[:split], y[:split]), (x[split:], y[split:])


def tanh_mlp():
    small = keras.initializers.RandomNormal(stddev=0.05)
    return keras.Sequential(
        [keras.Input((64,))]
        + [keras.layers.Dense(64, "tanh", kernel_initializer=small, name=f"tanh_{i + 1}")
           for i in range(DEPTH)]
        + [keras.layers.Dense(10, "softmax", kernel_initializer=small, name="readout")])


def tanh_stds(model, x):
    stds = keras_initkit.inspect(model, x).column("std")
    return [stds[d - 1] for d in SHOWN]


def train_and_test(model, train, test):
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(*train, epochs=8, batch_size=64, verbose=0)
    return model.evaluate(*test, verbose=0)[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="directory for the saved model")
    out = parser.parse_args().out or tempfile.mkdtemp(prefix="keras_initkit_lsuv_")
    os.makedirs(out, exist_ok=True)
    keras.utils.set_random_seed(0)
    train, test = digits()
    print(f"tanh output std at layers {'/'.join(map(str, SHOWN))}:")

    original = tanh_mlp()
    model = tanh_mlp()
    model.set_weights(original.get_weights())
    print("  N(0, 0.05^2):", " ".join(f"{s:.1e}" for s in tanh_stds(original, test[0])))

    report = keras_initkit.lsuv(model, train[0][:512], seed=0)
    print("  after lsuv:  ", " ".join(f"{s:.1e}" for s in tanh_stds(model, test[0])))
    print("per-layer std of the linear output (orthogonal pre-init, then rescaled):")
    for row in (report[d - 1] for d in SHOWN + (DEPTH + 1,)):
        print(f"  {row['layer']:<7} {row['std before']:.3f} -> {row['std after']:.3f} "
              f"in {row['iterations']} iteration(s)")

    original_accuracy = train_and_test(original, train, test)
    accuracy = train_and_test(model, train, test)
    print(f"test accuracy after 8 epochs: N(0, 0.05^2) {original_accuracy:.3f}, "
          f"lsuv {accuracy:.3f}")
    path = os.path.join(out, "tanh_lsuv.keras")
    model.save(path)
    print(f"saved {path}")

    assert all(abs(s - 1.0) <= 0.1 for s in report.column("std after")), report
    assert accuracy > max(0.8, original_accuracy + 0.3), (original_accuracy, accuracy)


if __name__ == "__main__":
    main()
