"""`keras-initkit study`: the classic initialization experiment, for any activations x inits.

The lesson (CS231n; Glorot & Bengio 2010): feed a unit-Gaussian batch `D` through `depth`
fully connected layers of `width` units with no bias, and look at each layer's output:
its mean, its std, how much of it is exactly zero, how much of it sits at the bounds of
a tanh or sigmoid, and its histogram. N(0, 0.01^2) weights collapse a tanh stack to 0,
N(0, 1) saturates it, Glorot keeps it alive; ReLU needs He. This module runs that
experiment with Keras layers and keras_initkit's initializers, on any backend, and
reports the numbers as a table, in words, as JSON and as the lesson's figure.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
import textwrap
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import keras
import numpy as np

from keras_initkit.cli._choices import activation_function, make_initializer
from keras_initkit.model_init import lsuv
from keras_initkit.stats import diagnose, saturation_bounds
from keras_initkit.stats.export import atomic_save, atomic_write_text
from keras_initkit.stats.summary import layer_record

__all__ = [
    "StudyResult",
    "build_stack",
    "diagnose_stack",
    "format_result",
    "format_summary",
    "plot",
    "run",
    "run_study",
    "to_json",
]

BINS = 50
MAX_PANELS = 10  # histogram panels per row of the figure (layers evenly spread)
COLLAPSED_STD = 1e-3  # below this a layer's output carries (almost) nothing
VANISH_RATIO = 10.0  # std falling (growing) this many times over the stack is flagged
SATURATED = 0.5  # fraction of outputs at a bound that makes a layer "saturated"
DEAD = 0.9  # fraction of units that never fire on the batch that makes a layer "dead"


@dataclasses.dataclass
class StudyResult:
    """One activation x initializer combination of the study.

    Attributes:
        activation: the activation's name.
        init: the initializer as given on the command line (`"normal:0.01"`, ...).
        initializer: a readable description of the initializer used.
        layers: one dict per layer, first layer first: `mean`, `std`, `min`, `max`,
            `zero_fraction`, `saturated_fraction` (NaN for unbounded activations),
            `nan_count`, `inf_count`.
        histograms: per layer, `(low, high, counts)` over `BINS` equal bins.
        flags: the conditions found, in words (empty when the stack is healthy).

    Example:
    >>> from keras_initkit.cli.study import run_study
    >>> [result] = run_study(["relu"], ["he_normal"], depth=3, width=64, batch=128)
    >>> result.initializer, result.verdict
    ('HeNormal(seed=0)', 'healthy')

    Reference:
    - [He et al., 2015](https://arxiv.org/abs/1502.01852)
    """

    activation: str
    init: str
    initializer: str
    layers: list[dict[str, float]]
    histograms: list[tuple[float, float, np.ndarray]]
    flags: list[str]

    @property
    def verdict(self) -> str:
        """The first flag's first words, or "healthy"."""
        return self.flags[0].split(":")[0] if self.flags else "healthy"


def _describe(initializer: Any) -> str:
    """A short description of an initializer: its class and the arguments that matter."""
    if type(initializer).__module__.startswith("keras_initkit"):
        return repr(initializer)
    config = {k: v for k, v in initializer.get_config().items() if k != "seed" and v is not None}
    arguments = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v!r}"
                          for k, v in config.items())
    return f"{type(initializer).__name__}({arguments})"


def build_stack(activation: str, init: str, *, depth: int, width: int, seed: int) -> Any:
    """The study's network: `depth` bias-free `Dense(width, activation)` layers.

    Layer `i` gets the initializer `init` with the int seed `seed + i`, so every
    activation is studied with the same weights.

    Args:
        activation: an activation name.
        init: an initializer spec, as `run_study` takes them.
        depth: number of layers.
        width: units per layer, and the input width.
        seed: the first layer's weight seed.

    Returns:
        A built `keras.Sequential`.

    Example:
    >>> from keras_initkit.cli.study import build_stack
    >>> model = build_stack("tanh", "glorot_normal", depth=3, width=8, seed=0)
    >>> [layer.name for layer in model.layers]
    ['layer_1', 'layer_2', 'layer_3']

    Reference:
    - [CS231n: weight initialization](https://cs231n.github.io/neural-networks-2/#init)
    """
    function = activation_function(activation)
    layers = [keras.Input((width,))]
    layers += [
        keras.layers.Dense(width, activation=function, use_bias=False, name=f"layer_{i + 1}",
                           kernel_initializer=make_initializer(init, activation, seed + i))
        for i in range(depth)
    ]
    return keras.Sequential(layers, name=re.sub(r"\W", "_", f"{activation}_{init}"))


