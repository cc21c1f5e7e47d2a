"""The curious server's per-update work, free of Flower objects: attack one update, then score it.

:func:`attack_update` sees only what the server legitimately has (the weights it sent, the weights
that came back, the public hyper-parameters, its own model and auxiliary data) and returns the
predicted label counts of every configured attack. :func:`score_rows` is the separate evaluation
step that compares predictions with the true histogram the simulation reports. Keeping the two
apart is what guarantees the attacks never see a label.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

import attacks
from fl_har import metrics
from fl_har.config import ExperimentConfig
from fl_har.models import HEAD_BIAS_KEY, HEAD_WEIGHT_KEY


@dataclass(frozen=True)
class AttackOutcome:
    attack: str
    pred_counts: np.ndarray | None  # None when the attack could not apply
    seconds: float
    error: str = ""


def last_layer_update(
    sent_state: dict[str, torch.Tensor],
    returned_state: dict[str, torch.Tensor],
    *,
    num_samples: int,
    lr: float,
    local_steps: int,
) -> attacks.LastLayerUpdate:
    """The attacker's view of one client update: the last layer's average step pseudo-gradient."""
    keys = [HEAD_WEIGHT_KEY] + ([HEAD_BIAS_KEY] if HEAD_BIAS_KEY in sent_state else [])
    sent = {k: sent_state[k] for k in keys}
    returned = {k: returned_state[k] for k in keys}
    grads = attacks.pseudo_gradient(sent, returned, lr, local_steps)
    return attacks.LastLayerUpdate(
        grads[HEAD_WEIGHT_KEY],
        grads.get(HEAD_BIAS_KEY),
        num_samples,
        local_steps=local_steps,
        weight=sent[HEAD_WEIGHT_KEY],
        bias=sent.get(HEAD_BIAS_KEY),
    )


def attack_update(
    update: attacks.LastLayerUpdate,
    names: tuple[str, ...],
    context: attacks.AttackContext,
) -> list[AttackOutcome]:
    """Run every attack in ``names`` on one update; an attack that cannot apply is reported."""
    outcomes = []
    for name in names:
        start = time.perf_counter()
        try:
            counts = np.asarray(attacks.reconstruct_labels(name, update, context), dtype=np.int64)
            error = ""
        except attacks.AttackError as exc:
            counts, error = None, str(exc) or type(exc).__name__
        outcomes.append(AttackOutcome(name, counts, time.perf_counter() - start, error))
    return outcomes


def score_rows(
    outcomes: list[AttackOutcome],
    true_counts: np.ndarray,
    *,
    server_round: int,
    partition: int,
    subject: int,
    config: ExperimentConfig,
) -> list[dict]:
    """One results row per attack: predictions next to the truth and every leakage metric."""
    true_counts = np.asarray(true_counts, dtype=np.int64)
    rows = []
    for outcome in outcomes:
        row = {
            "round": server_round,
            "partition": partition,
            "subject": subject,
            "attack": outcome.attack,
            "num_samples": int(true_counts.sum()),
            "local_steps": config.client.local_steps,
            "true_counts": [int(c) for c in true_counts],
            "attack_seconds": outcome.seconds,
            "error": outcome.error,
        }
        if outcome.pred_counts is None:
            row["pred_counts"] = []
            row.update({m: float("nan") for m in metrics.UPDATE_METRICS})
        else:
            pred = outcome.pred_counts
            row["pred_counts"] = [int(c) for c in pred]
            row.update(
                {m: float(getattr(metrics, m)(true_counts, pred)) for m in metrics.UPDATE_METRICS}
            )
        rows.append(row)
    return rows
