"""Activation statistics: per-tensor summaries, the in-step accumulators the
`ActivationStats` callback uses, diagnosis, export, TensorBoard output and plots."""

from keras_initkit.stats.diagnosis import Finding, diagnose
from keras_initkit.stats.export import load_json
from keras_initkit.stats.record import STATISTICS, ActivationRecord
from keras_initkit.stats.summary import SATURATION_BOUNDS, saturation_bounds, summarize

__all__ = [
    "SATURATION_BOUNDS",
    "STATISTICS",
    "ActivationRecord",
    "Finding",
    "diagnose",
    "load_json",
    "saturation_bounds",
    "summarize",
]
