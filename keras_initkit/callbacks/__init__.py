"""Callbacks for `model.fit`: activation statistics recorded inside the training step."""

from keras_initkit.callbacks.activation_stats import (
    ActivationStats,
    ActivationStatsWarning,
)

__all__ = ["ActivationStats", "ActivationStatsWarning"]

from keras_initkit.callbacks.gradient_stats import GradientStats, GradientStatsWarning

__all__ += ["GradientStats", "GradientStatsWarning"]
