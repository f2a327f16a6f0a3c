"""Greedy layer-wise RBM pretraining: `keras_initkit.pretrain` (Hinton, Osindero & Teh, 2006).

Five Dense(256, sigmoid) layers and a softmax readout, started from N(0, 0.01^2) weights
and trained for 10 epochs with plain SGD on scikit-learn's digits (pixels scaled to
[0, 1], offline), stay near chance: every sigmoid layer shrinks the differences between
inputs about 25-fold, so the readout sees the same vector for every digit and the
gradients that reach the lower layers vanish. `keras_initkit.pretrain(model, x_train,
method="rbm")` first trains each hidden layer, bottom up, as a restricted Boltzmann
machine on the output of the layers below it (contrastive divergence, no labels); the
same supervised training then starts from features that tell the digits apart.

Run it (any KERAS_BACKEND: tensorflow, jax or torch):

    python examples/pretrain_rbm.py [--out DIR] [--cd-epochs N]
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
from sklearn.datasets import load_digits

import keras_initkit

HIDDEN, UNITS, EPOCHS, LEARNING_RATE = 5, 256, 10, 0.1


def digits():
    """Digits with pixels in [0, 1] (Bernoulli visible units), an 80/20 split."""
    data = load_digits()
    x = (data.data / 16.0).astype("float32")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], data.target[order]
    split = int(0.8 * len(x))
    return (x[:split], y[:split]), (x[split:], y[split:])


def deep_sigmoid_net():
    small = keras.initializers.RandomNormal(stddev=0.01)
    return keras.Sequential(
        [keras.Input((64,))]
        + [keras.layers.Dense(UNITS, "sigmoid", kernel_initializer=small, name=f"sigmoid_{i + 1}")
           for i in range(HIDDEN)]
        + [keras.layers.Dense(10, "softmax", kernel_initializer=small, name="readout")])


def supervised_accuracy(model, train, test):
    """10 epochs of plain SGD (no momentum), then the test accuracy."""
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(*train, epochs=EPOCHS, batch_size=32, verbose=0)
    return float(model.evaluate(*test, verbose=0)[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="directory for the saved model")
    parser.add_argument("--cd-epochs", type=int, default=5, help="RBM epochs per layer")
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="keras_initkit_pretrain_")
    os.makedirs(out, exist_ok=True)
    keras.utils.set_random_seed(0)
    train, test = digits()

    baseline = deep_sigmoid_net()
    model = deep_sigmoid_net()
    model.set_weights(baseline.get_weights())  # the same N(0, 0.01^2) start
    report = keras_initkit.pretrain(model, train[0], method="rbm", epochs=args.cd_epochs,
                                    learning_rate=0.1, momentum=0.9, batch_size=32, seed=0)
    print(report)

    chance = supervised_accuracy(baseline, train, test)
    pretrained = supervised_accuracy(model, train, test)
    print(f"test accuracy after {EPOCHS} epochs of SGD({LEARNING_RATE}): "
          f"N(0, 0.01^2) {chance:.3f}, RBM-pretrained {pretrained:.3f} "
          f"(+{pretrained - chance:.3f})")
    path = os.path.join(out, "pretrained_sigmoid.keras")
    model.save(path)
    print(f"saved {path}")

    assert all(r["error after"] < r["error before"] for r in report[:HIDDEN]), report
    assert pretrained >= chance + 0.2, (chance, pretrained)


if __name__ == "__main__":
    main()
