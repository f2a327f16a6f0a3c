# ruff: noqa: E402 - the thread pins must be set before any backend is imported
"""Overhead of `ActivationStats` on `fit`, against plain `fit` and a probe-model callback.

Measures, side by side in one process, the steady-state time per training step of:

- `plain`: `fit` with no statistics;
- `default`: `ActivationStats()` (one batch in 50 folded, read every 50 batches);
- `every batch`: `ActivationStats(every=1, batches_per_record="all")` (every statistic
  at every batch, a histogram at one batch in 10: `histogram_every=10`, the default);
- `every batch (all histograms)`: the same with `histogram_every=1`;
- `every batch (8 rows)`: the same on the first 8 rows of each batch (`max_rows=8`);
- `probe@50` / `probe@1`: the usual hand-written callback, a probe model
  `keras.Model(model.inputs, [layer.output ...])` built once, run with `predict_on_batch`
  on a fixed sample batch of the training data every 50 (resp. every) batches, with mean,
  std and a histogram computed in NumPy;

on two workloads: `mlp` (500-d Gaussian input, 10 x Dense(500, tanh), Dense(10, softmax),
SGD, batch 256) and `cnn` (28x28x1, six 3x3 Conv2D(relu) with 16,16,32,32,64,64 channels,
max-pooling after the 2nd and 4th, global average pooling, Dense(10, softmax), batch 64).
Synthetic NumPy data with a fixed seed.

Protocol. Each configuration has its own model, with identical initial weights, and its
own callback instance, reused across `fit` calls. `ActivationStats` removes its
instrumentation when training ends and installs it again when training begins, so every
`fit` retraces the train function: steady state cannot be reached across `fit` calls, and
one long `fit` per configuration cannot be interleaved with the others. So each epoch is
timed on its own (a callback reads `time.process_time()` and `time.perf_counter()` at
`on_epoch_begin`, first in the callback list, and at `on_epoch_end`, last), inside `fit`
calls of `--epochs` epochs whose first epoch (tracing, compiling) is discarded. A round
runs one such `fit` per configuration, in a shuffled order. For each round and
configuration, the median over its timed epochs is divided by plain `fit`'s in the same
round (a paired ratio, for CPU time and wall time); the table shows the median of these
ratios over rounds with their interquartile range: "cpu-ratio [IQR] / wall-ratio".

Why one thread, CPU time and paired ratios (see pitfall 16 of the prototype report,
`activation_stats_prototype.md`): the machine this was written on has 2 vCPUs shared with
other jobs. With 2 intra-op threads and a contended host, torch's OpenMP pool ran 20-100x
slower (12 ms for `abs` of 128k floats), so multi-threaded timings measured the neighbours,
not the code. Every backend is therefore pinned to one intra-op thread (OMP, TF intra/inter
op, XLA's Eigen pool, torch), set in the environment before Keras is imported. Process CPU
time is insensitive to time-slicing by other tenants, and a ratio paired within one round
cancels slow drifts of the machine; whole-`fit` wall-time interleaving gave ratios between
0.6 and 2.0 for the same configuration there and was discarded. (JAX's XLA runtime still
uses more than one core despite the flags, so its CPU time can exceed its wall time.)

    python benchmarks/stats_overhead.py [--backends tensorflow,tf-jit,jax,torch]
        [--workload mlp,cnn|resnet50|both|all] [--rounds R] [--steps S] [--epochs E]
        [--configs NAME,...] [--jobs J] [--quick]

runs one subprocess per backend (`tf-jit`: TensorFlow with `jit_compile=True`; at most
`--jobs` at a time), each pinned to one thread, and prints one table of CPU-time ratios
over all of them. `KERAS_BACKEND=... python benchmarks/stats_overhead.py --child
[--jit auto|true|false] ...` runs one backend in this process and prints its tables.

`--rounds` and `--steps` override the per-workload defaults (MLP: 6 rounds of 50 steps,
CNN: 5 rounds of 50 steps, ResNet50: 3 rounds of 10 steps; 3 epochs per `fit`); `--quick`
is a smoke test. `resnet50` (`keras.applications.ResNet50(weights=None)` at 64x64x3,
batch 16) is optional: slow, and not part of `both`.

Two more measures. `every batch (first fold)` runs the fold as it was before issue 18
(`benchmarks/_first_fold.py`, which counts every histogram: compare it with `every
batch, all histograms`) in the same rounds, so the effect of the fold alone is
measured under the same load; `every batch (keras.ops fold)` runs the package's
`keras.ops` fold where the step would run a native one (TensorFlow graph mode, eager
torch; the same fold elsewhere), so the native fold's effect is measured in the same
rounds too. `every batch (fold nothing)` runs a fold that returns the accumulator as it
was: what the instrumentation around the fold costs (wrappers, accumulators, the host's
record every batch); with `every batch (8 rows)` (the fold's ops on almost no data) it
splits every batch's cost into the instrumentation, the fold's ops and its passes over the
data. `first epoch` is the CPU time of each `fit`'s first epoch,
which includes tracing and compiling the train function (every `fit` retraces, with or
without the callback), as a ratio to plain `fit`'s first epoch.
"""

