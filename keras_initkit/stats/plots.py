"""Figures of recorded activation statistics: the weight-initialization lesson plots.

`plot_layer_stats` draws a statistic per layer (one line per read) and over training
(one line per layer); `plot_histograms` draws one histogram per layer, at one read or
over all reads. Both return a `matplotlib.figure.Figure` built without `pyplot`, so no
global figure state is touched: save it with `fig.savefig(path)`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from keras_initkit.stats.record import STATISTICS, ActivationRecord

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_WORDS = {
    "mean": "mean", "std": "standard deviation", "min": "minimum", "max": "maximum",
    "zero_fraction": "fraction of zeros", "saturated_fraction": "fraction saturated",
    "dead_units": "dead units", "units": "units",
    "unit_spread": "largest difference from the first unit", "nan_count": "NaN values",
    "inf_count": "infinite values", "count": "values counted",
    "batches": "batches folded",
}  # fmt: skip
_MAX_READS = 6  # reads drawn per layer in the left column of `plot_layer_stats`
_PER_ROW = 5  # histogram panels per row


def require_matplotlib() -> Any:
    """Imports matplotlib, or says how to install it.

    Returns:
        The `matplotlib` module.

    Raises:
        ImportError: matplotlib is not installed.

    Example:
    >>> from keras_initkit.stats.plots import require_matplotlib
    >>> require_matplotlib().__name__
    'matplotlib'

    Reference:
    - [CS231n notes](https://cs231n.github.io/neural-networks-2/#init)
    """
    try:
        import matplotlib
    except ImportError as error:
        hint = "plotting needs matplotlib: pip install 'keras-initkit[plot]'"
        raise ImportError(hint) from error
    return matplotlib


def _table(records: Iterable[ActivationRecord]) -> tuple[list[int], list[str], dict]:
    """Recorded steps (sorted), layers (depth order) and the records keyed by both."""
    records = list(records)
    if not records:
        raise ValueError(
            "no records to plot: the statistics callback has not read any "
            "activations yet (train with it first, for at least one read)"
        )
    steps = sorted({int(r.step) for r in records})
    layers = list(dict.fromkeys(r.layer for r in records))
    return steps, layers, {(int(r.step), r.layer): r for r in records}


def _value(record: ActivationRecord | None, name: str) -> float:
    return math.nan if record is None else float(record.stats.get(name, math.nan))


def _spread(n: int, most: int) -> list[int]:
    """At most `most` indices into `range(n)`, evenly spread, first and last included."""
    return sorted(set(np.linspace(0, n - 1, min(n, most)).round().astype(int).tolist()))


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.1e}" if value != 0 and abs(value) < 0.01 else f"{value:.2f}"


def plot_layer_stats(
    records: Iterable[ActivationRecord],
    *,
    statistics: str | Sequence[str] = ("mean", "std"),
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Statistics per layer (left) and over training (right), one row per statistic.

    The left column is the lesson figure: x is the layer (input to output), one line
    per read (at most 6, spread over training, darker is earlier), so a std that falls
    layer by layer shows at once. The right column has one line per layer over the
    training steps. A `std` row spanning more than 2 decades uses a log y axis. NaN
    values leave gaps.

    Args:
        records: the `ActivationRecord`s of the statistics callback.
        statistics: names from `STATISTICS`. Defaults to `("mean", "std")`.
        figsize: the figure size in inches; by default it grows with the rows.

    Returns:
        A `matplotlib.figure.Figure` with two axes per statistic.

    Example:
    >>> from keras_initkit.stats.plots import plot_layer_stats
    >>> from keras_initkit.stats.record import ActivationRecord
    >>> edges, counts = np.linspace(-1.0, 1.0, 5), np.array([0.0, 1, 4, 4, 1, 0])
    >>> records = [
    ...     ActivationRecord(0, 0, b, b + 1, f"dense_{i}", "tanh",
    ...                      {"mean": 0.0, "std": 0.5 / (i + 1)}, edges, counts)
    ...     for b in (0, 9) for i in range(3)]
    >>> fig = plot_layer_stats(records, statistics=("mean", "std"))
    >>> len(fig.axes)
    4
    >>> fig.axes[2].get_lines()[0].get_ydata()
    array([0.5       , 0.25      , 0.16666667])

    Reference:
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html)
      (figures 3-7)
    - [CS231n notes](https://cs231n.github.io/neural-networks-2/#init)
      (the 10-layer tanh net)
    """
    mpl = require_matplotlib()
    from matplotlib.figure import Figure

    names = (statistics,) if isinstance(statistics, str) else tuple(statistics)
    for name in names or [None]:
        if name not in STATISTICS:
            allowed = ", ".join(STATISTICS)
            raise ValueError(f"unknown statistic {name!r}; choose from {allowed}")
    steps, layers, table = _table(records)
    reads = _spread(len(steps), _MAX_READS)
    read_colors = mpl.colormaps["viridis"](np.linspace(0.0, 0.85, len(reads)))
    layer_colors = mpl.colormaps["plasma"](np.linspace(0.0, 0.85, len(layers)))
    x = np.arange(len(layers))
    rotate = len(layers) > 6 or max(len(layer) for layer in layers) > 10

    size = figsize or (12.0, 1.0 + 3.2 * len(names))
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(len(names), 2, squeeze=False)
    for row, name in enumerate(names):
        left, right = axes[row]
        grid = np.array(
            [[_value(table.get((s, n)), name) for n in layers] for s in steps]
        )
        for color, i in zip(read_colors, reads, strict=False):
            left.plot(x, grid[i], marker="o", color=color, label=f"step {steps[i]}")
        for j, color in enumerate(layer_colors):
            right.plot(steps, grid[:, j], marker=".", color=color, label=layers[j])
        word = _WORDS[name]
        left.set(
            title=f"{word} per layer", xlabel="layer (input to output)", ylabel=word
        )
        right.set(title=f"{word} over training", xlabel="training step")
        left.set_xticks(
            x, layers, rotation=45 * rotate, ha="right" if rotate else "center"
        )
        finite = grid[np.isfinite(grid)]
        if name == "std" and finite.size and 0 < 100 * finite.min() < finite.max():
            left.set_yscale("log")
            right.set_yscale("log")
        if row == 0:
            left.legend(fontsize="small")
            right.legend(fontsize="x-small", ncol=math.ceil(len(layers) / 12))
    return fig


def plot_histograms(
    records: Iterable[ActivationRecord],
    *,
    step: int | None = None,
    over_time: bool = False,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """One histogram panel per layer, at one read or over all reads.

    By default each panel shows the fraction of values per bin at `step`, with the
    fractions below and above the histogram range written in the top corners. With
    `over_time=True` each panel is an image: x is the read, y the bin, colour
    `log1p(fraction of values)` (fastai's "colorful dimension" plot). Panels wrap
    after 5 per row.

    Args:
        records: the `ActivationRecord`s of the statistics callback.
        step: the read to show; defaults to the last one with a histogram. Unused with
            `over_time`.
        over_time: draw every read with a histogram as a column of an image instead.
            (Records whose window counted no histogram, see `histogram_every`, are
            left out.)
        figsize: the figure size in inches; by default it grows with the panels.

    Returns:
        A `matplotlib.figure.Figure` with one axes per layer.

    Example:
    >>> from keras_initkit.stats.plots import plot_histograms
    >>> from keras_initkit.stats.record import ActivationRecord
    >>> edges, counts = np.linspace(-1.0, 1.0, 5), np.array([0.0, 1, 4, 4, 1, 2])
    >>> records = [
    ...     ActivationRecord(0, 0, b, b + 1, f"dense_{i}", "tanh",
    ...                      {"mean": 0.0, "std": 0.5 / (i + 1)}, edges, counts)
    ...     for b in (0, 9) for i in range(3)]
    >>> len(plot_histograms(records, step=1).axes)
    3
    >>> fig = plot_histograms(records, over_time=True)
    >>> fig.axes[0].get_images()[0].get_array().shape  # (bins, reads)
    (4, 2)

    Reference:
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html)
      (figure 4)
    - [CS231n notes](https://cs231n.github.io/neural-networks-2/#init)
      (the 10-layer tanh net)
    """
    require_matplotlib()
    from matplotlib.figure import Figure

    records = list(records)
    with_histogram = [r for r in records if r.counts is not None]
    if records and not with_histogram:
        raise ValueError(
            "no record has a histogram yet: histograms are counted once in "
            "`histogram_every` steps (train longer, or lower `histogram_every`)"
        )
    steps, layers, table = _table(with_histogram)
    if step is None:
        step = steps[-1]
    elif step not in steps:
        shown = steps if len(steps) <= 10 else [*steps[:3], "...", *steps[-3:]]
        recorded = ", ".join(str(s) for s in shown)
        if any(r.step == step for r in records):
            raise ValueError(f"step {step!r} has no histogram (see `histogram_every`); "
                             f"steps with one: {recorded}")
        raise ValueError(f"step {step!r} was not recorded; recorded steps: {recorded}")
    ncols = min(len(layers), _PER_ROW)
    nrows = math.ceil(len(layers) / ncols)
    size = figsize or (3.2 * ncols, 0.4 + 2.8 * nrows)
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(layers) :]:
        fig.delaxes(ax)
    for index, (ax, layer) in enumerate(zip(axes, layers, strict=False)):
        if over_time:
            _draw_over_time(ax, [table.get((s, layer)) for s in steps], steps, layer)
        else:
            _draw_histogram(ax, table.get((step, layer)), step, layer)
        if index % ncols == 0:
            ax.set_ylabel("activation" if over_time else "fraction of values")
    fig.suptitle(
        "activation histograms " + ("over training" if over_time else f"at step {step}")
    )
    return fig


def _fractions(record: ActivationRecord) -> np.ndarray:
    return _as_fractions(record.counts)


def _as_fractions(counts: Any) -> np.ndarray:
    counts = np.asarray(counts, dtype="float64")
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts)