def _histogram(values: np.ndarray, bounds: tuple[float, float] | None) -> tuple:
    finite = values[np.isfinite(values)]
    if bounds is not None:
        low, high = bounds
    elif finite.size:
        low, high = float(finite.min()), float(finite.max())
    else:
        low, high = -1.0, 1.0
    if not high > low:  # a constant layer (zero init): a unit-wide range around it
        low, high = low - 0.5, high + 0.5
    counts, _ = np.histogram(np.clip(finite, low, high), bins=BINS, range=(low, high))
    return low, high, counts


def _g(value: float) -> str:
    return f"{value:.3g}"


_LABELS = {"nonfinite": "non-finite", "identical": "identical units"}


def diagnose_stack(activation: str, layers: list[dict[str, float]]) -> list[str]:
    """The conditions of one stack, in words; an empty list means healthy.

    The package's one diagnosis (`keras_initkit.stats.diagnose`), with the lesson's
    thresholds: NaN/Inf; identical units (every output equal: zero init); collapsed (std
    below `COLLAPSED_STD`); vanishing or exploding (std changing more than `VANISH_RATIO`
    times from the first layer); saturated (more than `SATURATED` of a bounded
    activation's outputs at its bounds); dead (more than `DEAD` of the units never
    fire on the batch).

    Args:
        activation: the activation's name.
        layers: per layer, the statistics of `keras_initkit.stats.summarize` (plus
            `dead_units` and `units`, when known).

    Returns:
        A list of sentences, one per condition, each starting with it and a colon.

    Example:
    >>> from keras_initkit.cli.study import diagnose_stack
    >>> rows = [dict(std=s, nan_count=0, inf_count=0, zero_fraction=0.0,
    ...              saturated_fraction=0.0) for s in (0.2, 0.01, 1e-5)]
    >>> diagnose_stack("tanh", rows)[0].split(":")[0]
    'collapsed'

    Reference:
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html)
    """
    records = [SimpleNamespace(layer=f"layer {i + 1}", activation=activation, stats=row)
               for i, row in enumerate(layers)]
    findings = diagnose(records, std_ratio=VANISH_RATIO, collapsed_std=COLLAPSED_STD,
                        saturated_threshold=SATURATED, dead_threshold=DEAD)
    depth, flags, said = len(layers), [], set()
    for finding in findings:
        if finding.condition in said:
            continue
        said.add(finding.condition)
        where = [f.layer for f in findings if f.condition == finding.condition]
        if finding.condition in ("nonfinite", "saturated", "dead", "collapsed"):
            text = (f"{finding.summary} in {len(where)} of {depth} layers, from {where[0]}: "
                    f"{finding.message}")
        else:
            text = finding.message
        flags.append(f"{_LABELS.get(finding.condition, finding.condition)}: {text}")
    return flags