import json
import os
import subprocess
import sys


# -- driver: one subprocess per backend, one table (no Keras imported here) --------------
def _driver(argv):
    import argparse

    parser = argparse.ArgumentParser(description="runs one subprocess per backend")
    parser.add_argument("--backends", default="tensorflow,jax,torch",
                        help="comma-separated: tensorflow, tf-jit, jax, torch")
    parser.add_argument("--jobs", type=int, default=1, help="subprocesses at a time")
    known, rest = parser.parse_known_args(argv)
    backends = [b.strip() for b in known.backends.split(",") if b.strip()]
    allowed = ("tensorflow", "tf-jit", "jax", "torch")
    for backend in backends:
        if backend not in allowed:
            parser.error(f"--backends: each must be one of {', '.join(allowed)}; got {backend!r}")
    import tempfile

    folder = tempfile.mkdtemp(prefix="stats_overhead_")
    running, results = [], {}

    def start(backend):
        out = os.path.join(folder, f"{backend}.json")
        log = open(os.path.join(folder, f"{backend}.log"), "w")  # noqa: SIM115
        env = {**os.environ, "KERAS_BACKEND": "tensorflow" if backend == "tf-jit" else backend}
        jit = ["--jit", "true"] if backend == "tf-jit" else []
        command = [sys.executable, os.path.abspath(__file__), "--child", "--json", out, *jit,
                   *rest]
        return backend, out, log, subprocess.Popen(command, stdout=log, stderr=log, env=env)

    queue = list(backends)
    while queue or running:
        while queue and len(running) < max(1, known.jobs):
            running.append(start(queue.pop(0)))
        for item in list(running):
            backend, out, log, process = item
            if process.poll() is None:
                continue
            running.remove(item)
            log.close()
            if process.returncode != 0 or not os.path.exists(out):
                print(f"{backend}: failed (exit {process.returncode}); log {log.name}")
                continue
            with open(out) as handle:
                results[backend] = json.load(handle)
            print(f"{backend}: done ({results[backend]['versions']}; log {log.name})",
                  file=sys.stderr)
        import time as _time

        _time.sleep(2)
    _print_combined(results)


def _print_combined(results):
    columns = [(backend, workload) for backend, result in results.items()
               for workload in result["workloads"]]
    if not columns:
        return
    print("\n## CPU-time ratio to plain `fit` (median over interleaved rounds), one thread\n")
    print("| configuration | " + " | ".join(f"{b} {w}" for b, w in columns) + " |")
    print("|---|" + "---|" * len(columns))
    configs = []
    for backend, workload in columns:
        for config in results[backend]["workloads"][workload]["ratio"]:
            if config not in configs:
                configs.append(config)
    for config in configs:
        cells = []
        for backend, workload in columns:
            ratio = results[backend]["workloads"][workload]["ratio"].get(config)
            cells.append("" if ratio is None else f"{ratio:.2f}")
        print(f"| {config} | " + " | ".join(cells) + " |")
    for config in configs:
        cells = []
        for backend, workload in columns:
            ratio = results[backend]["workloads"][workload]["first_epoch"].get(config)
            cells.append("" if ratio is None else f"{ratio:.2f}")
        if config != "plain" and any(cells):
            print(f"| {config}: first epoch (trace) | " + " | ".join(cells) + " |")
    cells = []
    for backend, workload in columns:
        entry = results[backend]["workloads"][workload]
        cells.append(f"{entry['plain_ms_cpu']:.0f}")
    print("| plain fit, ms/step CPU | " + " | ".join(cells) + " |")
    loads = ", ".join(f"{b}: " + "/".join(f"{v:.1f}" for v in r["load"])
                      for b, r in results.items())
    print(f"\nload average at the end of each backend's run: {loads}")


