"""Overhead of `GradientStats` on `fit`, against plain `fit`, on the workloads of
`benchmarks/stats_overhead.py` (`mlp`: 10 x Dense(500, tanh), batch 256; `cnn`: six 3x3
Conv2D, batch 64; SGD; synthetic data).

Configurations, each with its own model (identical initial weights) and its own callback:

- `plain`: `fit` with no statistics;
- `default`: `GradientStats()` (one step in 50 folded, read every 50 batches);
- `every batch`: `GradientStats(every=1)` (every step folded and read; histograms in one
  step in 10, `histogram_every=10`, the default);
- `every batch (all histograms)`: `GradientStats(every=1, histogram_every=1)`.

With `--decompose`, four more, to see where every-batch recording's time goes:

- `every batch, no histograms`: `histogram_every` past the run's length (only each epoch's
  first window counts them);
- `every batch, fold: three sums`: the fold replaced by the sums of squares of every
  gradient, weight before the step and weight after it: one pass over each of the three
  tensors the fold must read, the floor of any fused kernel computing update statistics
  (on TensorFlow, with the copy that keeping the weights before the step costs);
- `every batch, fold: one sum`: the fold replaced by one sum of squares of every gradient
  (the hook, the host's record, and one pass over the gradients);
- `every batch, fold: nothing`: the fold replaced by a step counter (the hook and the
  host's record only).

Protocol (as `stats_overhead.py`, whose docstring gives the reasons): one intra-op thread
per backend; each epoch timed on its own by callbacks first and last in the list, the
first epoch of every `fit` (tracing, compiling) discarded; a round runs one `fit` per
configuration in a shuffled order; the per-round median time per step is divided by plain
`fit`'s of the same round, and the table shows the median over rounds of these paired
ratios with their interquartile range, for process CPU time, and the median wall ratio.

    KERAS_BACKEND=jax python benchmarks/gradient_overhead.py [--workload mlp|cnn|both]
        [--rounds R] [--steps S] [--epochs E] [--quick] [--decompose]
"""

import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["TF_NUM_INTRAOP_THREADS"] = "1"
os.environ["TF_NUM_INTEROP_THREADS"] = "1"
_XLA_PIN = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
if _XLA_PIN not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _XLA_PIN).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import gc
import random
import statistics
import sys
import time
import warnings

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stats_overhead import build_cnn, build_mlp

from keras_initkit.callbacks import GradientStats, GradientStatsWarning
from keras_initkit.stats import gradients

BACKEND = keras.backend.backend()
if BACKEND == "tensorflow":
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
elif BACKEND == "torch":
    import torch

    torch.set_num_threads(1)

WORKLOADS = {"mlp": (build_mlp, (500,), 256, 5, 40), "cnn": (build_cnn, (28, 28, 1), 64, 4, 40)}
CONFIGS = {
    "plain": lambda: None,
    "default": lambda: GradientStats(warn=False),
    "every batch": lambda: GradientStats(every=1, warn=False),
    "every batch (all histograms)": lambda: GradientStats(every=1, histogram_every=1, warn=False),
}
GOALS = {"default": 1.03, "every batch": 1.15}


def _fold_nothing(state, grads, before, after, layout, *args, **kwargs):
    return gradients.tick(state)


def _fold_one_sum(state, grads, before, after, layout, *args, **kwargs):
    total = sum(keras.ops.sum(keras.ops.square(g)) for g in grads if g is not None)
    return gradients.tick(state) + 0.0 * total  # keeps the sum in the step


def _fold_three_sums(state, grads, before, after, layout, *args, **kwargs):
    tensors = [t for t in (*grads, *before, *after) if t is not None]
    total = sum(keras.ops.sum(keras.ops.square(t)) for t in tensors)
    return gradients.tick(state) + 0.0 * total


DECOMPOSE = {
    "every batch, no histograms": (
        lambda: GradientStats(every=1, histogram_every=10**9, warn=False), None),
    "every batch, fold: three sums": (
        lambda: GradientStats(every=1, warn=False), _fold_three_sums),
    "every batch, fold: one sum": (lambda: GradientStats(every=1, warn=False), _fold_one_sum),
    "every batch, fold: nothing": (lambda: GradientStats(every=1, warn=False), _fold_nothing),
}
FOLDS = {}  # config -> the fold it runs with instead of `gradients.fold`


