"""Time keras_initkit's initializers against Keras's own, side by side in one run.

Prints, for each pair, the median time per call of each and their ratio (ours / Keras).
Calls are interleaved (ours, Keras, ours, ...) and repeated so machine noise hits both
alike; the first call of each is a warm-up and is not timed.

    python benchmarks/initializer_overhead.py [--repeats 15]
"""

import argparse
import statistics
import time

import keras

from keras_initkit import initializers as ki

PAIRS = [
    ("HeNormal", ki.HeNormal, keras.initializers.HeNormal),
    ("GlorotUniform", ki.GlorotUniform, keras.initializers.GlorotUniform),
    ("LecunNormal", ki.LecunNormal, keras.initializers.LecunNormal),
    ("Orthogonal", ki.Orthogonal, keras.initializers.Orthogonal),
]
SHAPES = [(1024, 1024), (3, 3, 256, 256)]


def timed_call(init, shape):
    start = time.perf_counter()
    keras.ops.convert_to_numpy(init(shape))  # forces the computation on every backend
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print(f"backend: {keras.backend.backend()}, repeats: {args.repeats}")
    print(f"{'initializer':<14} {'shape':<18} {'ours ms':>9} {'keras ms':>9} {'ratio':>7}")
    for name, ours_cls, keras_cls in PAIRS:
        for shape in SHAPES:
            ours = ours_cls(seed=keras.random.SeedGenerator(1))
            theirs = keras_cls(seed=keras.random.SeedGenerator(1))
            timed_call(ours, shape), timed_call(theirs, shape)  # warm-up
            ours_times, keras_times = [], []
            for _ in range(args.repeats):
                ours_times.append(timed_call(ours, shape))
                keras_times.append(timed_call(theirs, shape))
            a, b = statistics.median(ours_times), statistics.median(keras_times)
            print(f"{name:<14} {str(shape):<18} {a * 1e3:9.2f} {b * 1e3:9.2f} {a / b:7.2f}")


if __name__ == "__main__":
    main()
