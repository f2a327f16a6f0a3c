"""Activation statistics: the reductions shared by `inspect` (and the statistics callback)."""

from keras_initkit.stats.summary import SATURATION_BOUNDS, saturation_bounds, summarize

__all__ = ["SATURATION_BOUNDS", "saturation_bounds", "summarize"]
