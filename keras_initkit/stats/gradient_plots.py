"""Figures of recorded gradient statistics: gradient RMS and update/weight ratio per
layer over training, and gradient RMS across depth (the vanishing-gradient picture)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from keras_initkit.stats.gradient_diagnosis import _layers
from keras_initkit.stats.gradient_output import GradientRecord
from keras_initkit.stats.plots import require_matplotlib


def plot_gradient_stats(
    records: Iterable[GradientRecord],
    update_ratio_bounds: tuple[float, float] = (1e-5, 1e-1),
    figsize: tuple[float, float] = (15.0, 4.2),
) -> Any:
    """Three panels: weight-gradient RMS per layer over training, update/weight ratio
    per layer over training (with the bounds and 1e-3 marked), and gradient RMS against
    depth at the first and the last record.

    Args:
        records: `GradientStats.records`.
        update_ratio_bounds: the band drawn on the ratio panel.
        figsize: the figure size in inches.

    Returns:
        A `matplotlib.figure.Figure` (built without `pyplot`; save it with `savefig`).

    Example:
    >>> from keras_initkit.stats.gradient_plots import plot_gradient_stats
    >>> plot_gradient_stats([]).axes[0].get_title()
    'weight-gradient RMS per layer'

    Reference:
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html)
    """
    require_matplotlib()
    from matplotlib.figure import Figure

    records = list(records)
    windows: dict[tuple[int, int], list[GradientRecord]] = {}
    for r in records:
        windows.setdefault((r.fit, r.step), []).append(r)
    keys = sorted(windows)
    series: dict[str, list[tuple[int, float, float]]] = {}
    for key in keys:
        x = key[1]  # the callback's step count, which runs on across fits
        for layer in _layers(windows[key]):
            series.setdefault(layer.name, []).append((x, layer.rms, layer.ratio))
    figure = Figure(figsize=figsize, layout="constrained")
    rms_ax, ratio_ax, depth_ax = figure.subplots(1, 3)
    for name, points in series.items():
        xs = [p[0] for p in points]
        rms_ax.plot(xs, [_positive(p[1]) for p in points], label=name)
        ratio_ax.plot(xs, [_positive(p[2]) for p in points], label=name)
    for key, style in ((keys[0], "--"), (keys[-1], "-")) if keys else ():
        layers = _layers(windows[key])
        rms = [_positive(layer.rms) for layer in layers]
        depth_ax.plot(range(len(layers)), rms, style, marker="o", label=f"step {key[1]}")
    low, high = update_ratio_bounds
    ratio_ax.axhspan(low, high, color="0.9")
    ratio_ax.axhline(1e-3, color="0.5", linestyle=":")
    rms_ax.set_title("weight-gradient RMS per layer")
    ratio_ax.set_title("update / weight ratio per layer")
    depth_ax.set_title("weight-gradient RMS across depth")
    for ax in (rms_ax, ratio_ax):
        ax.set_xlabel("training step")
    depth_ax.set_xlabel("layer (input to output)")
    for ax in (rms_ax, ratio_ax, depth_ax):
        if records:
            ax.set_yscale("log")
    if series and len(series) <= 12:
        rms_ax.legend(fontsize="x-small", loc="best")
    if keys:
        depth_ax.legend(fontsize="small")
    return figure


def _positive(value: float) -> float:
    return value if math.isfinite(value) and value > 0 else math.nan
