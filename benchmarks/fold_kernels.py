# ruff: noqa: E402 - the thread pins must be set before any backend is imported
"""CPU time of one activation fold, native against `keras.ops`, on the current backend.

    KERAS_BACKEND=tensorflow python benchmarks/fold_kernels.py [--rounds R]
    KERAS_BACKEND=torch python benchmarks/fold_kernels.py

Folds one MLP activation (256 x 500, tanh layout) and one CNN activation (64 x 28 x 28 x 16,
ReLU layout), all finite and with one value in 997 NaN, with the step's fold
(`accumulator.fold_for()`: the native one on TensorFlow graph mode and eager torch) and with
the `keras.ops` fold, interleaved, one thread, median over rounds; on TensorFlow also a
nested `tf.function(jit_compile=True)` around the `keras.ops` fold (the XLA variant issue 18
suggested). TensorFlow folds run in a graph, ten per call, each on a different tensor (so
the graph optimizer cannot share work between them); a plain sum of the same tensors is
timed as the floor. Prints ms per fold and checks the native vector equals the reference.
"""

import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["TF_NUM_INTRAOP_THREADS"] = "1"
os.environ["TF_NUM_INTEROP_THREADS"] = "1"
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse
import statistics
import time

import keras
import numpy as np
from keras import ops

from keras_initkit.stats.accumulator import Layout, fold, fold_for

BACKEND = keras.backend.backend()
CASES = {
    "mlp 256x500": (Layout(bins=50, low=-1.0, high=1.0, units=500, saturation=(-1.0, 1.0)),
                    (256, 500)),
    "cnn 64x28x28x16": (Layout(bins=50, low=0.0, high=5.0, units=16), (64, 28, 28, 16)),
}
REPEAT = 10


def variants(layout):
    """name -> function(state, x) running REPEAT folds; the floor is a plain sum."""
    found = {"floor (sum)": lambda s, x, layout: s + ops.sum(x), "keras.ops": fold}
    if fold_for() is not fold:
        found["native"] = fold_for()
    if BACKEND == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        nested = tf.function(lambda s, x: fold(s, x, layout), jit_compile=True)
        found["keras.ops in nested XLA"] = lambda s, x, layout: nested(s, x)

        def graph(one):
            @tf.function(autograph=False)
            def run(state, x):
                for i in range(REPEAT):
                    state = one(state, x * (1.0 + i * 1e-3), layout)
                return state

            return run

        return {name: graph(one) for name, one in found.items()}
    if BACKEND == "torch":
        import torch

        torch.set_num_threads(1)

    def eager(one):
        def run(state, x):
            for _ in range(REPEAT):
                result = one(state, x, layout)
            return result

        return run

    return {name: eager(one) for name, one in found.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(f"backend {BACKEND}, keras {keras.__version__}, one thread, "
          f"load average {os.getloadavg()[0]:.1f}; ms of CPU per fold, median of "
          f"{args.rounds} rounds")
    print("| activation | data | " + " | ".join(["floor (sum)", "keras.ops", "native",
                                                 "keras.ops in nested XLA"]) + " |")
    print("|---|---|---|---|---|---|")
    for name, (layout, shape) in CASES.items():
        runs = variants(layout)
        base = np.random.default_rng(0).standard_normal(shape).astype("float32")
        with_nan = base.copy()
        with_nan.reshape(-1)[::997] = np.nan
        for label, data in (("finite", base), ("NaN", with_nan)):
            x, state = ops.convert_to_tensor(data), ops.convert_to_tensor(layout.empty())
            times = {key: [] for key in runs}
            for run in runs.values():
                run(state, x)  # trace
            for _ in range(args.rounds):
                for key, run in runs.items():
                    start = time.process_time()
                    ops.convert_to_numpy(run(state, x))
                    times[key].append((time.process_time() - start) / REPEAT * 1e3)
            if "native" in runs:
                one = fold_for()
                np.testing.assert_array_equal(ops.convert_to_numpy(one(state, x, layout)),
                                              ops.convert_to_numpy(fold(state, x, layout)))
            cells = [f"{statistics.median(times[k]):.2f}" if k in times else "–"
                     for k in ("floor (sum)", "keras.ops", "native", "keras.ops in nested XLA")]
            print(f"| {name} | {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
