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

from attacks.inputs import AttackError, LastLayerUpdate


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


def last_layer_update(
    sent_state: Mapping[str, Any],
    returned_state: Mapping[str, Any],
    *,
    lr: float,
    local_steps: int,
    num_samples: int,
    head_prefix: str = "head",
) -> LastLayerUpdate:
    """What the server sees of one client update: the last layer's average step pseudo-gradient.

    The one place that turns the weights the server sent and the weights a client returned into
    an attack's input. Uses :func:`pseudo_gradient` (exact for plain SGD only) on
    ``<head_prefix>.weight`` and, if the head has one, ``<head_prefix>.bias``; the update's
    ``weight`` / ``bias`` are the sent values.

    Args:
        sent_state, returned_state: state dicts (name -> tensor/array) before and after.
        lr: the local step size eta the server set.
        local_steps: S, set by the server.
        num_samples: N, the client's reported number of windows.
        head_prefix: the name of the classification layer in the state dicts.

    Raises:
        AttackError: no ``<head_prefix>.weight`` in ``sent_state``, or bad input for
            :func:`pseudo_gradient` / :class:`LastLayerUpdate`.
    """
    weight_key, bias_key = f"{head_prefix}.weight", f"{head_prefix}.bias"
    if weight_key not in sent_state:
        raise AttackError(f"sent_state has no {weight_key!r}; pass head_prefix=<name of the head>")
    keys = [weight_key] + ([bias_key] if bias_key in sent_state else [])
    missing = [k for k in keys if k not in returned_state]
    if missing:
        raise AttackError(f"returned_state has no {missing}")
    grads = pseudo_gradient(
        {k: sent_state[k] for k in keys}, {k: returned_state[k] for k in keys}, lr, local_steps
    )
    has_bias = bias_key in grads
    return LastLayerUpdate(
        grads[weight_key],
        grads[bias_key] if has_bias else None,
        num_samples,
        local_steps=local_steps,
        weight=sent_state[weight_key],
        bias=sent_state[bias_key] if has_bias else None,
    )
