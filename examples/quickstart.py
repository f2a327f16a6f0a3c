"""Quickstart: train a small MLP with keras_initkit initializers, save it, reload it.

Shows three ways to pick an initializer (an instance, `initializer_for(activation)`, a
registered string id), trains on scikit-learn's bundled digits (no download), saves a
`.keras` file and reloads it in a fresh Python process (`import keras_initkit`, then
`keras.saving.load_model(path, safe_mode=True)`), checking it predicts exactly alike.

Run it (any KERAS_BACKEND: tensorflow, jax or torch):

    python examples/quickstart.py [--out DIR]
"""

import argparse
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import keras_initkit  # noqa: E402

CHILD = """
import sys, numpy as np, keras, keras_initkit  # importing registers our initializers
model = keras.saving.load_model(sys.argv[1], safe_mode=True)
data = np.load(sys.argv[2])
pred = model.predict(data["x_test"], verbose=0)
print(f"test accuracy after reload: {np.mean(pred.argmax(-1) == data['y_test']):.4f}")
np.savez(sys.argv[3], pred=pred)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="output directory (default: a temp dir)")
    out = parser.parse_args().out or tempfile.mkdtemp(prefix="keras_initkit_quickstart_")
    os.makedirs(out, exist_ok=True)

    keras.utils.set_random_seed(0)
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    order = np.random.default_rng(0).permutation(len(x))  # a fixed, seeded shuffle
    x, y = x[order], y[order]
    split = int(0.8 * len(x))  # the last 20% is the test split
    x_train, y_train, x_test, y_test = x[:split], y[:split], x[split:], y[split:]

    Dense = keras.layers.Dense
    model = keras.Sequential([
        keras.Input(shape=(64,)),
        Dense(64, activation="relu", kernel_initializer=keras_initkit.initializers.HeNormal()),
        Dense(64, activation="tanh", kernel_initializer=keras_initkit.initializer_for("tanh")),
        Dense(10, activation="softmax", kernel_initializer="keras_initkit>LecunNormal"),
    ])
    for layer in model.layers:
        print(f"{layer.name:>8} ({layer.activation.__name__}): {layer.kernel_initializer!r}")

    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=10, batch_size=64, verbose=2)
    expected = model.predict(x_test, verbose=0)

    model_path, data_path, pred_path = (
        os.path.join(out, name) for name in ("quickstart.keras", "test.npz", "reloaded.npz"))
    model.save(model_path)
    np.savez(data_path, x_test=x_test, y_test=y_test)

    # A fresh interpreter knows nothing of this one: only `import keras_initkit` lets it
    # resolve "keras_initkit>HeNormal" etc. (it inherits KERAS_BACKEND from the environment).
    subprocess.run([sys.executable, "-c", CHILD, model_path, data_path, pred_path], check=True)
    np.testing.assert_allclose(np.load(pred_path)["pred"], expected, atol=1e-5)
    print(f"reloaded predictions match the in-memory model; files in {out}")


if __name__ == "__main__":
    main()
