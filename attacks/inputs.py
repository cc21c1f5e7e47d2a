"""What an honest-but-curious server sees, as the attacks' only inputs.

:class:`LastLayerUpdate` is one client update restricted to the classification layer;
:class:`AttackContext` is the server's own public knowledge (the model it sent, the window shape,
auxiliary labelled windows it holds itself). Neither type has a field for the victim's labels, so
no attack can read them (a test checks this).

Everything is converted once, at construction, to read-only float64 numpy arrays; bad input raises
:class:`AttackError` naming the field, the value and what was expected.
"""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Hashable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

#: Dummy-input kinds accepted by LLG* (Wainakh et al. 2022 use random inputs; zeros/ones are the
#: other common choices; "random_int" is what the LLG authors' code draws: torch's
#: ``Tensor.random_()`` on float32, integer-valued floats in [0, 2**24]).
DUMMY_KINDS = ("normal", "zeros", "ones", "random_int")


class AttackError(ValueError):
    """An attack cannot apply to this update / context; the message says why.

    Raised for: a bias-based attack on a bias-free head, N < 1, N not divisible by the number of
    local steps, shapes that disagree, NaN/inf in the update, missing model / auxiliary data for
    an attack that needs them, an unknown attack name, and invalid context settings.
    """


def _as_float_array(value: Any, name: str, ndim: int) -> np.ndarray:
    """Copy a numpy array / tensor / nested list to a read-only float64 array of rank ``ndim``."""
    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu", torch.float64).numpy()
    try:
        array = np.array(value, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise AttackError(f"{name}: expected a numeric array, got {type(value).__name__}") from exc
    if array.ndim != ndim:
        raise AttackError(f"{name}: expected a {ndim}-D array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise AttackError(f"{name}: contains {bad} NaN/inf entries; the update is unusable")
    array.setflags(write=False)
    return array


def _as_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise AttackError(f"{name}: expected an integer, got {value!r} ({type(value).__name__})")
    if int(value) < minimum:
        raise AttackError(f"{name}: expected an integer >= {minimum}, got {int(value)}")
    return int(value)


@dataclass(frozen=True, eq=False)
class LastLayerUpdate:
    """One client update of the classification layer ``z = W h + b``, as the server sees it.

    Args:
        weight_grad: gradient of the mean cross-entropy w.r.t. ``W`` [C, d]. For a multi-step
            update this is the AVERAGE step gradient (see :func:`attacks.last_layer_update`).
        bias_grad: gradient w.r.t. ``b`` [C], or None for a bias-free head.
        num_samples: N, the number of windows behind the update (all local steps together).
        local_steps: S, the number of local SGD steps; each used B = N / S windows.
        weight, bias: the current (sent) last-layer parameters [C, d] / [C], if the server wants
            to pass them explicitly (iLRG needs them; otherwise it reads ``context.model.head``).

    Numpy arrays or torch tensors; stored as read-only float64 copies. Invalid input raises
    :class:`AttackError`.
    """

    weight_grad: np.ndarray
    bias_grad: np.ndarray | None
    num_samples: int
    _: KW_ONLY
    local_steps: int = 1
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        weight_grad = _as_float_array(self.weight_grad, "weight_grad", 2)
        num_classes, width = weight_grad.shape
        if num_classes < 2 or width < 1:
            raise AttackError(
                f"weight_grad: expected shape [C >= 2, d >= 1], got {weight_grad.shape}"
            )
        set_(self, "weight_grad", weight_grad)
        if self.bias_grad is not None:
            set_(self, "bias_grad", self._vector(self.bias_grad, "bias_grad", num_classes))
        num_samples = _as_int(self.num_samples, "num_samples (N)", 1)
        local_steps = _as_int(self.local_steps, "local_steps (S)", 1)
        if num_samples % local_steps:
            raise AttackError(
                f"num_samples N={num_samples} is not divisible by local_steps S={local_steps}; "
                "windows per step B = N / S must be an integer"
            )
        set_(self, "num_samples", num_samples)
        set_(self, "local_steps", local_steps)
        if self.weight is not None:
            weight = _as_float_array(self.weight, "weight", 2)
            if weight.shape != weight_grad.shape:
                raise AttackError(
                    f"weight: shape {weight.shape} disagrees with weight_grad {weight_grad.shape}"
                )
            set_(self, "weight", weight)
        if self.bias is not None:
            if self.bias_grad is None:
                raise AttackError("bias is given but bias_grad is None: a head with a bias has a bias gradient")
            set_(self, "bias", self._vector(self.bias, "bias", num_classes))

    @staticmethod
    def _vector(value: Any, name: str, num_classes: int) -> np.ndarray:
        vector = _as_float_array(value, name, 1)
        if vector.shape != (num_classes,):
            raise AttackError(
                f"{name}: expected shape ({num_classes},) to match weight_grad, got {vector.shape}"
            )
        return vector

    @property
    def num_classes(self) -> int:
        """C, the number of output classes."""
        return self.weight_grad.shape[0]

    @property
    def windows_per_step(self) -> int:
        """B = N / S, the windows used by each local step."""
        return self.num_samples // self.local_steps

    def require_bias_grad(self, attack: str) -> np.ndarray:
        """The bias gradient, or :class:`AttackError` if the head has no bias."""
        if self.bias_grad is None:
            raise AttackError(f"{attack} reads the bias gradient, but this head has no bias (bias_grad=None)")
        return self.bias_grad


@dataclass(frozen=True, eq=False)
class AttackContext:
    """The attacker's public knowledge besides the update.

    Args:
        model: the current global model (a ``torch.nn.Module`` whose final linear layer is the
            attribute ``head``; forward takes float32 windows [B, window, channels] and returns
            the head's logits). Needed by llg_plus, llg_star, llbg_trained (aux form) and, when the
            update carries no ``weight``/``bias``, by ilrg.
        input_shape: (window, channels); defaults to the aux windows' shape when those are given.
        aux_windows: windows held by the SERVER [M, window, channels] (never the victim's).
        aux_labels: the server's labels for ``aux_windows`` [M] (integers in [0, C)).
        seed: seed for every random choice (calibration inputs, dropout during calibration,
            iLRG-compat padding). The global RNGs are never used nor changed.

    Keyword-only options:
        model_version: anything hashable identifying the model parameters (e.g. the server
            round). Calibrations are cached under it; without it the cache key is a SHA-1 of the
            model's state (about 1.5 ms for DeepConvLSTM). Two different models must not share a
            version within one process (or call :func:`attacks.clear_calibration_cache`).
        model_train_mode: run calibration forwards in train mode (dropout active, as the client
            trains and as the paper's code did) or eval mode. The model's modes are restored.
        dummy_kind: LLG* dummy inputs: "normal" (standard normal), "zeros", "ones" or
            "random_int" (integer-valued floats in [0, 2**24], the LLG authors' ``random_()``).
        calibration_repeats: calibration batches per class (Wainakh et al. average 10).
        llbg_confidence: one constant gamma in [0, 1) used as every class's confidence by
            llbg_trained instead of estimating confidences from the auxiliary windows; None or a
            negative value (a config file's way to say "estimate") = estimate.
        ilrg_force_sum: iLRG rounding after the published "negative or above N -> 0" rule:
            True = largest-remainder rounding to exactly N (default); False = the published
            rounding (``round``, no correction) whose sum may differ from N.
        rlu_lr: the clients' local step size eta, a public hyper-parameter the server sets; RLU
            uses it for its drift correction with S > 1 local steps. None = unknown (RLU then
            uses the sent model only).
        options: values of further attack options by name (an attack reads them with
            :meth:`option`, which falls back to the option's default).
    """

    model: torch.nn.Module | None = None
    input_shape: tuple[int, int] | None = None
    aux_windows: np.ndarray | None = None
    aux_labels: np.ndarray | None = None
    seed: int = 0
    _: KW_ONLY
    model_version: Hashable | None = None
    model_train_mode: bool = True
    dummy_kind: str = "normal"
    calibration_repeats: int = 10
    llbg_confidence: float | None = None
    ilrg_force_sum: bool = True
    rlu_lr: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict, compare=False)
    _aux_digest: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.model is not None and not isinstance(self.model, torch.nn.Module):
            raise AttackError(f"model: expected a torch.nn.Module, got {type(self.model).__name__}")
        set_(self, "seed", _as_int(self.seed, "seed", 0))
        if not isinstance(self.options, Mapping):
            raise AttackError("options: expected a mapping of option names to values")
        set_(self, "options", MappingProxyType(dict(self.options)))
        if self.dummy_kind not in DUMMY_KINDS:
            raise AttackError(f"dummy_kind: expected one of {DUMMY_KINDS}, got {self.dummy_kind!r}")
        set_(self, "calibration_repeats", _as_int(self.calibration_repeats, "calibration_repeats", 1))
        if self.llbg_confidence is not None and float(self.llbg_confidence) < 0:
            set_(self, "llbg_confidence", None)
        if self.llbg_confidence is not None:
            gamma = float(self.llbg_confidence)
            if not 0.0 <= gamma < 1.0:
                raise AttackError(f"llbg_confidence: expected a value in [0, 1), got {gamma}")
            set_(self, "llbg_confidence", gamma)
        if self.rlu_lr is not None:
            eta = float(self.rlu_lr)
            if not np.isfinite(eta) or eta <= 0:
                raise AttackError(f"rlu_lr: expected a finite step size > 0, got {self.rlu_lr!r}")
            set_(self, "rlu_lr", eta)
        if self.model_version is not None:
            try:
                hash(self.model_version)
            except TypeError as exc:
                raise AttackError(
                    f"model_version: must be hashable, got {type(self.model_version).__name__}"
                ) from exc
        self._init_shapes_and_aux()

    def _init_shapes_and_aux(self) -> None:
        set_ = object.__setattr__
        shape = None
        if self.input_shape is not None:
            shape = tuple(self.input_shape)
            if len(shape) != 2:
                raise AttackError(f"input_shape: expected (window, channels), got {self.input_shape!r}")
            shape = (_as_int(shape[0], "input_shape[0] (window)", 1),
                     _as_int(shape[1], "input_shape[1] (channels)", 1))
        if (self.aux_windows is None) != (self.aux_labels is None):
            raise AttackError("aux_windows and aux_labels must be given together")
        if self.aux_windows is not None:
            windows = _as_float_array(self.aux_windows, "aux_windows", 3).astype(np.float32)
            windows.setflags(write=False)
            labels_raw = self.aux_labels
            if isinstance(labels_raw, torch.Tensor):
                labels_raw = labels_raw.detach().cpu().numpy()
            labels = np.array(labels_raw, copy=True)
            if labels.ndim != 1 or labels.shape[0] != windows.shape[0]:
                raise AttackError(
                    f"aux_labels: expected shape ({windows.shape[0]},) to match aux_windows, "
                    f"got {labels.shape}"
                )
            if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0):
                raise AttackError("aux_labels: expected non-negative integer class indices")
            labels = labels.astype(np.int64)
            labels.setflags(write=False)
            if shape is not None and tuple(windows.shape[1:]) != shape:
                raise AttackError(
                    f"aux_windows: window shape {tuple(windows.shape[1:])} disagrees with input_shape {shape}"
                )
            shape = tuple(int(s) for s in windows.shape[1:])
            set_(self, "aux_windows", windows)
            set_(self, "aux_labels", labels)
        set_(self, "input_shape", shape)

    def option(self, option: Any) -> Any:
        """The value of an :class:`attacks.options.AttackOption` in this context (or its default)."""
        if option.name not in self.options:
            return option.default
        return option.parse(self.options[option.name])

    def aux_digest(self) -> str:
        """SHA-1 of the auxiliary data, computed once per context (part of calibration cache keys)."""
        if not self._aux_digest:
            digest = hashlib.sha1(usedforsecurity=False)
            if self.aux_windows is not None:
                digest.update(np.ascontiguousarray(self.aux_windows))
                digest.update(np.ascontiguousarray(self.aux_labels))
            self._aux_digest.append(digest.hexdigest())
        return self._aux_digest[0]

    def require_model(self, attack: str) -> torch.nn.Module:
        """The model, or :class:`AttackError` if the context has none."""
        if self.model is None:
            raise AttackError(f"{attack} needs the current model: pass AttackContext(model=...)")
        return self.model

    def require_aux(self, attack: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """Auxiliary windows and labels (labels checked against C), or :class:`AttackError`."""
        if self.aux_windows is None or self.aux_labels is None or self.aux_windows.shape[0] == 0:
            raise AttackError(f"{attack} needs auxiliary windows: pass aux_windows and aux_labels")
        if self.aux_labels.max() >= num_classes:
            raise AttackError(
                f"aux_labels: label {int(self.aux_labels.max())} out of range for C={num_classes} classes"
            )
        return self.aux_windows, self.aux_labels
