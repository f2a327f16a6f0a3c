"""Watch activations collapse, then not: ActivationStats on a 10-layer tanh network.

Trains the same 10 x Dense(128, tanh) network on scikit-learn's digits twice, with
weights N(0, 0.01^2) and with Glorot normal, while `ActivationStats` records each layer's
statistics inside the training step. Prints the per-layer std of the last record and the
diagnosis, and writes CSV, JSON, TensorBoard logs (`tensorboard --logdir OUT`) and PNG
plots (if matplotlib is installed) under `--out`.

Run: python examples/activation_stats.py --out runs/activation_stats
"""

from __future__ import annotations

import argparse
import os
import warnings

import keras
import numpy as np
from sklearn.datasets import load_digits

import keras_initkit


def build(initializer: keras.initializers.Initializer) -> keras.Model:
    layers = [keras.Input((64,))]
    layers += [
        keras.layers.Dense(128, "tanh", kernel_initializer=initializer, name=f"tanh_{i + 1}")
        for i in range(10)
    ]
    layers.append(keras.layers.Dense(10, "softmax", name="classes"))
    return keras.Sequential(layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/activation_stats", help="output folder")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target
    for name, initializer in (
        ("normal_0.01", keras.initializers.RandomNormal(stddev=0.01)),
        ("glorot_normal", keras_initkit.initializers.GlorotNormal()),
    ):
        model = build(initializer)
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        log_dir = os.path.join(args.out, name)
        stats = keras_initkit.callbacks.ActivationStats(every=10, log_dir=log_dir, warn=False)
        history = model.fit(x, y, batch_size=64, epochs=args.epochs, verbose=0,
                            callbacks=[stats])
        last = stats.records[-1].step
        stds = [r.stats["std"] for r in stats.records if r.step == last][:10]
        print(f"\n{name}: accuracy {history.history['accuracy'][-1]:.3f} after "
              f"{args.epochs} epochs; per-layer std at step {last}:")
        print("  " + " ".join(f"{s:.1e}" for s in stds))
        for message in stats.warnings or ["ActivationStats: no warnings"]:
            print("  " + message)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                stats.plot().savefig(os.path.join(log_dir, "layer_stats.png"))
                stats.plot_histograms().savefig(os.path.join(log_dir, "histograms.png"))
        except ImportError as error:  # matplotlib is the optional `plot` extra
            print(f"  (no plots: {error})")
        print(f"  files: {sorted(os.listdir(log_dir))}")
    assert np.isfinite(stds).all()


if __name__ == "__main__":
    main()
