"""Long-run cost of `ActivationStats(every=1, log_dir=...)`: constant per record, bounded memory.

Trains a small MLP (3 watched layers) for `--steps` steps of batch 8, once with
`log_dir` and once without, in one process, and prints:

- the time to write one read's records (CSV + JSON Lines + TensorBoard), median over the
  first and the last 500 reads, and their ratio (acceptance: end within 1.5x of start);
- the wall time of the fit with `log_dir` over the fit without (acceptance: within 1.3x);
- RSS growth over the run with `log_dir` (acceptance: < 50 MB).

Usage: python benchmarks/long_run.py [--steps 20000] [--backend tensorflow]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


def rss_mb() -> float:
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"))
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = args.backend
    import keras
    import numpy as np

    from keras_initkit.callbacks import ActivationStats

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.steps * 8, 32)).astype("float32")
    y = rng.normal(size=(args.steps * 8, 1)).astype("float32")

    def run(log_dir: str | None) -> tuple[float, list[float], float, float]:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((32,))]
                                 + [keras.layers.Dense(32, "tanh") for _ in range(3)]
                                 + [keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(1e-3), "mse")
        model.fit(x[:64], y[:64], batch_size=8, verbose=0)  # compile outside the timing
        stats = ActivationStats(every=1, log_dir=log_dir, warn=False)
        writes: list[float] = []

        class TimeWrites(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                sinks = stats._sinks
                if sinks is not None and "write" not in vars(sinks):
                    write = sinks.write

                    def timed(*a, **k):
                        start = time.perf_counter()
                        write(*a, **k)
                        writes.append(time.perf_counter() - start)

                    sinks.write = timed

        rss0 = rss_mb()
        start = time.perf_counter()
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False,
                  callbacks=[stats, TimeWrites()])
        wall = time.perf_counter() - start
        return wall, writes, rss0, rss_mb()

    with tempfile.TemporaryDirectory() as folder:
        plain_wall, _, _, _ = run(None)
        wall, writes, rss0, rss1 = run(folder)
        size = sum(os.path.getsize(os.path.join(d, f))
                   for d, _, files in os.walk(folder) for f in files)
    head, tail = np.median(writes[:500]) * 1e3, np.median(writes[-500:]) * 1e3
    print(f"backend {args.backend}, {args.steps} steps, every=1, 3 watched layers")
    print(f"per-read write time: first 500 reads {head:.3f} ms, last 500 {tail:.3f} ms, "
          f"ratio {tail / head:.2f} (acceptance <= 1.5)")
    print(f"wall time: with log_dir {wall:.1f} s, without {plain_wall:.1f} s, ratio "
          f"{wall / plain_wall:.2f} (acceptance <= 1.3)")
    print(f"RSS: {rss0:.0f} MB -> {rss1:.0f} MB, growth {rss1 - rss0:.1f} MB "
          f"(acceptance < 50); files written {size / 1e6:.1f} MB")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