def run(name, rounds, steps, epochs):
    builder, shape, batch, _, _ = WORKLOADS[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps * batch, *shape)).astype("float32")
    y = rng.integers(0, 10, size=(steps * batch,)).astype("int32")
    keras.utils.set_random_seed(0)
    reference = builder().get_weights()
    models, callbacks = {}, {}
    for config, factory in CONFIGS.items():
        model = builder()
        model.set_weights(reference)
        model.compile(keras.optimizers.SGD(), "sparse_categorical_crossentropy")
        models[config], callbacks[config] = model, factory()
    order, shuffler = list(CONFIGS), random.Random(0)
    per_round = {config: [] for config in CONFIGS}
    for index in range(rounds):
        shuffler.shuffle(order)
        for config in order:
            times = []

            class Timer(keras.callbacks.Callback):
                def on_epoch_begin(self, epoch, logs=None):
                    self.begin = (time.process_time(), time.perf_counter())

                def on_epoch_end(self, epoch, logs=None):
                    times.append((time.process_time() - self.begin[0],  # noqa: B023
                                  time.perf_counter() - self.begin[1]))

            timer = Timer()
            extra = [] if callbacks[config] is None else [callbacks[config]]
            gc.collect()
            real_fold = gradients.fold
            gradients.fold = FOLDS.get(config) or real_fold  # traced by this fit's step
            try:
                models[config].fit(x, y, batch_size=batch, epochs=epochs, shuffle=False,
                                   verbose=0, callbacks=[timer, *extra])
            finally:
                gradients.fold = real_fold
            timed = times[1:]
            per_round[config].append((statistics.median(c for c, _ in timed) / steps,
                                      statistics.median(w for _, w in timed) / steps))
        print(f"  {name}: round {index + 1}/{rounds}", file=sys.stderr)
    plain = per_round["plain"]
    return {
        config: {
            "cpu": [c / p[0] for (c, _), p in zip(per_round[config], plain, strict=True)],
            "wall": [w / p[1] for (_, w), p in zip(per_round[config], plain, strict=True)],
            "ms": 1e3 * statistics.median(c for c, _ in per_round[config]),
        }
        for config in CONFIGS
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("mlp", "cnn", "both"), default="both")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 10 steps")
    parser.add_argument("--decompose", action="store_true",
                        help="also every batch without histograms, and with the fold "
                             "replaced by three sums, one sum and nothing")
    args = parser.parse_args(argv)
    if args.decompose:
        for config, (factory, fold) in DECOMPOSE.items():
            CONFIGS[config] = factory
            if fold is not None:
                FOLDS[config] = fold
    warnings.simplefilter("ignore", GradientStatsWarning)
    names = ["mlp", "cnn"] if args.workload == "both" else [args.workload]
    print(f"backend: {BACKEND}, keras {keras.__version__}, one thread")
    print("| workload | config | ms/step cpu | cpu ratio [IQR] | wall ratio | goal |")
    print("|---|---|---|---|---|---|")
    for name in names:
        _, _, _, rounds, steps = WORKLOADS[name]
        rounds, steps, epochs = args.rounds or rounds, args.steps or steps, args.epochs
        if args.quick:
            rounds, steps, epochs = 2, 10, 2
        results = run(name, rounds, steps, epochs)
        for config, result in results.items():
            cpu = statistics.median(result["cpu"])
            q1, q3 = np.percentile(result["cpu"], [25, 75])
            wall = statistics.median(result["wall"])
            goal = GOALS.get(config)
            verdict = "" if goal is None else f"<= {goal} {'met' if cpu <= goal else 'MISSED'}"
            print(f"| {name} | {config} | {result['ms']:.1f} | {cpu:.3f} [{q1:.3f}-{q3:.3f}] "
                  f"| {wall:.3f} | {verdict} |")


if __name__ == "__main__":
    main()
