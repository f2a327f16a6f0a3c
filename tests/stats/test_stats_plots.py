"""Tests for keras_initkit.stats.plots: layouts, plotted data, scales and errors."""

import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from keras_initkit.stats.plots import plot_histograms, plot_layer_stats
from keras_initkit.stats.record import STATISTICS, ActivationRecord

STEPS = (10, 20, 30)
LAYERS = ("dense", "dense_1", "dense_2", "dense_3")
EDGES = np.linspace(-1.0, 1.0, 9)  # 8 bins


def _std(read, depth):
    # Falls by a factor 10 per layer (4 decades over 4 layers); grows a little per read.
    return (1.0 + 0.1 * read) * 10.0**-depth


def _records(steps=STEPS, layers=LAYERS, mean=None):
    records = []
    for read, step in enumerate(steps):
        for depth, layer in enumerate(layers):
            stats = {name: 0.0 for name in STATISTICS}
            stats["mean"] = 0.01 * (depth + 1) * (read + 1) if mean is None else mean
            stats["std"] = _std(read, depth)
            counts = np.arange(len(EDGES) + 1, dtype="float64") + read + depth
            records.append(
                ActivationRecord(
                    0, read, 4, step, layer, "tanh", stats, EDGES.copy(), counts
                )
            )
    return records


def test_layer_stats_layout_and_line_data():
    fig = plot_layer_stats(_records(), statistics=("mean", "std"))
    assert len(fig.axes) == 4
    mean_left, mean_right, std_left, std_right = fig.axes
    # Left: one line per read, y = the statistic per layer in depth order.
    assert len(std_left.get_lines()) == len(STEPS)
    for read, line in enumerate(std_left.get_lines()):
        expected = [_std(read, depth) for depth in range(len(LAYERS))]
        np.testing.assert_allclose(line.get_ydata(), expected)
        assert line.get_label() == f"step {STEPS[read]}"
    # Right: one line per layer, x = step.
    assert len(mean_right.get_lines()) == len(LAYERS)
    for depth, line in enumerate(mean_right.get_lines()):
        np.testing.assert_array_equal(line.get_xdata(), STEPS)
        expected = [0.01 * (depth + 1) * (read + 1) for read in range(len(STEPS))]
        np.testing.assert_allclose(line.get_ydata(), expected)
        assert line.get_label() == LAYERS[depth]
    assert [t.get_text() for t in mean_left.get_xticklabels()] == list(LAYERS)
    assert mean_left.get_title() == "mean per layer"
    assert std_right.get_title() == "standard deviation over training"


def test_layer_stats_single_statistic_string():
    fig = plot_layer_stats(_records(), statistics="zero_fraction")
    assert len(fig.axes) == 2
    assert fig.axes[0].get_title() == "fraction of zeros per layer"


def test_layer_stats_at_most_six_reads_first_and_last():
    steps = tuple(range(1, 21))
    fig = plot_layer_stats(_records(steps=steps), statistics=("std",))
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert len(labels) == 6
    assert labels[0] == "step 1" and labels[-1] == "step 20"
    assert len(fig.axes[1].get_lines()) == len(LAYERS)
    assert len(fig.axes[1].get_lines()[0].get_ydata()) == len(steps)


def test_log_scale_for_spanning_std_only():
    fig = plot_layer_stats(_records())
    mean_left, _, std_left, std_right = fig.axes
    assert std_left.get_yscale() == "log" and std_right.get_yscale() == "log"
    assert mean_left.get_yscale() == "linear"
    narrow = _records(layers=("a", "b"))  # std spans 1 decade only
    assert (
        plot_layer_stats(narrow, statistics=("std",)).axes[0].get_yscale() == "linear"
    )
    dead = _records()
    dead[-1].stats["std"] = 0.0  # a zero std rules out a log axis
    assert plot_layer_stats(dead, statistics=("std",)).axes[0].get_yscale() == "linear"


