"""How a malicious client turns its locally trained model into the update it sends.

Pure functions on updates, given either as one flat numpy vector or as a state dict of tensors /
arrays (an update is ``local weights - global weights``). Integer entries of a state dict (such as
BatchNorm's ``num_batches_tracked``) are not weights: they are left out of norms and passed through
unchanged.

- :func:`boost` -- model replacement (Bagdasaryan et al., "How To Backdoor Federated Learning",
  AISTATS 2020, arXiv 1807.00459, eq. 3): send ``G + gamma (X - G)``. With ``n`` clients averaged
  with equal weights and a server learning rate ``eta``, ``gamma = n / eta`` makes the new global
  model equal to ``X`` if the benign updates cancel out.
- :func:`project_to_norm_ball` -- the norm-bounded attacker (Sun et al. 2019, arXiv 1911.07963;
  Wang et al., NeurIPS 2020): the update is projected onto the L2 ball of radius ``bound`` so a
  server clipping norms at ``bound`` does not change it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from attacks.backdoor.base import BackdoorError

Update = np.ndarray | Mapping[str, torch.Tensor | np.ndarray]


def _is_weight(value) -> bool:
    if isinstance(value, torch.Tensor):
        return value.is_floating_point()
    return np.issubdtype(np.asarray(value).dtype, np.floating)


def _scale(update: Update, factor: float) -> Update:
    if isinstance(update, Mapping):
        return {k: (v * factor if _is_weight(v) else v) for k, v in update.items()}
    return np.asarray(update) * factor


def update_norm(update: Update) -> float:
    """L2 norm of the update over all its floating-point entries."""
    if isinstance(update, Mapping):
        total = 0.0
        for value in update.values():
            if _is_weight(value):
                array = value.detach().double() if isinstance(value, torch.Tensor) else value
                total += float((array ** 2).sum())
        return float(np.sqrt(total))
    return float(np.linalg.norm(np.asarray(update, dtype=np.float64).ravel()))


def boost(update: Update, gamma: float) -> Update:
    """``gamma * update`` (model replacement's scaling; ``gamma >= 1`` boosts).

    Parameters
    ----------
    update : flat array or state dict
        The malicious update ``X - G``.
    gamma : float
        Scale factor, > 0 (Bagdasaryan et al. use ``n / eta``).
    """
    if not (np.isfinite(gamma) and gamma > 0):
        raise BackdoorError(f"gamma: expected a boost factor > 0, got {gamma}")
    return _scale(update, float(gamma))


def project_to_norm_ball(update: Update, bound: float) -> Update:
    """The L2 projection of ``update`` onto ``{u: ||u|| <= bound}``: unchanged if already inside,
    else rescaled to norm ``bound`` (same direction).

    Parameters
    ----------
    update : flat array or state dict
        The update to constrain.
    bound : float
        Radius of the ball, > 0 (the server's clipping norm, if known).
    """
    if not (np.isfinite(bound) and bound > 0):
        raise BackdoorError(f"bound: expected a norm bound > 0, got {bound}")
    norm = update_norm(update)
    if norm <= bound:
        return _scale(update, 1.0) if isinstance(update, Mapping) else np.asarray(update).copy()
    return _scale(update, bound / norm)


def state_difference(local: Mapping, reference: Mapping) -> dict:
    """``local - reference`` for weights; integer entries taken from ``local``."""
    if set(local) != set(reference):
        raise BackdoorError("state dicts have different keys")
    return {k: (local[k] - reference[k] if _is_weight(local[k]) else local[k]) for k in local}


def state_sum(reference: Mapping, update: Mapping) -> dict:
    """``reference + update`` for weights; integer entries taken from ``update``."""
    if set(update) != set(reference):
        raise BackdoorError("state dicts have different keys")
    return {k: (reference[k] + update[k] if _is_weight(update[k]) else update[k]) for k in update}


def flat_update(local: Mapping, reference: Mapping) -> np.ndarray:
    """``local - reference`` over the floating-point entries as one float64 vector (key order)."""
    parts = []
    for key in local:
        if _is_weight(local[key]):
            diff = local[key] - reference[key]
            diff = diff.detach().double().numpy() if isinstance(diff, torch.Tensor) else diff
            parts.append(np.asarray(diff, dtype=np.float64).ravel())
    return np.concatenate(parts) if parts else np.zeros(0)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors (NaN if either is zero)."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    return float(np.dot(a, b) / (na * nb))
