"""HAR models attacked in the label-leakage experiments: DeepConvLSTM and TinyHAR.

Every model maps float32 windows [B, window, channels] to logits [B, num_classes], exposes its final
linear layer as ``model.head`` (state-dict keys ``head.weight`` / ``head.bias``) and the head's
input as ``model.features(x)``. ``build_model`` is the entry point.
"""

from fl_har.models.base import (
    HEAD_BIAS_KEY,
    HEAD_NAME,
    HEAD_WEIGHT_KEY,
    HARModel,
    count_parameters,
    last_layer,
    valid_conv_length,
)
from fl_har.models.deepconvlstm import DeepConvLSTM
from fl_har.models.errors import ModelConfigError, ModelInputError
from fl_har.models.initialization import init_untrained
from fl_har.models.registry import MODELS, build_model, minimum_window, model_class
from fl_har.models.tinyhar import ChannelSelfAttention, TinyHAR

__all__ = [
    "HEAD_BIAS_KEY",
    "HEAD_NAME",
    "HEAD_WEIGHT_KEY",
    "MODELS",
    "ChannelSelfAttention",
    "DeepConvLSTM",
    "HARModel",
    "ModelConfigError",
    "ModelInputError",
    "TinyHAR",
    "build_model",
    "count_parameters",
    "init_untrained",
    "last_layer",
    "minimum_window",
    "model_class",
    "valid_conv_length",
]
