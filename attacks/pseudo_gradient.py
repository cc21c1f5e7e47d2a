"""Turn the weights a client returned into the average local-step gradient.

For plain SGD (no momentum, no weight decay) with step size eta and S local steps,
``theta_sent - theta_returned = eta * sum_t grad^(t)`` exactly, so

    pseudo_gradient = (theta_sent - theta_returned) / (eta * S) = (1/S) sum_t grad^(t),

the AVERAGE step gradient. With N = S * B windows in total its bias part satisfies the count
identity ``k[c] = sum_n p[n,c] - N * grad_b[c]`` with the softmax mass summed over all steps
(attacks.md, "Multi-step (FedAvg) updates"). Momentum, weight decay or Adam break the plain sum:
the result is then only an approximation (a test demonstrates the mismatch with momentum).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from attacks.inputs import AttackError


def _to_numpy(value: Any, key: str, which: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu")
        if not value.is_floating_point():
            return value.numpy()
        return value.to(torch.float64).numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise AttackError(f"{which}[{key!r}]: expected an array, got {type(value).__name__}") from exc


def pseudo_gradient(
    sent_state: Mapping[str, Any],
    returned_state: Mapping[str, Any],
    lr: float,
    local_steps: int,
) -> dict[str, np.ndarray]:
    """Average step gradient ``(sent - returned) / (lr * local_steps)`` for every floating entry.

    Args:
        sent_state: name -> array/tensor the server sent (e.g. a ``state_dict``).
        returned_state: name -> array/tensor the client returned; must have the same keys.
        lr: the local SGD step size eta (> 0), set by the server.
        local_steps: S (>= 1), set by the server.

    Returns:
        name -> float64 array, for every floating-point entry (integer buffers such as
        BatchNorm's ``num_batches_tracked`` are skipped). Exact for plain SGD only.

    Raises:
        AttackError: differing keys or shapes, bad lr / local_steps, NaN/inf values.
    """
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise AttackError(f"lr: expected a finite step size > 0, got {lr!r}")
    if isinstance(local_steps, bool) or not isinstance(local_steps, int) or local_steps < 1:
        raise AttackError(f"local_steps: expected an integer >= 1, got {local_steps!r}")
    if set(sent_state) != set(returned_state):
        missing = sorted(set(sent_state) ^ set(returned_state))
        raise AttackError(f"sent_state and returned_state have different keys: {missing}")
    result: dict[str, np.ndarray] = {}
    for key in sent_state:
        sent = _to_numpy(sent_state[key], key, "sent_state")
        returned = _to_numpy(returned_state[key], key, "returned_state")
        if sent.shape != returned.shape:
            raise AttackError(
                f"{key!r}: sent shape {sent.shape} differs from returned shape {returned.shape}"
            )
        if not (np.issubdtype(sent.dtype, np.floating) and np.issubdtype(returned.dtype, np.floating)):
            continue
        delta = (sent.astype(np.float64) - returned.astype(np.float64)) / (float(lr) * local_steps)
        if not np.all(np.isfinite(delta)):
            raise AttackError(f"{key!r}: the returned weights contain NaN/inf")
        result[key] = delta
    return result
