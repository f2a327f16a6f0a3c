"""The lectures' other lessons in `keras-initkit study`: batch norm, dropout, symmetry and the
back-propagated gradient, as numbers (Python API of the command: `run_study`).

1. Batch norm: tanh with N(0, 0.01^2) weights collapses with depth; BatchNormalization
   before each activation keeps layer 10 at the scale of layer 1.
2. Dropout: inverted dropout keeps the mean a layer sees at test time, not the std.
3. Symmetry: with constant weights every unit of a layer computes the same function
   (1 distinct unit), and training steps keep it so.
4. Gradients (Glorot & Bengio 2010, figure 7): with the "standard" init
   U[-1/sqrt(n), 1/sqrt(n)] the back-propagated gradient shrinks towards the input;
   with normalized (Xavier) init it stays about level.

Run it (any KERAS_BACKEND: tensorflow, jax or torch):

    python examples/study_lessons.py [--out DIR]
"""

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_initkit.cli.study import plot, run_study

SIZE = dict(depth=10, width=200, batch=300, seed=0)


def column(result, key):
    return [row[key] for row in result.layers]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="directory for the figure")
    out = parser.parse_args().out or tempfile.mkdtemp(prefix="keras_initkit_study_")
    os.makedirs(out, exist_ok=True)

    [plain] = run_study(["tanh"], ["normal:0.01"], **SIZE)
    [normalized] = run_study(["tanh"], ["normal:0.01"], batchnorm=True, **SIZE)
    print(f"1. tanh, N(0, 0.01^2): std at layer 10 {plain.layers[-1]['std']:.3g} "
          f"({plain.verdict}); with batch norm {normalized.layers[-1]['std']:.3g} "
          f"(layer 1: {normalized.layers[0]['std']:.3g}, {normalized.verdict})")
    assert normalized.layers[-1]["std"] > 0.5 * normalized.layers[0]["std"]

    [dropped] = run_study(["tanh"], ["glorot_normal"], dropout=0.5, **SIZE)
    print("2. dropout 0.5 after each tanh: layer, std train / std infer, mean train / infer")
    for i in (0, 4, 9):
        row = dropped.layers[i]
        print(f"   {i + 1:>2}  {row['train_std']:.3f} / {row['inference_std']:.3f}   "
              f"{row['train_mean']:+.4f} / {row['inference_mean']:+.4f}")

    [constant] = run_study(["tanh"], ["constant:0.01"], steps=20, learning_rate=0.05,
                           **dict(SIZE, depth=4))
    print(f"3. constant:0.01: distinct units per layer {column(constant, 'distinct_units')} "
          f"({constant.verdict}); after 20 SGD steps "
          f"{column(constant.trained, 'distinct_units')}, task loss "
          f"{constant.loss:.3g} -> {constant.trained.loss:.3g}")
    assert column(constant.trained, "distinct_units") == [1] * 4

    results = run_study(["tanh"], ["standard", "glorot_uniform"], gradients=True, **SIZE)
    for result in results:
        h, w = column(result, "backprop_rms"), column(result, "gradient_rms")
        print(f"4. {result.init:<15} gradient RMS layer 1 / layer 10: dL/dh {h[0] / h[-1]:.3g}, "
              f"dL/dW {w[0] / w[-1]:.3g}")
    try:
        figure = plot(results)
    except ImportError:  # matplotlib is optional (the `plot` extra)
        return
    path = os.path.join(out, "study_gradients.png")
    figure.savefig(path, dpi=90)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
