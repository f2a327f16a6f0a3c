# ruff: noqa: E402 - the thread pins must be set before any backend is imported
"""Trace and compile cost of `ActivationStats(every=1)`: the first `fit` and the second.

    KERAS_BACKEND=tensorflow python benchmarks/trace_cost.py [--models ResNet50,DenseNet121]
        [--repeats R]

For each model (`keras.applications` with `weights=None` at 32x32x3, 10 classes, SGD,
4 images, batch 2: two steps per `fit`, so the time is nearly all tracing and compiling)
and each configuration, a fresh subprocess builds the model and times two `fit` calls,
each with the configuration's callbacks (process CPU time, one intra-op thread):

- `plain`: no callback (the second `fit` reuses the compiled step);
- `stats`: `ActivationStats(every=1)` with the step's fold (`accumulator.fold_for()`);
- `stats (keras.ops fold)`: the same with `KERAS_INITKIT_FOLD=keras_ops`;
- `stats (all histograms)`: `ActivationStats(every=1, histogram_every=1)`: one fold per
  layer, where `stats` (`histogram_every=10`) has two, with and without the histogram,
  under an `ops.cond`.

The configurations run in turn, `--repeats` times, interleaved; the table shows the median
seconds and the ratio to plain `fit`'s first call. A callback instance installs its
instrumentation when training begins and removes it when training ends, so every `fit`
with it traces the step again (README, "Trace and compile cost").
"""

import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["TF_NUM_INTRAOP_THREADS"] = "1"
os.environ["TF_NUM_INTEROP_THREADS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse
import json
import statistics
import subprocess
import sys

CONFIGS = {
    "plain": {},
    "stats": {},
    "stats (keras.ops fold)": {"KERAS_INITKIT_FOLD": "keras_ops"},
    "stats (all histograms)": {},
}

CHILD = """
import json, sys, time
import keras, numpy as np
import keras_initkit
name, config = sys.argv[1], sys.argv[2]
keras.utils.set_random_seed(0)
model = getattr(keras.applications, name)(weights=None, input_shape=(32, 32, 3), classes=10)
model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="sparse_categorical_crossentropy")
rng = np.random.default_rng(0)
x, y = rng.standard_normal((4, 32, 32, 3)).astype("float32"), rng.integers(0, 10, 4)
callbacks = [] if config == "plain" else [
    keras_initkit.callbacks.ActivationStats(
        every=1, warn=False, histogram_every=1 if "all histograms" in config else 10)]
times = []
for _ in range(2):
    start = time.process_time()
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=callbacks)
    times.append(time.process_time() - start)
print(json.dumps(times))
"""


def _run(name: str, config: str) -> list[float]:
    env = dict(os.environ, **CONFIGS[config])
    done = subprocess.run([sys.executable, "-c", CHILD, name, config], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name} {config} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="ResNet50,DenseNet121")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    import keras

    print(f"backend: {keras.backend.backend()}, keras {keras.__version__}, one thread")
    print("| model | configuration | first fit, s CPU | ratio | second fit, s CPU | ratio |")
    print("|---|---|---|---|---|---|")
    for name in args.models.split(","):
        times: dict[str, list[list[float]]] = {config: [] for config in CONFIGS}
        for _ in range(args.repeats):
            for config in CONFIGS:
                times[config].append(_run(name, config))
        plain = statistics.median(t[0] for t in times["plain"])
        for config, runs in times.items():
            first = statistics.median(t[0] for t in runs)
            second = statistics.median(t[1] for t in runs)
            print(f"| {name} | {config} | {first:.1f} | {first / plain:.2f} | "
                  f"{second:.1f} | {second / plain:.2f} |", flush=True)


if __name__ == "__main__":
    main()
