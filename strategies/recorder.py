"""What the server observed in each round, held until the round is written to the results store.

The curious wrapper records into a :class:`RoundRecorder` as replies are processed; the
ServerApp's per-round writer takes the round's :class:`RoundRecord` once the round is aggregated
and evaluated. Flower numbers the rounds of one ``strategy.start`` call from 1; a resumed run
continues its own numbering, so the recorder translates with ``round_offset``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from protocol import TrainReply
from strategies.roster import ClientSlot


@dataclass
class RoundRecord:
    """Everything the server observed in one round, waiting to be written with its evaluation."""

    attack_rows: list[dict] = field(default_factory=list)
    update_rows: list[dict] = field(default_factory=list)  # one per addressed participant
    failures: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    attack_seconds: float = 0.0
    aggregate_seconds: float = 0.0  # the wrapped strategy's aggregation of the round
    losses: list[float] = field(default_factory=list)

    @property
    def num_replies(self) -> int:
        return len(self.losses)

    @property
    def train_loss(self) -> float:
        """Mean local training loss over the round's replies (NaN without replies)."""
        return float(np.mean(self.losses)) if self.losses else float("nan")


class RoundRecorder:
    """Collects each round's attack rows, reply statistics and failures, keyed by run round."""

    def __init__(self, round_offset: int = 0) -> None:
        self.round_offset = round_offset
        self._records: dict[int, RoundRecord] = {}

    def run_round(self, server_round: int) -> int:
        """The run's round number of Flower's ``server_round``."""
        return server_round + self.round_offset

    def _record(self, server_round: int) -> RoundRecord:
        return self._records.setdefault(self.run_round(server_round), RoundRecord())

    def record_reply(
        self, server_round: int, slot: ClientSlot, reply: TrainReply, attack_rows: list[dict]
    ) -> None:
        """A successful reply and the attack rows scored on it."""
        record = self._record(server_round)
        record.update_rows.append({
            "round": self.run_round(server_round), "partition": slot.partition,
            "subject": slot.subject, "status": "ok", "num_examples": reply.num_examples,
            "train_loss": reply.train_loss, "train_seconds": reply.train_seconds,
            **reply.extra_metrics,
        })
        record.attack_rows.extend(attack_rows)
        record.attack_seconds += sum(row["attack_seconds"] for row in attack_rows)
        record.train_seconds += reply.train_seconds
        record.losses.append(reply.train_loss)

    def record_aggregation(self, server_round: int, seconds: float) -> None:
        """How long the aggregation rule took this round (server-side, wall time)."""
        self._record(server_round).aggregate_seconds += seconds

    def record_cohort(self, server_round: int, attack_rows: list[dict]) -> None:
        """Attack rows scored on the round's cohort aggregate (secure aggregation)."""
        record = self._record(server_round)
        record.attack_rows.extend(attack_rows)
        record.attack_seconds += sum(row["attack_seconds"] for row in attack_rows)

    def annotate_updates(self, server_round: int, stats: dict[int, dict]) -> None:
        """Add measured columns to the round's reply rows (``stats``: by partition)."""
        for row in self._record(server_round).update_rows:
            if row["status"] == "ok" and row["partition"] in stats:
                row.update(stats[row["partition"]])

    def record_failure(
        self, server_round: int, node_id: int, slot: ClientSlot | None, reason: str,
        cause: str = "error",
    ) -> None:
        """A reply that carried an error, a node that did not reply, or a reply from a node
        outside the experiment; ``cause`` (see :func:`protocol.failure_cause`) goes to the
        updates table."""
        record = self._record(server_round)
        if slot is not None:
            record.update_rows.append({
                "round": self.run_round(server_round), "partition": slot.partition,
                "subject": slot.subject, "status": "failed", "cause": cause,
            })
        record.failures.append(
            {
                "round": self.run_round(server_round),
                "partition": slot.partition if slot else -1,
                "subject": slot.subject if slot else -1,
                "node_id": node_id,
                "reason": reason,
            }
        )

    def record_decisions(
        self, server_round: int, decisions: dict[int, tuple[str, float]]
    ) -> None:
        """The aggregator's decision and score per partition (columns ``decision`` and
        ``decision_score`` of the partition's update row)."""
        record = self._record(server_round)
        for row in record.update_rows:
            if row["status"] == "ok" and row["partition"] in decisions:
                status, score = decisions[row["partition"]]
                row["decision"] = status
                row["decision_score"] = float(score)

    def take(self, server_round: int) -> RoundRecord:
        """Hand over (and forget) what was observed in ``server_round``."""
        return self._records.pop(self.run_round(server_round), RoundRecord())
