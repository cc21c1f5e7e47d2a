"""Model names -> architectures, and the one factory the rest of fl-har uses."""

from __future__ import annotations

from fl_har.models.base import HARModel
from fl_har.models.deepconvlstm import DeepConvLSTM
from fl_har.models.errors import ModelConfigError
from fl_har.models.tinyhar import TinyHAR

MODELS: dict[str, str] = {
    "deepconvlstm": "DeepConvLSTM (Ordonez & Roggen 2016): 4 convs k=9, 2-layer LSTM-128, "
    "last step, dropout 0.5, linear head",
    "tinyhar": "TinyHAR (Zhou et al. 2022): per-channel convs, channel attention, FC fusion, "
    "LSTM, temporal attention, linear head",
}

_ARCHITECTURES: dict[str, type[HARModel]] = {
    DeepConvLSTM.name: DeepConvLSTM,
    TinyHAR.name: TinyHAR,
}


def model_class(name: str) -> type[HARModel]:
    """The architecture registered under ``name``; ``ModelConfigError`` for unknown names."""
    architecture = _ARCHITECTURES.get(name) if isinstance(name, str) else None
    if architecture is None:
        choices = ", ".join(repr(n) for n in MODELS)
        raise ModelConfigError(f"unknown model name {name!r}; expected one of {choices}")
    return architecture


def minimum_window(name: str) -> int:
    """Shortest window (samples) the named architecture accepts."""
    return model_class(name).minimum_window()


def build_model(
    name: str,
    in_channels: int,
    num_classes: int,
    window: int = 50,
    head_bias: bool = True,
    seed: int = 0,
) -> HARModel:
    """A new ``name`` model for windows [B, window, in_channels] and ``num_classes`` classes.

    Weights are the paper's untrained initialisation drawn from ``seed`` alone (see
    :func:`fl_har.models.init_untrained`); the global torch RNG is left as it was.
    ``head_bias=False`` builds a head without bias (a defence: the bias gradient is the most
    direct label signal). Raises ``ModelConfigError`` (a ``ValueError``) for an unknown name,
    ``in_channels < 1``, ``num_classes < 2``, a window too short for the convolutions, or a bad
    seed.
    """
    return model_class(name)(in_channels, num_classes, window, head_bias=head_bias, seed=seed)