def test_nan_values_do_not_crash(tmp_path):
    records = _records()
    records[1].stats["std"] = float("nan")
    records[2].stats["mean"] = float("nan")
    del records[3].stats["std"]  # a missing statistic reads as NaN too
    fig = plot_layer_stats(records)
    assert fig.axes[3].get_yscale() == "log"  # the finite values still span 4 decades
    assert np.isnan(fig.axes[2].get_lines()[0].get_ydata()[1])
    records[5].stats["mean"] = float("nan")
    plot_histograms(records).savefig(tmp_path / "hist.png")
    fig.savefig(tmp_path / "stats.png")
    assert (tmp_path / "stats.png").stat().st_size > 0


def test_all_nan_statistic():
    records = _records()
    for record in records:
        record.stats["saturated_fraction"] = float("nan")
    fig = plot_layer_stats(records, statistics=("saturated_fraction",))
    assert len(fig.axes) == 2


def test_histograms_default_last_step():
    records = _records()
    fig = plot_histograms(records)
    assert len(fig.axes) == len(LAYERS)
    assert fig.axes[0].get_title() == "dense\nmean 0.03 std 1.20"
    last = next(r for r in records if r.step == STEPS[-1] and r.layer == "dense_1")
    heights = [patch.get_height() for patch in fig.axes[1].patches]
    np.testing.assert_allclose(heights, last.counts[1:-1] / last.counts.sum())
    texts = [t.get_text() for t in fig.axes[1].texts]
    assert any(t.startswith("< -1") for t in texts) and any(
        t.startswith("> 1") for t in texts
    )
    assert "std 1.2e-03" in fig.axes[3].get_title()


def test_histograms_at_step_and_wrapping():
    fig = plot_histograms(_records(), step=10)
    assert "mean 0.01" in fig.axes[0].get_title()
    layers = tuple(f"dense_{i}" for i in range(7))
    fig = plot_histograms(_records(layers=layers), step=20)
    assert len(fig.axes) == 7  # 2 rows of 5, unused panels removed
    rows = {round(ax.get_position().y0, 3) for ax in fig.axes}
    assert len(rows) == 2


def test_histograms_over_time_image():
    records = _records()
    fig = plot_histograms(records, over_time=True)
    assert len(fig.axes) == len(LAYERS)
    image = fig.axes[2].get_images()[0].get_array()
    assert image.shape == (len(EDGES) - 1, len(STEPS))
    record = next(r for r in records if r.step == STEPS[0] and r.layer == "dense_2")
    np.testing.assert_allclose(
        image[:, 0], np.log1p(record.counts[1:-1] / record.counts.sum())
    )


def test_histograms_over_time_missing_read_is_blank():
    records = [r for r in _records() if not (r.step == 20 and r.layer == "dense")]
    image = plot_histograms(records, over_time=True).axes[0].get_images()[0].get_array()
    assert np.all(np.isnan(np.ma.filled(image[:, 1], np.nan)))


def test_errors():
    with pytest.raises(ValueError, match="no records to plot: "):
        plot_layer_stats([])
    with pytest.raises(ValueError, match="no records to plot: "):
        plot_histograms(iter(()))
    with pytest.raises(ValueError, match="unknown statistic 'variance'.*zero_fraction"):
        plot_layer_stats(_records(), statistics=("mean", "variance"))
    with pytest.raises(
        ValueError, match=r"step 15 was not recorded; recorded steps: 10, 20, 30"
    ):
        plot_histograms(_records(), step=15)
    with pytest.raises(
        ValueError, match=r"recorded steps: 1, 2, 3, \.\.\., 48, 49, 50$"
    ):
        plot_histograms(_records(steps=tuple(range(1, 51))), step=0)


def test_savefig_png(tmp_path):
    path = tmp_path / "layers.png"
    plot_layer_stats(_records()).savefig(path)
    assert path.stat().st_size > 0
    path = tmp_path / "over_time.png"
    plot_histograms(_records(), over_time=True).savefig(path)
    assert path.stat().st_size > 0


def test_missing_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"keras-initkit\[plot\]") as info:
        plot_layer_stats(_records())
    assert info.value.__cause__ is not None
    with pytest.raises(ImportError, match=r"keras-initkit\[plot\]"):
        plot_histograms(_records())