def run_study(
    activations: Sequence[str],
    inits: Sequence[str],
    *,
    depth: int = 10,
    width: int = 500,
    batch: int = 1000,
    seed: int = 0,
    progress: Any = None,
) -> list[StudyResult]:
    """Runs the experiment for every activation x initializer and returns the results.

    Args:
        activations: activation names (`keras_initkit.cli._choices.ACTIVATIONS`).
        inits: initializer specs: `"normal:STD"`, `"uniform:LIMIT"`, `"zeros"`, Keras
            names (`"glorot_normal"`, `"he_normal"`, `"lecun_normal"`, `"orthogonal"`,
            ...), `"auto"` (`initializer_for(activation)`) or `"lsuv"` (orthogonal, then
            `keras_initkit.lsuv` on the study's batch).
        depth: number of layers.
        width: units per layer (and the width of the input).
        batch: rows of the input `D ~ N(0, 1)`.
        seed: seeds the input (NumPy) and the weights (layer `i` uses `seed + i`).
        progress: optional callable, called with each result as it is done.

    Returns:
        One `StudyResult` per combination, activations outer, inits inner.

    Example:
    >>> from keras_initkit.cli.study import run_study
    >>> [result] = run_study(["tanh"], ["normal:0.01"], depth=4, width=100, batch=200)
    >>> result.verdict, len(result.layers)
    ('collapsed', 4)

    Reference:
    - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html)
    - [CS231n: weight initialization](https://cs231n.github.io/neural-networks-2/#init)
    """
    data = np.random.default_rng(seed).standard_normal((batch, width)).astype("float32")
    results = []
    for activation in activations:
        bounds = saturation_bounds(activation)
        for init in inits:
            model = build_stack(activation, init, depth=depth, width=width, seed=seed)
            if init == "lsuv":
                lsuv(model, data, seed=seed)
            rows, histograms = [], []
            h = keras.ops.convert_to_tensor(data)
            for layer in model.layers:
                h = layer(h)
                stats = layer_record(h, layer.name, activation).stats
                rows.append({k: stats[k] for k in (
                    "mean", "std", "min", "max", "zero_fraction", "saturated_fraction",
                    "nan_count", "inf_count", "dead_units", "units")})
                histograms.append(_histogram(keras.ops.convert_to_numpy(h).ravel(), bounds))
            result = StudyResult(
                activation, init, _describe(model.layers[0].kernel_initializer), rows,
                histograms, diagnose_stack(activation, rows))
            results.append(result)
            if progress is not None:
                progress(result)
    return results


def _cell(value: float, percent: bool = False) -> str:
    if math.isnan(value):
        return "-"
    if percent:
        return f"{100 * value:.1f}"
    return f"{value:.4g}" if value != 0 else "0"


def format_result(result: StudyResult, width: int = 80) -> str:
    """One combination as a text block: a header, one row per layer, its flags.

    Args:
        result: a `StudyResult`.
        width: the terminal width the flags are wrapped to.

    Returns:
        The block, without a trailing newline.

    Example:
    >>> from keras_initkit.cli.study import format_result, run_study
    >>> [result] = run_study(["tanh"], ["normal:0.01"], depth=2, width=16, batch=32)
    >>> print(format_result(result).splitlines()[0])
    tanh with normal:0.01: RandomNormal(mean=0, stddev=0.01)

    Reference:
    - [CS231n: weight initialization](https://cs231n.github.io/neural-networks-2/#init)
    """
    lines = [f"{result.activation} with {result.init}: {result.initializer}"]
    lines.append(f"{'layer':>7} {'mean':>12} {'std':>12} {'min':>11} {'max':>11} "
                 f"{'% zero':>8} {'% sat':>7}")
    for i, row in enumerate(result.layers):
        lines.append(
            f"{i + 1:>7} {_cell(row['mean']):>12} {_cell(row['std']):>12} "
            f"{_cell(row['min']):>11} {_cell(row['max']):>11} "
            f"{_cell(row['zero_fraction'], True):>8} {_cell(row['saturated_fraction'], True):>7}")
    for flag in result.flags or ["healthy: the signal keeps its scale through the stack"]:
        lines += textwrap.wrap(flag, width - 2, initial_indent="  ! " if result.flags else "  ",
                               subsequent_indent="    ")
    return "\n".join(lines)