def draw_histogram(ax: Any, edges: Any, counts: Any) -> None:
    """Draws one recorded histogram on `ax`: the fraction of values per bin.

    The one histogram drawing of the package (the callback's `plot_histograms` and
    `keras-initkit study` use it). `counts` are the `bins + 2` counts of an
    `ActivationRecord` (underflow, the bins over `edges`, overflow); the under- and
    overflow are written as text. A first bin holding more than three times the largest
    other bin (ReLU's zeros) is cut off, with its share written, so the rest shows.

    Args:
        ax: a matplotlib `Axes`.
        edges: the `bins + 1` bin edges.
        counts: the `bins + 2` counts: underflow, one per bin, overflow.

    Example:
    >>> from matplotlib.figure import Figure
    >>> from keras_initkit.stats.plots import draw_histogram
    >>> ax = Figure().subplots()
    >>> draw_histogram(ax, [0.0, 1.0, 2.0], [0, 30, 1, 1])
    >>> [text.get_text() for text in ax.texts]
    ['> 2.00: 3.1%', '94% in first bin']
    """
    edges = np.asarray(edges, dtype="float64")
    fractions = _as_fractions(counts)
    inside = fractions[1:-1]
    ax.bar(edges[:-1], inside, width=np.diff(edges), align="edge")
    for where, ha, sign, i in ((0.02, "left", "<", 0), (0.98, "right", ">", -1)):
        if fractions[i] > 0:  # underflow / overflow
            text = f"{sign} {_fmt(edges[i])}: {fractions[i]:.1%}"
            kw = {"ha": ha, "va": "top", "color": "C3", "fontsize": "x-small"}
            ax.text(where, 0.97, text, transform=ax.transAxes, **kw)
    rest = inside[1:].max() if len(inside) > 1 else 0.0
    if rest > 0 and inside[0] > 3 * rest:
        ax.set_ylim(0, 1.3 * rest)
        ax.text(0.98, 0.88, f"{inside[0]:.0%} in first bin", transform=ax.transAxes,
                ha="right", va="top", fontsize="x-small")


