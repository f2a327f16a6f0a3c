"""Load a saved model that uses keras_initkit's layers and initializers, in a fresh process.

Builds a digits classifier with keras_initkit's objects (a `MaxoutDense`, a learnable
`Swish`, `HeNormal(nonlinearity="leaky_relu")`, the string id "keras_initkit>LecunNormal"),
trains it for 5 epochs on scikit-learn's digits (offline) and saves it. Two fresh Python
processes then load the file with `safe_mode=True`: one that runs `import keras_initkit`
first, which predicts exactly what the trained model did, and one that does not, which
fails with Keras's error naming the class it cannot find. `import keras_initkit` is all
a process needs: importing it registers every keras_initkit object with Keras.

Run it (any KERAS_BACKEND: tensorflow, jax or torch):

    python examples/load_saved_model.py [--out DIR]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
from sklearn.datasets import load_digits

import keras_initkit
from keras_initkit.layers import MaxoutDense, Swish

# The child inherits the environment, KERAS_BACKEND included.
LOAD = """
import sys, numpy as np, keras{imports}
try:
    model = keras.saving.load_model(sys.argv[1], safe_mode=True)
except Exception as error:
    last_line = str(error).strip().splitlines()[-1].split(" Full object config")[0]
    print(f"load failed: {{type(error).__name__}}: {{last_line}}")
else:
    np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))
    print(f"loaded; Swish betas learned: {{model.get_layer('swish').parameter.shape[0]}}")
"""


def load_in_fresh_process(imports, *paths):
    code = LOAD.format(imports=imports)
    result = subprocess.run([sys.executable, "-c", code, *paths],
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="directory for the saved model")
    out = parser.parse_args().out or tempfile.mkdtemp(prefix="keras_initkit_load_")
    os.makedirs(out, exist_ok=True)
    keras.utils.set_random_seed(0)
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))

    model = keras.Sequential([
        keras.Input((64,)),
        MaxoutDense(64, pieces=2),
        keras.layers.Dense(64, kernel_initializer=keras_initkit.initializers.HeNormal(
            nonlinearity="leaky_relu", param=0.2)),
        keras.layers.LeakyReLU(0.2),
        keras.layers.Dense(32, kernel_initializer=keras_initkit.initializer_for(Swish())),
        Swish(trainable=True, name="swish"),
        keras.layers.Dense(10, activation="softmax",
                           kernel_initializer="keras_initkit>LecunNormal"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:split], y[:split], epochs=5, batch_size=64, verbose=0)
    print(f"trained: test accuracy {model.evaluate(x[split:], y[split:], verbose=0)[1]:.3f}")
    for layer in model.layers:
        initializer = getattr(layer, "kernel_initializer", None)
        print(f"  {type(layer).__name__:<11} {initializer!r}" if initializer else
              f"  {type(layer).__name__}")

    model_path, x_path, pred_path = (os.path.join(out, name) for name in
                                     ("digits.keras", "x_test.npy", "pred.npy"))
    model.save(model_path)
    np.save(x_path, x[split:])

    print("fresh process, `import keras_initkit`:",
          load_in_fresh_process(", keras_initkit", model_path, x_path, pred_path))
    gap = np.max(np.abs(np.load(pred_path) - model.predict(x[split:], verbose=0)))
    print(f"  max |reloaded - trained| prediction: {gap:.1e}")

    failure = load_in_fresh_process("", model_path, x_path, pred_path)
    print("fresh process, no keras_initkit import:")
    print(textwrap.fill(failure, width=88, initial_indent="  ", subsequent_indent="    "))

    assert gap < 1e-5, gap
    assert failure.startswith("load failed:") and "MaxoutDense" in failure, failure


if __name__ == "__main__":
    main()
