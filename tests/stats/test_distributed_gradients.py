"""`GradientStats` under data parallelism: global gradients, equal to one device's.

Each scenario runs `distributed_gradients_run.py` twice in fresh processes, at the same
time: once on one device and once over two replicas, on the same weights and data (two
global batches of 32, SGD with momentum, a record every step). The first record's
gradient norms must equal the norm of dL/dW computed by the backend's own autodiff on
the whole global batch (not one replica's half), its update norms the weight change of
the first step, and every record of the two-replica run the single-device run's.

- TensorFlow: `tf.distribute.MirroredStrategy` over two logical CPU devices (configured
  before TensorFlow initializes, hence the subprocesses). Keras clips each replica's
  gradient before summing them, so a clipping optimizer is refused with a clear error.
- JAX: `keras.distribution.DataParallel` over two CPU devices
  (`XLA_FLAGS=--xla_force_host_platform_device_count=2`).

As in `test_distributed_stats.py`, the TensorFlow scenario runs in TensorFlow sessions
only and the JAX scenario in JAX sessions only; on torch both are skipped.
"""

import math
from pathlib import Path

import pytest
from _two_device_runs import needs, run_both

SCRIPT = Path(__file__).with_name("distributed_gradients_run.py")
REL = 1e-5  # float32 sums over a few hundred elements, taken in another order
ABS = 1e-7  # for means near zero (the softmax bias gradient sums to 0): float32 round-off
STATISTICS = ("gradient_norm", "gradient_rms", "gradient_mean", "gradient_max_abs",
              "weight_norm", "update_norm", "update_ratio")


@pytest.fixture(scope="module")
def tensorflow_runs():
    needs("tensorflow")
    return run_both(SCRIPT, "tensorflow")


@pytest.fixture(scope="module")
def jax_runs():
    needs("jax")
    return run_both(SCRIPT, "jax")


def _path(result, record):
    suffix = f"{record['layer']}/{record['variable']}"
    (path,) = [p for p in result["paths"] if p.endswith(suffix)]
    return path


def _assert_global(result):
    records = [r for r in result["records"] if r["step"] == 1]
    assert len(records) == len(result["paths"]) == 6
    for record in records:
        path = _path(result, record)
        stats = record["stats"]
        assert math.isclose(stats["gradient_norm"], result["reference_norms"][path],
                            rel_tol=REL), (path, stats, result["reference_norms"])
        assert math.isclose(stats["update_norm"], result["first_step_change"][path],
                            rel_tol=REL), (path, stats, result["first_step_change"])


def _assert_same_records(single, distributed):
    assert len(single["records"]) == len(distributed["records"]) == 12  # 2 steps x 6
    pairs = zip(single["records"], distributed["records"], strict=True)
    for one, two in pairs:
        where = (one["step"], one["layer"], one["variable"])
        assert where == (two["step"], two["layer"], two["variable"])
        for name in STATISTICS:
            assert math.isclose(two["stats"][name], one["stats"][name], rel_tol=REL,
                                abs_tol=ABS), (where, name, one["stats"], two["stats"])
        # A gradient on a bin edge may fall on either side after another summation
        # order: the histograms may differ by a value moved to a neighbouring bin.
        assert sum(one["counts"]) == sum(two["counts"]), where
        moved = sum(abs(a - b) for a, b in zip(one["counts"], two["counts"], strict=True))
        assert moved <= 2, (where, one["counts"], two["counts"])


def test_tensorflow_mirrored_strategy_records_the_global_gradients(tensorflow_runs):
    single, distributed = tensorflow_runs
    assert (single["replicas"], distributed["replicas"]) == (1, 2)
    _assert_global(single)
    _assert_global(distributed)
    _assert_same_records(single, distributed)


def test_tensorflow_mirrored_strategy_refuses_clipping_by_name(tensorflow_runs):
    _, distributed = tensorflow_runs
    message = distributed["refused"]
    assert message is not None
    assert "2 replicas" in message and "clipnorm=1.0" in message
    assert "without clipping, gradient accumulation or loss scaling" in message


def test_jax_data_parallel_records_the_global_gradients(jax_runs):
    single, distributed = jax_runs
    assert (single["replicas"], distributed["replicas"]) == (1, 2)
    assert distributed["accumulator_devices"] == 2  # replicated over both devices
    _assert_global(single)
    _assert_global(distributed)
    _assert_same_records(single, distributed)