if __name__ == "__main__" and "--child" not in sys.argv[1:]:
    _driver(sys.argv[1:])
    sys.exit(0)

# Pin every backend to one thread before any of them is imported (see the docstring).
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["TF_NUM_INTRAOP_THREADS"] = "1"
os.environ["TF_NUM_INTEROP_THREADS"] = "1"
_XLA_PIN = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
if _XLA_PIN not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _XLA_PIN).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import contextlib
import gc
import platform
import random
import statistics
import time
import warnings

import keras
import numpy as np

BACKEND = keras.backend.backend()
if BACKEND == "tensorflow":
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
elif BACKEND == "torch":
    import torch

    torch.set_num_threads(1)
    with contextlib.suppress(RuntimeError):  # already set by an earlier import
        torch.set_num_interop_threads(1)

from keras_initkit.callbacks import ActivationStats, ActivationStatsWarning
from keras_initkit.stats import accumulator, instrument

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _first_fold import reference_fold

CURRENT_FOLD_FOR = instrument.fold_for

SEED = 0
GOALS = {"default": 1.03, "every batch": 1.15}


# -- workloads ----------------------------------------------------------------------------
def build_mlp():
    inputs = keras.Input((500,))
    x = inputs
    for _ in range(10):
        x = keras.layers.Dense(500, activation="tanh")(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="mlp")


def build_cnn():
    inputs = keras.Input((28, 28, 1))
    x = inputs
    for i, channels in enumerate((16, 16, 32, 32, 64, 64)):
        x = keras.layers.Conv2D(channels, 3, padding="same", activation="relu")(x)
        if i in (1, 3):
            x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="cnn")


def build_resnet50():
    return keras.applications.ResNet50(
        weights=None, input_shape=(64, 64, 3), classes=10, classifier_activation="softmax"
    )


# name: (builder, input shape, batch size, default rounds, default steps per epoch)
WORKLOADS = {
    "mlp": (build_mlp, (500,), 256, 6, 50),
    "cnn": (build_cnn, (28, 28, 1), 64, 5, 50),
    "resnet50": (build_resnet50, (64, 64, 3), 16, 3, 10),
}


# -- the probe-model callback (the usual hand-written approach) ---------------------------
_PROBE_RANGES = {
    "tanh": (-1.0, 1.0),
    "sigmoid": (0.0, 1.0),
    "softmax": (0.0, 1.0),
    "relu": (0.0, 5.0),
}


def watched_layers(model):
    """Layers with a non-linear `activation=` (what `ActivationStats()` watches here)."""
    return [
        layer
        for layer in model.layers
        if getattr(layer, "activation", None) is not None
        and getattr(layer.activation, "__name__", "linear") != "linear"
    ]


class ProbeStats(keras.callbacks.Callback):
    """Every `every` batches, runs a probe model on a fixed batch; stats in NumPy."""

    def __init__(self, every, sample, bins=50):
        super().__init__()
        self.every, self.sample, self.bins = every, [sample], bins  # as model.inputs
        self.probe = None
        self.records = 0

    def on_train_begin(self, logs=None):
        if self.probe is None:  # built once, reused by every later fit
            model = self.model
            layers = watched_layers(model)
            self.probe = keras.Model(model.inputs, [layer.output for layer in layers])
            self.ranges = [
                _PROBE_RANGES.get(layer.activation.__name__, (-5.0, 5.0))
                for layer in layers
            ]

    def on_train_batch_end(self, batch, logs=None):
        if (batch + 1) % self.every:
            return
        self.model  # noqa: B018 - on JAX this syncs the state; the probe fails otherwise
        outputs = self.probe.predict_on_batch(self.sample)
        stats = []
        for output, value_range in zip(outputs, self.ranges, strict=True):
            values = np.asarray(output, dtype="float32")
            counts, _ = np.histogram(values, bins=self.bins, range=value_range)
            stats.append(
                (values.mean(), values.std(), values.min(), values.max(), counts)
            )
        self.last = stats
        self.records += 1


