"""`histogram_every` of `ActivationStats` and `GradientStats`: histograms in some records,
every statistic in all.

Counting a histogram is the costliest part of a fold (a serial loop over every value), so
with `every` below `histogram_every` only the first window of each epoch and then one
window in `histogram_every` steps count one; the other records carry every other
statistic, equal to a run that counts all histograms, and `counts=None`. The outputs
(JSON, JSON Lines, TensorBoard, plots) take records without a histogram.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import keras_initkit
from keras_initkit.callbacks import ActivationStats, GradientStats
from keras_initkit.stats import gradient_output, instrument

BACKEND = keras.backend.backend()
STEPS = 13  # per epoch: 104 rows, batch 8


def _model():
    return keras.Sequential([
        keras.Input((12,)),
        keras.layers.Dense(16, "tanh", name="tanh"),
        keras.layers.Dense(16, "relu", name="relu"),
        keras.layers.Dense(3, "softmax", name="out"),
    ])


def _fit(epochs=2, callback=ActivationStats, jit_compile="auto", **settings):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8 * STEPS, 12)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, 8 * STEPS)]
    keras.utils.set_random_seed(1)
    model = _model()
    model.compile(optimizer="sgd", loss="categorical_crossentropy", jit_compile=jit_compile)
    stats = callback(warn=False, **settings)
    model.fit(x, y, batch_size=8, epochs=epochs, shuffle=False, verbose=0, callbacks=[stats])
    return stats


def _histogram_steps(stats, layer="relu"):
    return [r.step for r in stats.records if r.layer == layer and r.counts is not None]


def test_every_batch_counts_a_histogram_once_in_histogram_every_steps_and_each_epoch():
    sparse = _fit(every=1, batches_per_record="all", histogram_every=5)
    dense = _fit(every=1, batches_per_record="all", histogram_every=1)
    # epoch 0 begins at step 0: windows beginning at steps 0, 5, 10 (records 1, 6, 11);
    # epoch 1 at step 13: its first window, then 18 and 23 (records 14, 19, 24)
    assert _histogram_steps(sparse) == [1, 6, 11, 14, 19, 24]
    assert _histogram_steps(dense) == list(range(1, 2 * STEPS + 1))
    assert [(r.step, r.layer) for r in sparse.records] == [
        (r.step, r.layer) for r in dense.records]
    for mine, full in zip(sparse.records, dense.records, strict=True):
        assert mine.stats.keys() == full.stats.keys()
        for name, value in mine.stats.items():  # the same training, the same statistics
            assert value == pytest.approx(full.stats[name], rel=1e-5, abs=1e-7, nan_ok=True)
        if mine.counts is not None:
            np.testing.assert_array_equal(mine.counts, full.counts)
            assert mine.counts.sum() == mine.stats["count"]
    with_histogram = sum(r.counts is not None for r in sparse.records)
    assert 0 < with_histogram < len(sparse.records)


def test_one_step_windows_numbered_by_the_step_survive_the_numbers_wrapping(monkeypatch):
    """With `every=1` the step numbers its own windows and the host assigns the control
    vector once per epoch; where the window numbers wrap (every 2**23 windows, here
    every 4) the host assigns it again, with the histogram cadence's phase."""
    full = _fit(every=1, histogram_every=3)
    monkeypatch.setattr(instrument, "_WINDOWS", 4)
    wrapped = _fit(every=1, histogram_every=3)
    # epoch 0: windows at 0, 3, 6, 9, 12; epoch 1 (from step 13): 13, 16, 19, 22, 25
    assert _histogram_steps(wrapped) == [1, 4, 7, 10, 13, 14, 17, 20, 23, 26]
    assert len(wrapped.records) == len(full.records) == 3 * 2 * STEPS
    for mine, reference in zip(wrapped.records, full.records, strict=True):
        assert (mine.step, mine.layer) == (reference.step, reference.layer)
        assert mine.stats["batches"] == 1.0 and mine.stats["count"] == reference.stats["count"]
        for name, value in mine.stats.items():
            assert value == pytest.approx(reference.stats[name], rel=1e-5, abs=1e-7, nan_ok=True)
        if mine.counts is not None:
            np.testing.assert_array_equal(mine.counts, reference.counts)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's XLA-compiled step")
@pytest.mark.parametrize("callback", [ActivationStats, GradientStats])
def test_an_xla_compiled_step_records_the_same(callback):
    """`jit_compile=True` folds with `accumulator.fold` and its in-step histogram flag."""
    sparse = _fit(epochs=1, callback=callback, jit_compile=True, every=1, histogram_every=5)
    dense = _fit(epochs=1, callback=callback, jit_compile=True, every=1, histogram_every=1)
    assert sorted({r.step for r in sparse.records if r.counts is not None}) == [1, 6, 11]
    for mine, full in zip(sparse.records, dense.records, strict=True):
        for name, value in mine.stats.items():
            assert value == pytest.approx(full.stats[name], rel=1e-5, abs=1e-7, nan_ok=True)
        if mine.counts is not None:
            np.testing.assert_array_equal(mine.counts, full.counts)


@pytest.mark.parametrize("every", [10, 4, "epoch"])
def test_windows_at_least_histogram_every_apart_all_count_one(every):
    stats = _fit(every=every, histogram_every=4 if every != 10 else 10)
    assert stats.records and all(r.counts is not None for r in stats.records)


def test_the_default_is_a_histogram_in_every_default_record_and_one_in_10_every_batch():
    assert ActivationStats().histogram_every == 10
    stats = _fit(epochs=1, every=1)
    assert _histogram_steps(stats) == [1, 11]


