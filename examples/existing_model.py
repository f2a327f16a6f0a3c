"""Fix the initialization of a model you already have: inspect, reinitialize, LSUV, Fixup.

1. Builds a 30-layer ReLU MLP with Keras's defaults (Glorot uniform), saves it as a
   `.keras` file and loads it back, as if it came from elsewhere.
2. `keras_initkit.inspect` shows its activations vanishing layer by layer.
3. `keras_initkit.reinitialize` gives each layer what its activation calls for (He for
   ReLU); the same inspection shows a healthy signal, and the model now trains where the
   default one stays at chance (scikit-learn's digits, offline).
4. `keras_initkit.lsuv` does the same from data; `keras_initkit.zero_init_residual` starts
   every block of a deep residual MLP as the identity.

Run it (any KERAS_BACKEND):

    python examples/existing_model.py [--out DIR]
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import keras_initkit  # noqa: E402


def digits():
    data = load_digits()
    x = data.data.astype("float32")
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], data.target[order]
    split = int(0.8 * len(x))
    return (x[:split], y[:split]), (x[split:], y[split:])


def deep_relu_mlp(depth=30):
    layers = [keras.Input((64,))]
    layers += [keras.layers.Dense(64, activation="relu") for _ in range(depth)]
    layers += [keras.layers.Dense(10, activation="softmax")]
    return keras.Sequential(layers)


def accuracy_after_training(model, train, test):
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(*train, epochs=8, batch_size=64, verbose=0)
    return model.evaluate(*test, verbose=0)[1]


def std_of(report, index):
    return report.column("std")[index]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="directory for the saved models")
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="keras_initkit_existing_")
    keras.utils.set_random_seed(0)
    train, test = digits()

    path = os.path.join(out, "deep_relu.keras")
    deep_relu_mlp().save(path)
    default = keras.saving.load_model(path)
    before = keras_initkit.inspect(default, test[0])
    print(f"Keras defaults: layer-30 activation std {std_of(before, 29):.2e}")
    print(f"  trained 8 epochs: test accuracy {accuracy_after_training(default, train, test):.3f}")

    model = keras.saving.load_model(path)
    report = keras_initkit.reinitialize(model, seed=0)
    print("\n".join(str(report).splitlines()[:5]) + "\n  ...")
    after = keras_initkit.inspect(model, test[0])
    print(f"reinitialize: layer-30 activation std {std_of(after, 29):.3f}")
    print(f"  trained 8 epochs: test accuracy {accuracy_after_training(model, train, test):.3f}")
    model.save(os.path.join(out, "deep_relu_reinitialized.keras"))

    lsuv_model = keras.saving.load_model(path)
    lsuv_report = keras_initkit.lsuv(lsuv_model, train[0][:512], seed=0)
    stds = lsuv_report.column("std after")
    print(f"lsuv: every layer's output std in [{min(stds):.3f}, {max(stds):.3f}]")

    inputs = keras.Input((64,))
    stem = keras.layers.Dense(64, name="stem")(inputs)
    h = stem
    for _ in range(50):
        branch = keras.layers.Dense(64, activation="relu")(h)
        h = keras.layers.Add()([h, keras.layers.Dense(64)(branch)])
    residual = keras.Model(inputs, h)
    fixup = keras_initkit.zero_init_residual(residual)
    stem_out = keras.Model(inputs, stem)(test[0])
    gap = float(np.max(np.abs(keras.ops.convert_to_numpy(residual(test[0]) - stem_out))))
    print(f"zero_init_residual: {len(fixup)} branches zeroed, Fixup scale "
          f"{fixup[0]['fixup scale']:.3f}; output - stem output = {gap:.1e} at init")


if __name__ == "__main__":
    main()