# -- timing -------------------------------------------------------------------------------
class EpochTimer:
    """Two callbacks: `start` goes first in the list, `end` last, so an epoch's time
    includes every other callback's epoch hooks."""

    def __init__(self):
        timer = self
        self.epochs = []

        class Start(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                timer._begin = (time.process_time(), time.perf_counter())

        class End(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                # The logs were converted to floats by the CallbackList: the epoch's
                # computation is done (JAX and torch dispatch asynchronously).
                cpu, wall = time.process_time(), time.perf_counter()
                timer.epochs.append((cpu - timer._begin[0], wall - timer._begin[1]))

        self.start, self.end = Start(), End()


CONFIGS = {
    "plain": lambda sample: None,
    "default": lambda sample: ActivationStats(),
    "every batch": lambda sample: ActivationStats(every=1, batches_per_record="all"),
    "every batch (all histograms)": lambda sample: ActivationStats(
        every=1, batches_per_record="all", histogram_every=1
    ),
    "every batch (8 rows)": lambda sample: ActivationStats(
        every=1, batches_per_record="all", max_rows=8
    ),
    "every batch (first fold)": lambda sample: ActivationStats(
        every=1, batches_per_record="all", histogram_every=1  # it counts them all
    ),
    "every batch (keras.ops fold)": lambda sample: ActivationStats(
        every=1, batches_per_record="all"
    ),
    "every batch (fold nothing)": lambda sample: ActivationStats(
        every=1, batches_per_record="all"
    ),
    "probe@50": lambda sample: ProbeStats(50, sample),
    "probe@1": lambda sample: ProbeStats(1, sample),
}
# Configurations that run another fold than the package's (swapped in around their fit):
# the first fold, and the current `keras.ops` fold where the backend has a native one.
FOLDS = {
    "every batch (first fold)": reference_fold,
    "every batch (keras.ops fold)": accumulator.fold,
    "every batch (fold nothing)": lambda state, x, layout, histogram=None: state,
}


def run_workload(
    name, rounds, steps, epochs, jit, configs=CONFIGS, seed=SEED, log=print
):
    """Returns {config: {"cpu": [ratio per round], "wall": [...], "ms": [...]}}, callbacks."""
    builder, shape, batch, _, _ = WORKLOADS[name]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((steps * batch, *shape)).astype("float32")
    y = rng.integers(0, 10, size=(steps * batch,)).astype("int32")
    sample = x[:batch]

    keras.utils.set_random_seed(seed)
    reference = builder().get_weights()
    models, callbacks = {}, {}
    for config, factory in configs.items():
        model = builder()
        model.set_weights(reference)
        model.compile(
            optimizer=keras.optimizers.SGD(),
            loss="sparse_categorical_crossentropy",
            jit_compile=jit,
        )
        models[config], callbacks[config] = model, factory(sample)

    order = list(configs)
    shuffler = random.Random(seed)
    per_round = {
        config: [] for config in configs
    }  # [(cpu s/step, wall s/step)] per round
    started = time.perf_counter()
    for round_index in range(rounds):
        shuffler.shuffle(order)
        for config in order:
            timer = EpochTimer()
            extra = [] if callbacks[config] is None else [callbacks[config]]
            gc.collect()
            if config in FOLDS:
                instrument.fold_for = lambda jit_compile=False, f=FOLDS[config]: f
            models[config].fit(
                x,
                y,
                batch_size=batch,
                epochs=epochs,
                shuffle=False,
                verbose=0,
                callbacks=[timer.start, *extra, timer.end],
            )
            instrument.fold_for = CURRENT_FOLD_FOR
            timed = timer.epochs[1:]  # the first epoch traces and compiles
            per_round[config].append(
                (
                    statistics.median(c for c, _ in timed) / steps,
                    statistics.median(w for _, w in timed) / steps,
                    timer.epochs[0][0],
                )
            )
        log(
            f"  {name}: round {round_index + 1}/{rounds} done "
            f"({time.perf_counter() - started:.0f} s, load {os.getloadavg()[0]:.2f})",
            file=sys.stderr,
        )

    results = {}
    for config in configs:
        pairs = list(zip(per_round[config], per_round["plain"], strict=True))
        results[config] = {
            "cpu": [c / p[0] for (c, _, _), p in pairs],
            "wall": [w / p[1] for (_, w, _), p in pairs],
            "first_epoch": [f / p[2] for (_, _, f), p in pairs],
            "ms_cpu": 1e3 * statistics.median(c for c, _, _ in per_round[config]),
            "ms_wall": 1e3 * statistics.median(w for _, w, _ in per_round[config]),
        }
    results["_jit"] = models["plain"].jit_compile
    results["_seconds"] = time.perf_counter() - started
    results["_load"] = os.getloadavg()
    return results, callbacks


# -- report -------------------------------------------------------------------------------
def summary(ratios):
    q1, q3 = np.percentile(ratios, [25, 75])
    return statistics.median(ratios), q1, q3


def cell(result):
    cpu, q1, q3 = summary(result["cpu"])
    wall = statistics.median(result["wall"])
    return f"{cpu:.3f} [{q1:.3f}–{q3:.3f}] / {wall:.3f}"


def backend_versions():
    versions = [
        f"keras {keras.__version__}",
        f"numpy {np.__version__}",
        f"python {platform.python_version()}",
    ]
    if BACKEND == "tensorflow":
        versions.insert(1, f"tensorflow {tf.__version__}")
    elif BACKEND == "jax":
        import jax

        versions.insert(1, f"jax {jax.__version__} ({jax.default_backend()})")
    elif BACKEND == "torch":
        versions.insert(
            1, f"torch {torch.__version__} (threads {torch.get_num_threads()})"
        )
    return ", ".join(versions)


def parse_jit(value):
    lowered = value.lower()
    if lowered == "auto":
        return "auto"
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(
        f"--jit must be auto, true or false; got {value!r}"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help="run one backend here")
    parser.add_argument("--json", help="also write the medians to this JSON file")
    parser.add_argument(
        "--workload",
        default="both",
        help="comma-separated mlp, cnn, resnet50; both = mlp,cnn; all = the three",
    )
    parser.add_argument(
        "--configs",
        help="comma-separated configurations (default: all); plain is always run",
    )
    parser.add_argument("--rounds", type=int, help="rounds (default: mlp 6, cnn 5)")
    parser.add_argument("--steps", type=int, help="steps per epoch (default: 50)")
    parser.add_argument(
        "--epochs",
        type=int,
        default=3,
        help="epochs per fit; the first is discarded (default: 3)",
    )
    parser.add_argument(
        "--jit",
        type=parse_jit,
        default="auto",
        help="jit_compile for model.compile: auto, true or false",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 2 rounds of 10 steps, 2 epochs per fit (probe@50 never fires)",
    )
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is not timed)")
    warnings.simplefilter(
        "ignore", ActivationStatsWarning
    )  # diagnoses are not the point

    aliases = {"both": "mlp,cnn", "all": "mlp,cnn,resnet50"}
    names = aliases.get(args.workload, args.workload).split(",")
    for name in names:
        if name not in WORKLOADS:
            parser.error(f"--workload: each must be one of {', '.join(WORKLOADS)}; got {name!r}")
    configs = dict(CONFIGS)
    if args.configs:
        wanted = ["plain", *(c.strip() for c in args.configs.split(",") if c.strip())]
        for config in wanted:
            if config not in CONFIGS:
                parser.error(f"--configs: each must be one of {', '.join(CONFIGS)}; got "
                             f"{config!r}")
        configs = {c: CONFIGS[c] for c in CONFIGS if c in wanted}
    print(f"backend: {BACKEND}; {backend_versions()}")
    print(
        f"threads pinned to 1 (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, "
        f"XLA_FLAGS={os.environ['XLA_FLAGS']!r}); jit_compile={args.jit!r}"
    )
    all_results, all_callbacks = {}, {}
    for name in names:
        _, _, batch, rounds, steps = WORKLOADS[name]
        rounds, steps, epochs = args.rounds or rounds, args.steps or steps, args.epochs
        if args.quick:
            rounds, steps, epochs = 2, 10, 2
        results, callbacks = run_workload(name, rounds, steps, epochs, args.jit, configs)
        all_results[name], all_callbacks[name] = results, callbacks
        plain = results["plain"]
        print(
            f"\n## {name}: batch {batch}, {rounds} rounds x {epochs} epochs x {steps} steps "
            f"(first epoch of each fit not timed), jit_compile resolved to "
            f"{results['_jit']!r}, {results['_seconds']:.0f} s, load average at the end "
            + "/".join(f"{v:.2f}" for v in results["_load"])
        )
        print(
            f"plain fit: {plain['ms_cpu']:.1f} ms/step CPU, {plain['ms_wall']:.1f} ms/step "
            "wall (median over rounds)"
        )
        print("| config | ms/step cpu | ms/step wall | cpu ratio per round |")
        print("|---|---|---|---|")
        for config in configs:
            result = results[config]
            rounds_text = " ".join(f"{r:.3f}" for r in result["cpu"])
            print(
                f"| {config} | {result['ms_cpu']:.1f} | {result['ms_wall']:.1f} | "
                f"{rounds_text} |"
            )

    print(
        "\n## Ratio to plain fit: cpu-ratio [IQR] / wall-ratio "
        f"(backend {BACKEND}, median over rounds)\n"
    )
    print("| config | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for config in configs:
        if config == "plain":
            continue
        print(
            f"| {config} | "
            + " | ".join(cell(all_results[n][config]) for n in names)
            + " |"
        )

    label = "" if BACKEND == "tensorflow" else " (the goals are set for the TF backend)"
    print(f"\n## Goals, on CPU-time ratios{label}")
    for name in names:
        results = all_results[name]
        med = {config: summary(results[config]["cpu"])[0] for config in configs}
        for config, bound in GOALS.items():
            if config not in med:
                continue
            gap = med[config] - bound
            verdict = f"met by {-gap:.3f}" if gap <= 0 else f"missed by {gap:.3f}"
            print(f"{name}: {config} ≤ {bound:.2f}: {verdict} ({med[config]:.3f})")
        for ours, probe in (("default", "probe@50"), ("every batch", "probe@1")):
            if ours not in med or probe not in med:
                continue
            better = med[ours] < med[probe]
            print(
                f"{name}: {ours} better than {probe}: {'yes' if better else 'no'} "
                f"({med[ours]:.3f} vs {med[probe]:.3f})"
            )

    if args.json:
        payload = {
            "backend": BACKEND,
            "versions": backend_versions(),
            "load": list(os.getloadavg()),
            "workloads": {
                name: {
                    "jit": all_results[name]["_jit"],
                    "plain_ms_cpu": all_results[name]["plain"]["ms_cpu"],
                    "ratio": {
                        c: summary(all_results[name][c]["cpu"])[0] for c in configs
                    },
                    "first_epoch": {
                        c: statistics.median(all_results[name][c]["first_epoch"])
                        for c in configs
                    },
                }
                for name in names
            },
        }
        with open(args.json, "w") as handle:
            json.dump(payload, handle, indent=1)

    print("\n## Records")
    for name in names:
        for config, callback in all_callbacks[name].items():
            if isinstance(callback, ActivationStats):
                records = callback.records
                assert len(records) > 0, f"{name}/{config} recorded nothing"
                reads = len({(r.fit, r.step) for r in records})
                layers = len({r.layer for r in records})
                fits = len({r.fit for r in records})
                print(
                    f"{name}: {config}: {len(records)} records ({reads} reads x {layers} "
                    f"layers) over {fits} fits"
                )
            elif isinstance(callback, ProbeStats):
                print(f"{name}: {config}: {callback.records} probe runs")


if __name__ == "__main__":
    main()
