"""Re-initialize a model you were given as a .keras file: inspect, reinitialize, retrain.

Builds a 30-layer ReLU MLP with Keras's defaults (Glorot uniform), saves it and loads it
back as if it came from elsewhere. `keras_initkit.inspect` shows its activations vanishing
layer by layer; `keras_initkit.reinitialize(model, seed=0)` gives each layer the
initializer its activation calls for (He for ReLU), and the signal survives. Both models
train for 8 epochs on scikit-learn's digits (offline); the re-initialized one is saved and
reloaded with `safe_mode=True`, and its layers name keras_initkit's initializers.

Run it (any KERAS_BACKEND: tensorflow, jax or torch):

    python examples/reinitialize_saved_model.py [--out DIR]
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
from sklearn.datasets import load_digits

import keras_initkit

DEPTH = 30


def digits():
    data = load_digits()
    x = data.data.astype("float32")
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], data.target[order]
    split = int(0.8 * len(x))
    return (x[:split], y[:split]), (x[split:], y[split:])


def train_and_test(model, train, test):
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(*train, epochs=8, batch_size=64, verbose=0)
    return model.evaluate(*test, verbose=0)[1]


def stds_at_depths(model, x, depths=(1, 10, 20, DEPTH)):
    stds = keras_initkit.inspect(model, x).column("std")
    return [stds[d - 1] for d in depths]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="directory for the .keras files")
    out = parser.parse_args().out or tempfile.mkdtemp(prefix="keras_initkit_reinit_")
    os.makedirs(out, exist_ok=True)
    keras.utils.set_random_seed(0)
    train, test = digits()

    path = os.path.join(out, "deep_relu.keras")
    keras.Sequential([keras.Input((64,))]
                     + [keras.layers.Dense(64, activation="relu") for _ in range(DEPTH)]
                     + [keras.layers.Dense(10, activation="softmax")]).save(path)

    default = keras.saving.load_model(path)
    before = stds_at_depths(default, test[0])
    print("Keras defaults, activation std at layers 1/10/20/30:",
          " ".join(f"{s:.2e}" for s in before))
    default_accuracy = train_and_test(default, train, test)
    print(f"  trained 8 epochs: test accuracy {default_accuracy:.3f}")

    model = keras.saving.load_model(path)
    report = keras_initkit.reinitialize(model, seed=0)
    lines = str(report).splitlines()
    print("\n".join(lines[:5] + ["  ..."] + lines[-1:]))
    after = stds_at_depths(model, test[0])
    print("reinitialize, activation std at layers 1/10/20/30:",
          " ".join(f"{s:.2e}" for s in after))
    accuracy = train_and_test(model, train, test)
    print(f"  trained 8 epochs: test accuracy {accuracy:.3f}")

    fixed_path = os.path.join(out, "deep_relu_reinitialized.keras")
    model.save(fixed_path)
    reloaded = keras.saving.load_model(fixed_path, safe_mode=True)
    stored = {type(layer.kernel_initializer).__name__ for layer in reloaded.layers}
    first = keras.saving.serialize_keras_object(reloaded.layers[0].kernel_initializer)
    print(f"reloaded initializers: {sorted(stored)}; first layer's is "
          f"{first['registered_name']} {first['config']['fans']}")
    np.testing.assert_allclose(reloaded.predict(test[0], verbose=0),
                               model.predict(test[0], verbose=0), atol=1e-6)

    assert before[-1] < 1e-3 < after[-1], (before, after)
    assert accuracy > default_accuracy + 0.15, (default_accuracy, accuracy)
    assert stored == {"HeNormal", "LecunNormal"}, stored


if __name__ == "__main__":
    main()