def format_summary(results: list[StudyResult], width: int = 80) -> str:
    """One line per combination: first and last layer std, and the verdict.

    Args:
        results: the `StudyResult`s of one study.
        width: lines are cut to this many characters.

    Returns:
        The table, a header line first.

    Example:
    >>> from keras_initkit.cli.study import format_summary, run_study
    >>> results = run_study(["relu"], ["glorot_normal", "he_normal"], depth=10, width=200,
    ...                     batch=200)
    >>> print(format_summary(results))  # doctest: +NORMALIZE_WHITESPACE
    activation    init              std @1    std @10  verdict
    relu          glorot_normal   ...  vanishing
    relu          he_normal       ...  healthy

    Reference:
    - [He et al., 2015](https://arxiv.org/abs/1502.01852)
    """
    depth = len(results[0].layers)
    last = f"std @{depth}"
    lines = [f"{'activation':<14}{'init':<16}{'std @1':>11}{last:>11}  verdict"]
    for r in results:
        verdict = ", ".join(f.split(":")[0] for f in r.flags) or "healthy"
        line = (f"{r.activation:<14}{r.init:<16}{_cell(r.layers[0]['std']):>11}"
                f"{_cell(r.layers[-1]['std']):>11}  {verdict}")
        lines.append(line[:width])
    return "\n".join(lines)


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else float(value)


def to_json(results: list[StudyResult], config: dict[str, Any]) -> str:
    """The study as JSON: the configuration and, per combination, every layer's numbers,
    histogram and the flags. NaN (not applicable) and infinities are written as null.

    Args:
        results: the `StudyResult`s of one study.
        config: what produced them (written under `"config"`).

    Returns:
        The JSON text, ending in a newline.

    Example:
    >>> import json
    >>> from keras_initkit.cli.study import run_study, to_json
    >>> results = run_study(["relu"], ["he_normal"], depth=2, width=8, batch=16)
    >>> payload = json.loads(to_json(results, {"depth": 2}))
    >>> payload["results"][0]["layers"][0]["saturated_fraction"] is None  # relu: no bound
    True

    Reference:
    - [CS231n: weight initialization](https://cs231n.github.io/neural-networks-2/#init)
    """
    payload = {
        "config": config,
        "results": [
            {
                "activation": r.activation,
                "init": r.init,
                "initializer": r.initializer,
                "verdict": r.verdict,
                "flags": r.flags,
                "layers": [
                    {"layer": i + 1, **{k: _json_number(v) for k, v in row.items()},
                     "histogram": {"low": low, "high": high, "counts": counts.tolist()}}
                    for i, (row, (low, high, counts))
                    in enumerate(zip(r.layers, r.histograms, strict=True))
                ],
            }
            for r in results
        ],
    }
    return json.dumps(payload, indent=1) + "\n"


def plot(results: list[StudyResult]) -> Any:
    """The lesson's figure: per combination (one row), the mean and the std per layer,
    then one histogram per layer (at most `MAX_PANELS`, spread over the depth).

    Args:
        results: the `StudyResult`s of one study.

    Returns:
        A `matplotlib.figure.Figure` (built without pyplot); save it with `savefig`.

    Example:
    >>> from keras_initkit.cli.study import plot, run_study
    >>> figure = plot(run_study(["tanh"], ["normal:1.0"], depth=3, width=8, batch=16))
    >>> len(figure.axes)  # mean, std and one histogram per layer
    5

    Reference:
    - [CS231n: weight initialization](https://cs231n.github.io/neural-networks-2/#init)
    """
    from keras_initkit.stats.plots import require_matplotlib

    require_matplotlib()
    from matplotlib.figure import Figure

    depth = len(results[0].layers)
    shown = sorted({round(x) for x in np.linspace(0, depth - 1, min(depth, MAX_PANELS))})
    columns = 2 + len(shown)
    figure = Figure(figsize=(1.9 * columns, 1.7 * len(results) + 0.4), layout="constrained")
    axes = figure.subplots(len(results), columns, squeeze=False)
    x = np.arange(1, depth + 1)
    for row, result in zip(axes, results, strict=False):
        means = [layer["mean"] for layer in result.layers]
        stds = [layer["std"] for layer in result.layers]
        row[0].plot(x, means, "o-", markersize=3)
        row[0].set_title("mean per layer", fontsize=8)
        row[0].set_ylabel(f"{result.activation}\n{result.init}", fontsize=9)
        row[1].plot(x, stds, "o-", markersize=3, color="tab:red")
        if min(stds) > 0 and max(stds) / min(stds) > 10:
            row[1].set_yscale("log")
        row[1].set_title("std per layer", fontsize=8)
        for ax, index in zip(row[2:], shown, strict=False):
            low, high, counts = result.histograms[index]
            edges = np.linspace(low, high, len(counts) + 1)
            ax.stairs(counts, edges, fill=True)
            rest = max(counts[1:].max(), 1)
            if counts[0] > 3 * rest:  # ReLU's spike of zeros would flatten the rest
                ax.set_ylim(0, 1.3 * rest)
                ax.text(0.98, 0.9, f"{counts[0] / counts.sum():.0%} in first bin",
                        transform=ax.transAxes, ha="right", fontsize=6)
            ax.set_title(f"layer {index + 1}: std {_g(stds[index])}", fontsize=8)
            ax.set_yticks([])
            ax.locator_params(axis="x", nbins=3)
        for ax in row:
            ax.tick_params(labelsize=6)
            if ax.get_yscale() == "linear":
                ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        row[2].ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
    figure.suptitle("activations per layer, by activation and initializer")
    return figure


