"""`ActivationStats` under data parallelism: global statistics, equal to one device's.

Each scenario runs `distributed_stats_run.py` twice in fresh processes, at the same time:
once on one device (the reference) and once over two replicas, with the same fixed
weights (never updated: SGD with learning rate 0) and the same data (4 batches of 32,
unshuffled, a record every 2 batches folding all of them). The records must agree: the
same layers and steps, the global `count` (not one replica's), the moments, extremes and
fractions within float32 round-off, the dead units and the histogram counts exactly.

- TensorFlow: `tf.distribute.MirroredStrategy` over two logical CPU devices. Logical
  devices must be configured before TensorFlow initializes, hence the subprocesses.
- JAX: `keras.distribution.DataParallel` over two CPU devices
  (`XLA_FLAGS=--xla_force_host_platform_device_count=2`).

The subprocesses pick their own backend, so the outcome does not depend on this
session's KERAS_BACKEND. To run each scenario once when CI runs the suite on every
backend, the TensorFlow scenario runs only in a TensorFlow session (the default) and the
JAX scenario only in a JAX session; on torch both are skipped. A scenario is also skipped
when its backend package is not installed.
"""

import math
from pathlib import Path

import pytest
from _two_device_runs import REPLICAS, needs, run_both

SCRIPT = Path(__file__).with_name("distributed_stats_run.py")
RECORDS = 6  # 2 records (steps 2 and 4) x 3 watched layers (tanh, relu, softmax)
REL_TOL = 1e-5  # float32 sums taken in a different order
ABS_TOL = 1e-7  # for values near zero (float32 resolution at 1)
CLOSE = ("mean", "std", "min", "max", "zero_fraction", "saturated_fraction")
EXACT = ("count", "dead_units", "units", "nan_count", "inf_count", "batches")


@pytest.fixture(scope="module")
def tensorflow_runs():
    needs("tensorflow")
    return run_both(SCRIPT, "tensorflow")


@pytest.fixture(scope="module")
def jax_runs():
    needs("jax")
    return run_both(SCRIPT, "jax")


def _check_setup(single, distributed):
    assert single["replicas"] == 1
    assert distributed["replicas"] == REPLICAS, distributed["replicas"]
    assert single["weights_checksum"] == distributed["weights_checksum"]
    assert single["weights_unchanged"] and distributed["weights_unchanged"]


def _assert_same_records(reference, records):
    assert len(records) == len(reference) == RECORDS, (len(reference), len(records))
    for ref, rec in zip(reference, records, strict=True):
        where = f"{ref['layer']} at step {ref['step']}"
        for key in ("fit", "epoch", "batch", "step", "layer", "activation"):
            assert rec[key] == ref[key], (where, key, ref[key], rec[key])
        for name in EXACT:
            assert rec["stats"][name] == ref["stats"][name], (where, name, ref, rec)
        for name in CLOSE:
            expected, actual = ref["stats"][name], rec["stats"][name]
            if expected is None or actual is None:  # NaN: no bound to saturate
                assert expected is None and actual is None, (where, name, expected, actual)
                continue
            assert math.isclose(actual, expected, rel_tol=REL_TOL, abs_tol=ABS_TOL), (
                where,
                name,
                expected,
                actual,
            )
        assert rec["histogram"]["edges"] == ref["histogram"]["edges"], where
        assert rec["histogram"]["counts"] == ref["histogram"]["counts"], (
            where,
            ref["histogram"]["counts"],
            rec["histogram"]["counts"],
        )
        assert sum(rec["histogram"]["counts"]) == rec["stats"]["count"], where


def _assert_meaningful(records):
    """The data exercise every merged statistic: saturation, zeros, dead units, spread."""
    by_layer = {r["layer"]: r["stats"] for r in records}
    assert set(by_layer) == {"tanh", "relu", "softmax"}
    assert by_layer["tanh"]["count"] == 2 * 32 * 16  # two batches of 32 rows, 16 units
    assert by_layer["tanh"]["saturated_fraction"] > 0.05
    assert by_layer["relu"]["zero_fraction"] > 0.25
    assert by_layer["relu"]["dead_units"] == 4
    assert by_layer["softmax"]["std"] > 0.05


def test_tensorflow_mirrored_strategy_matches_one_device(tensorflow_runs):
    single, distributed = tensorflow_runs
    _check_setup(single, distributed)
    # Each replica folded its own half of every batch (16 of 32 rows x 16 units x 2
    # batches); the record merges them on the host.
    assert distributed["probe"]["local_counts"] == [512.0, 512.0]
    assert single["probe"]["local_counts"] == [1024.0]
    _assert_meaningful(single["records"]["all_rows"])
    _assert_same_records(single["records"]["all_rows"], distributed["records"]["all_rows"])


def test_jax_data_parallel_matches_one_device(jax_runs):
    single, distributed = jax_runs
    _check_setup(single, distributed)
    assert distributed["device_count"] == REPLICAS
    # One accumulator, replicated over both devices, holding the global statistics.
    assert distributed["probe"] == {"local_counts": [1024.0], "accumulator_devices": REPLICAS}
    _assert_meaningful(single["records"]["all_rows"])
    _assert_same_records(single["records"]["all_rows"], distributed["records"]["all_rows"])


def test_tensorflow_mirrored_strategy_max_rows_counts_per_replica(tensorflow_runs):
    # Documented: under tf.distribute each replica folds the first max_rows rows of its
    # own share of the batch (no cross-replica collective in the step for it).
    single, distributed = tensorflow_runs
    _check_setup(single, distributed)
    rows = zip(single["records"]["max_rows"], distributed["records"]["max_rows"], strict=True)
    for one, two in rows:
        assert two["stats"]["count"] == REPLICAS * one["stats"]["count"]


def test_jax_data_parallel_max_rows_matches_one_device(jax_runs):
    single, distributed = jax_runs
    _check_setup(single, distributed)
    records = single["records"]["max_rows"]
    assert records[0]["stats"]["count"] == 2 * 5 * 16  # two batches of 5 rows, 16 units
    _assert_same_records(records, distributed["records"]["max_rows"])
