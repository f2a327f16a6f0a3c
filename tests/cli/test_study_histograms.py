"""`keras-initkit study` bins and draws its histograms with the statistics' code: the fold
the `ActivationStats` callback runs (`stats.summary.layer_record`) and
`stats.plots.draw_histogram`, so one histogram definition exists."""

import numpy as np
import pytest

from keras_initkit.cli.study import _forward, build_stack, run_study
from keras_initkit.stats.summary import layer_record


def test_a_bounded_activation_is_binned_as_the_callback_bins_it():
    # N(0, 0.01^2) tanh: most values sit within 1e-3 of the bin edge at 0, where float32
    # and float64 binning disagree: the study must agree with the callback's fold.
    kwargs = dict(depth=4, width=32, seed=2)
    [result] = run_study(["tanh"], ["normal:0.01"], batch=64, **kwargs)
    model = build_stack("tanh", "normal:0.01", **kwargs)
    data = np.random.default_rng(2).standard_normal((64, 32)).astype("float32")
    activations, _ = _forward([[layer] for layer in model.layers], data, training=True)
    for (low, high, counts), h in zip(result.histograms, activations, strict=True):
        record = layer_record(h, "layer", "tanh", bins=50)
        assert (low, high) == (-1.0, 1.0) == (record.edges[0], record.edges[-1])
        np.testing.assert_array_equal(counts, record.counts[1:-1])
        assert record.counts[0] == record.counts[-1] == 0


def test_an_unbounded_activation_spans_its_values():
    [result] = run_study(["relu"], ["he_normal"], depth=3, width=16, batch=32, seed=0)
    for (low, high, counts), row in zip(result.histograms, result.layers, strict=True):
        assert (low, high) == (row["min"], row["max"])
        assert counts.dtype == np.int64 and counts.sum() == 32 * 16
        assert counts[-1] >= 1  # the largest value is in the last bin, not past it


def test_the_study_figure_draws_the_shared_histogram():
    pytest.importorskip("matplotlib")
    from keras_initkit.cli.study import plot

    [result] = run_study(["relu"], ["he_normal"], depth=2, width=64, batch=64, seed=0)
    figure = plot([result])
    for ax in figure.axes[2:]:  # after the mean and std panels: one per layer
        heights = [bar.get_height() for bar in ax.patches]
        assert len(heights) == 50 and sum(heights) == pytest.approx(1.0)
        # ReLU's zeros fill the first bin; it is cut off so the rest shows, with its share.
        assert ax.get_ylim()[1] < heights[0]
        assert any("in first bin" in text.get_text() for text in ax.texts)


def test_the_callback_plot_cuts_a_spike_the_same_way():
    pytest.importorskip("matplotlib")
    from keras_initkit.stats.plots import plot_histograms

    values = np.maximum(np.random.default_rng(0).standard_normal((256, 8)), 0.0)
    record = layer_record(values.astype("float32"), "dense", "relu", bins=20)
    [ax] = plot_histograms([record]).axes
    assert ax.get_ylim()[1] < record.counts[1] / record.counts.sum()
    assert any("in first bin" in text.get_text() for text in ax.texts)