def run(args: Any) -> int:
    """Runs `keras-initkit study` with parsed arguments; returns the exit code.

    Args:
        args: the `argparse.Namespace` of `keras_initkit.cli.build_parser()` for `study`.

    Returns:
        0. Bad input raises `keras_initkit.cli.UsageError` (exit code 2 from `main`).

    Example:
    >>> from keras_initkit.cli import build_parser
    >>> from keras_initkit.cli.study import run
    >>> args = build_parser().parse_args(["study", "--activation", "selu", "--init",
    ...                                   "auto", "--depth", "2", "--width", "8",
    ...                                   "--batch", "16", "--json", "-"])
    >>> run(args)  # doctest: +ELLIPSIS
    {...}
    0

    Reference:
    - [Klambauer et al., 2017](https://arxiv.org/abs/1706.02515) (SELU with LeCun normal)
    """
    from keras_initkit.cli import UsageError

    if args.plot:
        try:
            from keras_initkit.stats.plots import require_matplotlib

            require_matplotlib()
        except ImportError as error:
            raise UsageError(f"--plot: {error}") from None
    quiet = args.json == "-"
    say = (lambda *a, **k: None) if quiet else print
    say(f"D ~ N(0, 1) of shape ({args.batch}, {args.width}) through {args.depth} bias-free "
        f"Dense({args.width}) layers\n(backend {keras.backend.backend()}, seed {args.seed})\n")
    results = run_study(
        args.activation, args.init, depth=args.depth, width=args.width, batch=args.batch,
        seed=args.seed, progress=lambda result: say(format_result(result) + "\n"))
    say(format_summary(results))
    say("\nRule of thumb: tanh/sigmoid -> Glorot (Xavier), ReLU -> He, SELU -> LeCun"
        "\nnormal; --init auto uses keras_initkit.initializer_for(activation).")
    if args.json:
        config = {k: getattr(args, k) for k in ("activation", "init", "depth", "width",
                                                   "batch", "seed")}
        config["backend"] = keras.backend.backend()
        text = to_json(results, config)
        if quiet:
            sys.stdout.write(text)
        else:
            _write(args.json, "--json", lambda p: atomic_write_text(p, text))
            say(f"wrote {args.json}")
    if args.plot:
        figure = plot(results)
        _write(args.plot, "--plot", lambda p: atomic_save(p, lambda t: figure.savefig(t, dpi=100)))
        say(f"wrote {args.plot}")
    return 0


def _write(path: str, option: str, write: Any) -> None:
    from keras_initkit.cli import UsageError

    try:
        write(path)
    except OSError as error:
        raise UsageError(f"{option}: cannot write {path!r}: {error.strerror or error}") from None
