"""Label attacks on the aggregate of a cohort (what a server sees under secure aggregation).

With secure aggregation (Bonawitz et al., CCS 2017; Flower's SecAgg+) the server learns only the
sum of the cohort's (weighted) updates. FedAvg weights client i by ``n_i / N`` with
``N = sum_i n_i``; if every client ran the same S plain-SGD local steps, the aggregate's average
step pseudo-gradient is ``sum_i (n_i / N) g_i`` and ``N * grad_b = sum_i (mass_i - k_i)``: the
count identity of attacks.md holds for the cohort as one batch of N windows, so every
bias-based label attack applies unchanged with N = the cohort's windows and returns the cohort's
label histogram (the sum of the clients' histograms), not any client's.

:func:`secure_sum` is what the secure protocol reveals (the FedAvg-weighted mean of the returned
states); :func:`cohort_update` turns it into the attacks' input; :func:`attack_cohort` runs one
attack on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from attacks.inputs import AttackContext, AttackError, LastLayerUpdate
from attacks.pseudo_gradient import last_layer_update
from attacks.registry import reconstruct_labels


def _array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64).numpy()
    return np.asarray(value, dtype=np.float64)


def secure_sum(
    returned_states: Sequence[Mapping[str, Any]], num_examples: Sequence[int],
    keys: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """FedAvg-weighted mean ``sum_i (n_i / N) theta_i`` of the returned states (float64).

    Args:
        returned_states: each client's returned state (name -> tensor/array), same keys.
        num_examples: n_i of each client (FedAvg's weights), >= 1.
        keys: the entries to aggregate (default: every floating entry of the first state).

    Raises:
        AttackError: no clients, mismatched lengths/keys/shapes, or a count < 1.
    """
    if not returned_states:
        raise AttackError("secure_sum: the cohort is empty")
    if len(returned_states) != len(num_examples):
        raise AttackError(
            f"secure_sum: {len(returned_states)} states but {len(num_examples)} example counts"
        )
    counts = [int(n) for n in num_examples]
    if min(counts) < 1:
        raise AttackError(f"secure_sum: every client needs >= 1 example, got {counts}")
    total = float(sum(counts))
    if keys is None:
        keys = [k for k, v in returned_states[0].items()
                if np.issubdtype(_array(v).dtype, np.floating)
                and not (isinstance(v, torch.Tensor) and not v.is_floating_point())]
    result: dict[str, np.ndarray] = {}
    for key in keys:
        parts = []
        for index, state in enumerate(returned_states):
            if key not in state:
                raise AttackError(f"secure_sum: client {index}'s state has no {key!r}")
            parts.append(_array(state[key]))
        if any(p.shape != parts[0].shape for p in parts):
            raise AttackError(f"secure_sum: {key!r} has different shapes across clients")
        result[key] = sum(n / total * p for n, p in zip(counts, parts))
    return result


def cohort_update(
    sent_state: Mapping[str, Any],
    returned_states: Sequence[Mapping[str, Any]],
    num_examples: Sequence[int],
    *,
    lr: float,
    local_steps: int,
    head_prefix: str = "head",
) -> LastLayerUpdate:
    """The cohort's last-layer update with N = sum of the cohort's windows.

    Every client must have run the same ``local_steps`` plain-SGD steps (otherwise the weighted
    mean of the step-summed deltas is not a scaled average gradient); N must be divisible by S.
    """
    keys = [k for k in (f"{head_prefix}.weight", f"{head_prefix}.bias") if k in sent_state]
    aggregate = secure_sum(returned_states, num_examples, keys)
    return last_layer_update(
        {k: sent_state[k] for k in keys}, aggregate, lr=lr, local_steps=local_steps,
        num_samples=int(sum(int(n) for n in num_examples)), head_prefix=head_prefix,
    )


def attack_cohort(
    name: str,
    sent_state: Mapping[str, Any],
    returned_states: Sequence[Mapping[str, Any]],
    num_examples: Sequence[int],
    context: AttackContext | None = None,
    *,
    lr: float,
    local_steps: int,
    head_prefix: str = "head",
) -> np.ndarray:
    """Attack ``name`` on the cohort's aggregate: the predicted cohort histogram (sums to N)."""
    update = cohort_update(sent_state, returned_states, num_examples, lr=lr,
                           local_steps=local_steps, head_prefix=head_prefix)
    return reconstruct_labels(name, update, context)
