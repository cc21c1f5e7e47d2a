"""What every HAR model shares: the input contract, the exposed final linear layer, shape checks.

Label-reconstruction attacks (e.g. iDLG, Zhao et al. 2020; LLG, Wainakh et al. 2022; iLRG, Ma
et al. 2023) read the gradient or update of the *last* linear layer ``z = W h + b``. For the mean
cross-entropy over a batch of B windows, with e_i = softmax(z_i) - onehot(y_i):
``dL/dW = 1/B sum_i e_i h_i^T`` and ``dL/db = 1/B sum_i e_i``. Every model therefore exposes that
layer under one name, ``head`` (state-dict keys ``head.weight`` / ``head.bias``), and its input
``h`` through :meth:`HARModel.features`.
"""

from __future__ import annotations

import operator
from typing import ClassVar

from torch import Tensor, nn

from fl_har.models.errors import ModelConfigError, ModelInputError
from fl_har.models.initialization import validate_seed

HEAD_NAME = "head"  # attribute and state-dict prefix of every model's classification layer
HEAD_WEIGHT_KEY = f"{HEAD_NAME}.weight"
HEAD_BIAS_KEY = f"{HEAD_NAME}.bias"


def valid_conv_length(length: int, kernel: int, stride: int) -> int:
    """Output length of an unpadded ("valid") convolution; 0 when the input is too short."""
    return (length - kernel) // stride + 1 if length >= kernel else 0


def _require_int(field: str, value: object, minimum: int, meaning: str) -> int:
    try:
        number = operator.index(value)  # accepts int and numpy integers, rejects floats/str
    except TypeError:
        number = None
    if isinstance(value, bool) or number is None or number < minimum:
        raise ModelConfigError(
            f"{field}={value!r} is invalid; expected an integer >= {minimum} ({meaning})"
        )
    return number


class HARModel(nn.Module):
    """Base class: maps windows ``x`` [B, window, channels] (float32) to logits [B, num_classes].

    ``forward(x) = head(head_dropout(features(x)))``, where ``features(x)`` [B, d] is the embedding
    ``h`` and ``head`` is ``nn.Linear(d, num_classes)``, registered last so that its state-dict
    entries come after all others. ``head_dropout`` is the dropout the architecture places right
    before its classifier (``nn.Identity`` when it has none there). In ``eval()`` mode,
    ``features(x)`` is exactly the head's input; in ``train()`` mode the head sees a dropped-out
    copy of it.

    Subclasses set the class constants describing their convolutional stack (used to check that a
    window is long enough), build their layers, call :meth:`_attach_head` last, and implement
    :meth:`_embed`. Building is done by the subclass constructors / ``build_model``, which leave the
    global RNG untouched and initialise with :func:`fl_har.models.init_untrained`.
    """

    name: ClassVar[str]
    conv_kernel: ClassVar[int]
    conv_strides: ClassVar[tuple[int, ...]]

    head: nn.Linear
    head_dropout: nn.Module

    def __init__(
        self, in_channels: int, num_classes: int, window: int, head_bias: bool, seed: int
    ) -> None:
        """Validate the requested shapes, head bias and seed before any layer is built."""
        super().__init__()
        if not isinstance(head_bias, bool):
            raise ModelConfigError(f"head_bias={head_bias!r} is invalid; expected True or False")
        validate_seed(seed)
        self._head_has_bias = head_bias
        self.in_channels = _require_int("in_channels", in_channels, 1, "number of sensor channels")
        self.num_classes = _require_int("num_classes", num_classes, 2, "number of activity classes")
        self.window = _require_int("window", window, 1, "samples per window")
        minimum = self.minimum_window()
        if self.window < minimum:
            strides = ", ".join(str(s) for s in self.conv_strides)
            raise ModelConfigError(
                f"window={self.window} is too short for {self.name}: its "
                f"{len(self.conv_strides)} unpadded convolutions (kernel {self.conv_kernel}, "
                f"strides {strides}) need window >= {minimum}"
            )

    # ----- shape arithmetic -------------------------------------------------------------------

    @classmethod
    def temporal_length(cls, window: int) -> int:
        """Number of time steps left after the convolutional stack (0 = window too short)."""
        length = window
        for stride in cls.conv_strides:
            length = valid_conv_length(length, cls.conv_kernel, stride)
        return length

    @classmethod
    def minimum_window(cls) -> int:
        """Shortest window for which the convolutional stack leaves at least one time step."""
        needed = 1
        for stride in reversed(cls.conv_strides):
            needed = cls.conv_kernel + stride * (needed - 1)
        return needed

    # ----- head -------------------------------------------------------------------------------

    def _attach_head(self, embedding_dim: int, dropout: float) -> None:
        """Create ``head_dropout`` and ``head``; call after all other layers are registered."""
        self.head_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(embedding_dim, self.num_classes, bias=self._head_has_bias)

    @property
    def embedding_dim(self) -> int:
        """Width d of the embedding h = features(x), the head's input."""
        return self.head.in_features

    @property
    def head_bias(self) -> bool:
        """Whether the head has a bias (``False`` is the bias-free-head defence)."""
        return self.head.bias is not None

    # ----- forward ----------------------------------------------------------------------------

    def features(self, x: Tensor) -> Tensor:
        """The embedding h [B, d] that the head classifies (before the head's dropout)."""
        self._check_input(x)
        return self._embed(x)

    def forward(self, x: Tensor) -> Tensor:
        """Logits [B, num_classes] = head(head_dropout(features(x)))."""
        return self.head(self.head_dropout(self.features(x)))

    def _embed(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _check_input(self, x: Tensor) -> None:
        expected = f"[batch, {self.window}, {self.in_channels}]"
        if not isinstance(x, Tensor):
            raise ModelInputError(
                f"{self.name} expects a torch.Tensor of shape {expected}, got {type(x).__name__}"
            )
        if x.dim() != 3 or x.shape[1] != self.window or x.shape[2] != self.in_channels:
            raise ModelInputError(
                f"{self.name} was built for windows of shape {expected} (batch, window, "
                f"channels); got a tensor of shape {list(x.shape)}"
            )
        if x.dtype != self.head.weight.dtype:
            raise ModelInputError(
                f"{self.name} expects {self.head.weight.dtype} windows; got {x.dtype}"
            )

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, num_classes={self.num_classes}, window={self.window}"
        )


def last_layer(model: nn.Module) -> nn.Linear:
    """The final linear layer whose weight and bias the label attacks read (``model.head``)."""
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear):
        raise TypeError(
            f"{type(model).__name__} has no nn.Linear attribute 'head'; expected a HARModel"
        )
    return head


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (shared tensors counted once; buffers such as BatchNorm
    running statistics are not parameters). ``trainable_only`` skips frozen ones."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
