"""Turning a HAR model into one Opacus can compute per-example gradients for, and back.

Opacus computes per-example gradients with module hooks, so every trainable module needs a grad
sampler. ``torch.nn.LSTM`` runs as one fused kernel and has none; ``opacus.layers.DPLSTM`` is the
same network built from linear layers, with the same parameter names (``weight_ih_l0`` ...), so a
model with DPLSTM in place of LSTM has exactly the original state-dict keys (in another order).
BatchNorm mixes the examples of a batch, so per-example gradients are undefined: a model with it
(TinyHAR) is rejected, naming each offending module, instead of being silently changed (Opacus'
``ModuleValidator.fix`` would swap in GroupNorm, a different architecture with other keys).
"""

from __future__ import annotations

import copy

import torch
from opacus.layers import DPLSTM
from opacus.utils.module_utils import trainable_modules
from opacus.validators import ModuleValidator
from torch import nn

from fl_har.privacy.errors import UnsupportedModelError

# Prefix GradSampleModule puts in front of the wrapped model's state-dict keys.
WRAPPER_PREFIX = "_module."


def _dp_lstm_like(lstm: nn.LSTM) -> DPLSTM:
    """A DPLSTM with ``lstm``'s hyper-parameters and a copy of its weights."""
    replacement = DPLSTM(
        lstm.input_size,
        lstm.hidden_size,
        num_layers=lstm.num_layers,
        bias=lstm.bias,
        batch_first=lstm.batch_first,
        dropout=lstm.dropout,
        bidirectional=lstm.bidirectional,
        proj_size=lstm.proj_size,
    )
    replacement.load_state_dict(lstm.state_dict(), strict=True)
    reference = next(lstm.parameters())
    return replacement.to(device=reference.device, dtype=reference.dtype)


def _replace(root: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, name, module)


def _first_sentence(text: str) -> str:
    return text.split(". ")[0].rstrip(".")


def unsupported_modules(model: nn.Module) -> list[str]:
    """One line per module Opacus cannot train privately: ``"<path> (<Type>): <reasons>"``.

    Runs Opacus' registered validators module by module (so each finding carries its path; the
    first sentence of Opacus' explanation is kept) and GradSampleModule's rule that a trainable
    module must not hold buffers.
    """
    reasons: dict[str, list[str]] = {}
    for path, module in model.named_modules():
        validator = ModuleValidator.VALIDATORS.get(type(module))
        if validator is not None:
            found = [_first_sentence(str(error)) for error in validator(module)]
            if found:
                reasons.setdefault(path, []).extend(found)
    for path, module in trainable_modules(model):
        if any(True for _ in module.buffers(recurse=False)):
            reasons.setdefault(path, []).append(
                "a trainable module with buffers (batch statistics are not per-example)"
            )
    modules = dict(model.named_modules())
    return [
        f"{path or '<root>'} ({type(modules[path]).__name__}): {'; '.join(found)}"
        for path, found in reasons.items()
    ]


def private_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with every ``nn.LSTM`` swapped for an equal ``DPLSTM``.

    ``model`` itself is not changed. Raises :class:`UnsupportedModelError` listing every module
    (by path) that Opacus still cannot handle after the swap, e.g. TinyHAR's ``BatchNorm2d``.
    """
    clone = copy.deepcopy(model)
    lstm_paths = [path for path, m in clone.named_modules() if type(m) is nn.LSTM]
    for path in lstm_paths:
        _replace(clone, path, _dp_lstm_like(clone.get_submodule(path)))
    problems = unsupported_modules(clone)
    if problems:
        raise UnsupportedModelError(
            f"{type(model).__name__} cannot be trained with DP-SGD (Opacus per-example "
            "gradients):\n  " + "\n  ".join(problems)
        )
    return clone


def set_training_mode(model: nn.Module, dropout: bool) -> None:
    """Put ``model`` in train mode for Opacus, with dropout active only if ``dropout``.

    Opacus records activations only for modules in training mode, so a plain ``model.eval()``
    would leave no per-example gradients. Instead every module holding trainable parameters stays
    in training mode (their forward does not depend on it here: BatchNorm is rejected by
    :func:`private_copy`) and, when ``dropout`` is False, every parameter-free module (Dropout,
    DPLSTM's inter-layer dropout, containers) is put in eval mode.
    """
    model.train()
    if dropout:
        return
    for module in model.modules():
        if not any(p.requires_grad for p in module.parameters(recurse=False)):
            module.training = False  # this module only: .eval() would recurse into children


def strip_wrapper_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """State dict of a ``GradSampleModule`` with the ``_module.`` prefix removed from every key."""
    return {key.removeprefix(WRAPPER_PREFIX): value for key, value in state.items()}


def copy_weights_back(target: nn.Module, trained: nn.Module) -> None:
    """Load ``trained``'s weights (a private copy, wrapped or not) into ``target`` in place.

    DPLSTM renames its parameters with a state-dict hook that only takes effect when DPLSTM's own
    ``state_dict`` is the outermost call; inside a parent module the parent's state dict holds both
    names (``lstm.weight_ih_l0`` and the alias ``lstm.l0.ih.weight``, one tensor). So the keys are
    taken from ``target``, and every other key must be such an alias. Anything else (a missing key,
    a tensor that is not an alias) is an error here rather than an update the server would misread.
    """
    state = strip_wrapper_prefix(trained.state_dict())
    expected = list(target.state_dict())
    missing = sorted(set(expected) - set(state))
    kept = {state[key].data_ptr() for key in expected if key in state}
    foreign = sorted(k for k in set(state) - set(expected) if state[k].data_ptr() not in kept)
    if missing or foreign:
        raise UnsupportedModelError(
            f"the private model's state dict does not match {type(target).__name__}'s: "
            f"missing {missing}, unexpected {foreign}"
        )
    target.load_state_dict({key: state[key] for key in expected}, strict=True)
