"""Watch gradients vanish, then not: GradientStats on a 10-layer network.

Trains the same 10 x Dense(64) network on scikit-learn's digits three ways (sigmoid with
Glorot, the seeds' vanishing case; ReLU with He; tanh with N(0, 0.01^2) weights and
SGD(0.01)) while `GradientStats` records each layer's weight gradient, weights and update
inside the training step. Prints the first record's weight-gradient RMS per layer and the
diagnoses, and writes CSV, JSON Lines, TensorBoard logs (`tensorboard --logdir OUT`) and a
PNG plot (if matplotlib is installed) under `--out`.

Run: python examples/gradient_stats.py --out runs/gradient_stats
"""

from __future__ import annotations

import argparse
import os
import warnings

import keras
import numpy as np
from sklearn.datasets import load_digits

import keras_initkit

CASES = (
    ("sigmoid_glorot", "sigmoid", "glorot_uniform"),
    ("relu_he", "relu", "he_normal"),
    ("tanh_normal_0.01", "tanh", keras.initializers.RandomNormal(stddev=0.01)),
)


def build(activation: str, initializer) -> keras.Model:
    layers = [keras.Input((64,))]
    layers += [
        keras.layers.Dense(64, activation, kernel_initializer=initializer, name=f"dense_{i + 1}")
        for i in range(10)
    ]
    layers.append(keras.layers.Dense(10, "softmax", name="classes"))
    return keras.Sequential(layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/gradient_stats", help="output folder")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()

    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target
    ratios = {}
    for name, activation, initializer in CASES:
        keras.utils.set_random_seed(0)
        model = build(activation, initializer)
        model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        log_dir = os.path.join(args.out, name)
        stats = keras_initkit.callbacks.GradientStats(every=10, log_dir=log_dir, warn=False)
        history = model.fit(x, y, batch_size=128, epochs=args.epochs, verbose=0,
                            callbacks=[stats])
        frame = stats.to_dataframe()
        first = frame[(frame.step == frame.step.min()) & (frame.variable == "kernel")
                      & (frame.statistic == "gradient_rms")]
        rms = first["value"].to_numpy()[:10]
        ratios[name] = rms[0] / rms[-1]
        print(f"\n{name}: accuracy {history.history['accuracy'][-1]:.3f}; weight-gradient "
              f"RMS per layer at step {int(first.step.iloc[0])} (input -> output):")
        print("  " + " ".join(f"{v:.1e}" for v in rms))
        print(f"  first / last hidden layer: {ratios[name]:.2g}")
        for message in stats.warnings or ["GradientStats: no warnings"]:
            print("  " + message)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                stats.plot().savefig(os.path.join(log_dir, "gradients.png"))
        except ImportError as error:  # matplotlib is the optional `plot` extra
            print(f"  (no plot: {error})")
        print(f"  files: {sorted(os.listdir(log_dir))}")
    # the lesson, asserted: sigmoid+Glorot vanishes towards the input, ReLU+He does not
    assert ratios["sigmoid_glorot"] < 0.01 < ratios["relu_he"], ratios
    assert np.isfinite(list(ratios.values())).all()


if __name__ == "__main__":
    main()