@pytest.mark.parametrize("value", [0, -1, 2.5, "10", True, None])
def test_histogram_every_must_be_a_positive_int(value):
    with pytest.raises((ValueError, TypeError), match="histogram_every"):
        ActivationStats(histogram_every=value)


def test_files_and_tensorboard_take_records_without_a_histogram(tmp_path):
    stats = _fit(epochs=1, every=1, histogram_every=5, log_dir=tmp_path)
    loaded, _ = keras_initkit.stats.load_json(tmp_path / "activation_stats.jsonl")
    assert [(r.step, r.layer, r.counts is None) for r in loaded] == [
        (r.step, r.layer, r.counts is None) for r in stats.records]
    for mine, back in zip(stats.records, loaded, strict=True):
        if mine.counts is not None:
            np.testing.assert_array_equal(back.counts, mine.counts)
    stats.to_json(tmp_path / "all.json")
    payload = json.loads((tmp_path / "all.json").read_text())
    assert [r["histogram"]["counts"] is None for r in payload["records"]] == [
        r.counts is None for r in stats.records]
    again, _ = keras_initkit.stats.load_json(tmp_path / "all.json")
    assert [r.counts is None for r in again] == [r.counts is None for r in stats.records]
    assert len(stats.to_dataframe()) == 13 * len(stats.records)  # every scalar, every record
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    reader = event_accumulator.EventAccumulator(
        str(tmp_path / "activations"), size_guidance={"scalars": 0, "histograms": 0})
    reader.Reload()
    assert [e.step for e in reader.Scalars("relu/std")] == list(range(1, STEPS + 1))
    assert [e.step for e in reader.Histograms("relu/activations")] == [1, 6, 11]


def test_plot_histograms_draws_the_records_that_have_one():
    pytest.importorskip("matplotlib")
    stats = _fit(epochs=1, every=1, histogram_every=5)
    figure = stats.plot_histograms()  # the last record (step 13) has none: step 11 is shown
    assert "step 11" in figure.get_suptitle()
    over_time = stats.plot_histograms(over_time=True)
    assert over_time.axes[0].get_images()[0].get_array().shape == (50, 3)
    with pytest.raises(ValueError, match="step 12 has no histogram"):
        stats.plot_histograms(step=12)
    without = [r for r in stats.records if r.counts is None]
    with pytest.raises(ValueError, match="histogram_every"):
        keras_initkit.stats.plots.plot_histograms(without)


# -- GradientStats ------------------------------------------------------------------------
def _gradient_histogram_steps(stats):
    return [r.step for r in stats.records
            if r.layer == "relu" and r.variable == "kernel" and r.counts is not None]


def test_gradient_stats_counts_histograms_once_in_histogram_every_steps():
    sparse = _fit(callback=GradientStats, every=1, histogram_every=5)
    dense = _fit(callback=GradientStats, every=1, histogram_every=1)
    assert _gradient_histogram_steps(sparse) == [1, 6, 11, 14, 19, 24]
    assert _gradient_histogram_steps(dense) == list(range(1, 2 * STEPS + 1))
    assert [(r.step, r.layer, r.variable) for r in sparse.records] == [
        (r.step, r.layer, r.variable) for r in dense.records]
    zeros = 0
    for mine, full in zip(sparse.records, dense.records, strict=True):
        for name, value in mine.stats.items():  # exact zeros counted without the histogram
            assert value == pytest.approx(full.stats[name], rel=1e-6, abs=0, nan_ok=True)
        zeros += mine.stats["gradient_zero_fraction"] > 0
        if mine.counts is not None:
            np.testing.assert_array_equal(mine.counts, full.counts)
            assert mine.counts.sum() == mine.stats["size"]
    assert zeros > 0  # the ReLU's dead rows give exact zeros: the count is exercised


@pytest.mark.parametrize("every", [10, "epoch"])
def test_gradient_windows_at_least_histogram_every_apart_all_count_one(every):
    stats = _fit(callback=GradientStats, every=every, histogram_every=10)
    assert stats.records and all(r.counts is not None for r in stats.records)


@pytest.mark.parametrize("value", [0, 1.5, "5", False])
def test_gradient_histogram_every_must_be_a_positive_int(value):
    assert GradientStats().histogram_every == 10
    with pytest.raises(ValueError, match="histogram_every"):
        GradientStats(histogram_every=value)


def test_gradient_files_and_tensorboard_take_records_without_a_histogram(tmp_path):
    stats = _fit(epochs=1, callback=GradientStats, every=1, histogram_every=5, log_dir=tmp_path)
    loaded, _ = gradient_output.load_json(tmp_path / "gradient_stats.jsonl")
    assert [r.counts is None for r in loaded] == [r.counts is None for r in stats.records]
    stats.to_json(tmp_path / "all.json")
    again, _ = gradient_output.load_json(tmp_path / "all.json")
    for mine, back in zip(stats.records, again, strict=True):
        if mine.counts is None:
            assert back.counts is None
        else:
            np.testing.assert_array_equal(back.counts, mine.counts)
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator")
    reader = event_accumulator.EventAccumulator(
        str(tmp_path / "gradients"), size_guidance={"scalars": 0, "histograms": 0})
    reader.Reload()
    tag = "relu/kernel/log10_abs_gradient"
    assert [e.step for e in reader.Histograms(tag)] == [1, 6, 11]
    assert len(reader.Scalars("relu/kernel/gradient_rms")) == STEPS