def _draw_histogram(
    ax: Any, record: ActivationRecord | None, step: int, layer: str
) -> None:
    if record is None:
        ax.set_title(f"{layer}\nnot recorded at step {step}", fontsize="small")
        return
    draw_histogram(ax, record.edges, record.counts)
    ax.set_xlabel("activation")
    mean, std = _fmt(_value(record, "mean")), _fmt(_value(record, "std"))
    ax.set_title(f"{layer}\nmean {mean} std {std}", fontsize="small")


def _draw_over_time(ax: Any, reads: list, steps: list[int], layer: str) -> None:
    present = [r for r in reads if r is not None]
    bins = {len(r.edges) - 1 for r in present}
    if len(bins) != 1:
        raise ValueError(f"the histograms of layer {layer!r} differ in bins: {bins}")
    image = np.full((bins.pop(), len(reads)), np.nan)
    for column, record in enumerate(reads):
        if record is not None:
            image[:, column] = np.log1p(_fractions(record)[1:-1])
    edges = np.asarray(present[-1].edges, dtype="float64")
    same = all(np.array_equal(r.edges, edges) for r in present)
    low, high = (edges[0], edges[-1]) if same else (0, len(image))
    extent = (-0.5, len(reads) - 0.5, low, high)
    kw = {"origin": "lower", "aspect": "auto", "interpolation": "nearest"}
    ax.imshow(image, extent=extent, **kw)
    ticks = _spread(len(steps), 4)
    ax.set_xticks(ticks, [str(steps[t]) for t in ticks])
    ax.set_xlabel("training step")
    ax.set_title(layer if same else f"{layer}\n(y: bin index)", fontsize="small")
