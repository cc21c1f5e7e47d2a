"""The curious server's eyes, free of Flower objects: attack every update, then score it.

:class:`LeakageObserver` is what the curious wrapper (``strategies.curious``) hands every
individual reply to. Its attack path, :func:`attack_update`, sees only what the server
legitimately has (the weights it sent, the weights that came back, the public hyper-parameters,
its own model and auxiliary data) and returns the predicted label counts of every configured
attack. :func:`score_rows` is the separate evaluation step that compares predictions with the
true histogram the simulation reports. Keeping the two apart is what guarantees the attacks never
see a label.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

import attacks
from fl_har import metrics
from fl_har.config import ExperimentConfig
from fl_har.models import HEAD_NAME

# Rows attacking a cohort aggregate (secure aggregation) carry these in place of a client's ids.
COHORT_PARTITION = -1
COHORT_SUBJECT = -1

# Builds the attacker's public context for one run round from the global weights sent that round.
ContextFactory = Callable[[int, dict[str, torch.Tensor]], attacks.AttackContext]


@dataclass(frozen=True)
class AttackOutcome:
    attack: str
    pred_counts: np.ndarray | None  # None when the attack could not apply
    seconds: float
    error: str = ""


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
    local_steps: int,
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
            "local_steps": local_steps,
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


class LeakageObserver:
    """Attacks and scores every individual client update of a round.

    Parameters
    ----------
    config : ExperimentConfig
        The run's configuration: the attacks to run and the public hyper-parameters (N, S and the
        learning rate are set by the server, so it knows them).
    context_factory : ContextFactory
        ``(run round, sent state) -> attacks.AttackContext``: the attacker's public knowledge. It
        is built once per round, on the first update observed.
    """

    def __init__(self, config: ExperimentConfig, context_factory: ContextFactory) -> None:
        self.config = config
        self.context_factory = context_factory
        self._round: int | None = None
        self._sent: dict[str, torch.Tensor] = {}
        self._context: attacks.AttackContext | None = None

    def begin_round(self, run_round: int, sent_state: dict[str, torch.Tensor]) -> None:
        """The weights the server sent in ``run_round``: the reference of every update."""
        self._round, self._sent, self._context = run_round, sent_state, None

    def observe(
        self,
        partition: int,
        subject: int,
        returned_state: dict[str, torch.Tensor],
        num_examples: int,
        true_counts: np.ndarray,
    ) -> list[dict]:
        """Attack one client's returned weights with every configured attack; one scored row per
        attack. ``true_counts`` (the simulation's truth) reaches the scoring step only."""
        if self._round is None:
            raise RuntimeError("observe() before begin_round()")
        client = self.config.client
        # The attacker's path: weights, N, S and lr only -- the truth is not passed on. The
        # server set B (and lr), so N reveals S.
        local_steps = client.steps_for(num_examples)
        update = attacks.last_layer_update(
            self._sent, returned_state, num_samples=num_examples, lr=client.lr,
            local_steps=local_steps, head_prefix=HEAD_NAME,
        )
        if self._context is None:
            self._context = self.context_factory(self._round, self._sent)
        outcomes = attack_update(update, self.config.attacks.names, self._context)
        # The scoring path: compare with the histogram the simulation reports.
        return score_rows(
            outcomes, true_counts, server_round=self._round, partition=partition,
            subject=subject, local_steps=local_steps,
        )

    def observe_aggregate(
        self,
        aggregate_state: dict,
        num_examples: int,
        true_counts: np.ndarray,
    ) -> list[dict]:
        """Secure aggregation: attack the cohort's FedAvg-weighted aggregate as one update of
        ``num_examples`` (the cohort's windows) and score it against the SUM of the cohort's true
        histograms. Rows carry partition = subject = -1 (the cohort)."""
        return self.observe(COHORT_PARTITION, COHORT_SUBJECT, aggregate_state, num_examples,
                            true_counts)
