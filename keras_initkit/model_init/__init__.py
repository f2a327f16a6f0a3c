"""Operations on whole existing models: re-initialize, residual zeroing, LSUV, pretraining."""

from keras_initkit.model_init.inspection import inspect
from keras_initkit.model_init.lsuv import lsuv
from keras_initkit.model_init.pretrain import pretrain
from keras_initkit.model_init.reinitialize import reinitialize
from keras_initkit.model_init.report import Report
from keras_initkit.model_init.residual import zero_init_residual

__all__ = ["Report", "inspect", "lsuv", "pretrain", "reinitialize", "zero_init_residual"]
