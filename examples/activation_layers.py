"""Activation layers that carry their own initialization advice.

Builds a digits classifier from keras_initkit's layers (MaxoutDense, a learnable Swish,
Snake), initializes each Dense from `initializer_for(<the activation that follows>)`, prints
the gain each activation calls for, trains a few epochs offline (scikit-learn's digits) and
shows the learned Swish betas. Then it shows the lesson behind MaxoutDense's default: at
init, a 30-layer maxout stack keeps its scale with the maxout initializer and explodes with
LeCun's.

Run it (any KERAS_BACKEND):

    python examples/activation_layers.py [--out DIR]
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import keras_initkit  # noqa: E402
from keras_initkit import calculate_gain, initializer_for  # noqa: E402
from keras_initkit.layers import MaxoutDense, Snake, Swish  # noqa: E402


def build_model():
    swish = Swish(beta=1.0, trainable=True)
    snake = Snake(frequency=1.0)
    for layer in (swish, snake):
        print(f"{type(layer).__name__:<6} gain {calculate_gain(layer):.4f} -> "
              f"{initializer_for(layer, seed=0)!r}")
    maxout = MaxoutDense(64, pieces=3)
    print(f"MaxoutDense(pieces=3) gain {calculate_gain(maxout):.4f}, own kernel "
          f"{maxout.kernel_initializer!r}")
    return keras.Sequential([
        keras.Input((64,)),
        maxout,
        keras.layers.Dense(64, kernel_initializer=initializer_for(swish, seed=0)),
        swish,
        keras.layers.Dense(32, kernel_initializer=initializer_for(snake, seed=1)),
        snake,
        keras.layers.Dense(10, activation="softmax",
                           kernel_initializer=initializer_for("softmax", seed=2)),
    ])


def deep_maxout_std(initializer_factory, depth=30, width=256, pieces=3):
    """Std of the last layer's pre-activations of a fresh `depth`-layer maxout stack."""
    h = np.random.default_rng(0).standard_normal((256, width)).astype("float32")
    for i in range(depth):
        layer = MaxoutDense(width, pieces, kernel_initializer=initializer_factory(i))
        layer.build(h.shape)
        pre = keras.ops.convert_to_numpy(layer.pre_activation(h))
        h = keras.ops.convert_to_numpy(layer(h))
    return float(pre.std())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="directory for the saved model")
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="keras_initkit_layers_")
    keras.utils.set_random_seed(0)

    digits = load_digits()
    x, y = (digits.data / 16.0).astype("float32"), digits.target
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))

    model = build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x[:split], y[:split], epochs=8, batch_size=64, verbose=0)
    _, accuracy = model.evaluate(x[split:], y[split:], verbose=0)
    print(f"test accuracy: {accuracy:.4f}")
    betas = keras.ops.convert_to_numpy(model.layers[2].parameter)
    print(f"learned Swish betas: mean {betas.mean():.3f}, range "
          f"[{betas.min():.3f}, {betas.max():.3f}] (started at 1.0)")
    path = os.path.join(out, "activation_layers.keras")
    model.save(path)
    print(f"saved {path}")

    maxout_scale = deep_maxout_std(
        lambda i: keras_initkit.initializers.LecunNormal(nonlinearity="maxout", param=3, seed=i))
    lecun = deep_maxout_std(lambda i: keras_initkit.initializers.LecunNormal(seed=i))
    print(f"30-layer maxout(k=3) stack, last pre-activation std at init: maxout init "
          f"{maxout_scale:.3f}, LeCun init {lecun:.3g}")


if __name__ == "__main__":
    main()
