"""The honest-but-curious server: FedAvg that attacks every client update before averaging it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

import attacks
from clients.har_client import (
    ARRAYS_KEY,
    FAILURE_KEY,
    METRICS_KEY,
    ROUND_KEY,
    TRUTH_KEY,
)
from fl_har.config import ExperimentConfig
from strategies.leakage import attack_update, last_layer_update, score_rows

# Builds the attacker's public context for one round from the global weights sent that round.
ContextFactory = Callable[[int, dict[str, torch.Tensor]], attacks.AttackContext]


@dataclass(frozen=True)
class ClientSlot:
    """One participant of the experiment: the simulated node that serves it."""

    node_id: int
    partition: int
    subject: int


@dataclass
class RoundRecord:
    """Everything the server observed in one round, waiting to be written with its evaluation."""

    attack_rows: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    attack_seconds: float = 0.0
    train_loss: float = float("nan")
    num_replies: int = 0


class CuriousFedAvg(FedAvg):
    """Honest-but-curious Federated Averaging (McMahan et al., AISTATS 2017).

    The server follows the protocol (it averages the returned weights, weighted by
    ``num-examples``) but, as in the threat model of Bock et al. (label leakage in federated HAR,
    Sec. 3.1), it inspects every update first: from the weights it sent and the weights a client
    returned it forms the last layer's pseudo-gradient ``(theta_sent - theta_returned) / (lr * S)``
    and runs each configured label-reconstruction attack on it. Replies are processed, and averaged,
    in partition order so that runs are reproducible whatever order they arrive in.

    Parameters
    ----------
    experiment : ExperimentConfig
        The run's configuration; it is also sent to every client with the weights, so the server
        sets (and knows) N, S and the learning rate.
    context_factory : ContextFactory
        ``(round, sent_state) -> attacks.AttackContext``: the attacker's public knowledge.
    roster : list[ClientSlot]
        Node, partition and subject of every client (found by the ServerApp's partition query).
        Every round addresses exactly these nodes, in this order: the paper's protocol attacks
        every participant, so there is no random client sampling.
    round_offset : int (default: 0)
        Rounds already finished (resumed runs): Flower's round ``r`` is the run's round
        ``r + round_offset``.
    failure_injection : str (default: "")
        Test hook ``"partition:round"`` forwarded to clients (see ``clients.har_client``).
    **kwargs
        Passed to :class:`flwr.serverapp.strategy.FedAvg` (sampling fractions, minimum nodes...).

    In the ``frozen`` regime (the paper's protocol) the aggregate is computed but not applied: the
    next round attacks a fresh batch under the same model.
    """

    def __init__(
        self,
        *,
        experiment: ExperimentConfig,
        context_factory: ContextFactory,
        roster: list[ClientSlot],
        round_offset: int = 0,
        failure_injection: str = "",
        **kwargs,
    ) -> None:
        kwargs.setdefault("fraction_evaluate", 0.0)  # evaluation is centralised (server side)
        super().__init__(**kwargs)
        self.experiment = experiment
        self.context_factory = context_factory
        self.roster = {slot.node_id: slot for slot in roster}
        self.round_offset = round_offset
        self.failure_injection = failure_injection
        self.sent_state: dict[int, dict[str, torch.Tensor]] = {}
        self.records: dict[int, RoundRecord] = {}

    def run_round(self, server_round: int) -> int:
        """The run's round number of Flower's ``server_round``."""
        return server_round + self.round_offset

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Snapshot the global weights sent this round, then sample and address clients."""
        self.sent_state[server_round] = arrays.to_torch_state_dict()
        config[ROUND_KEY] = self.run_round(server_round)
        config["server-round"] = server_round
        if self.failure_injection:
            config[FAILURE_KEY] = self.failure_injection
        record = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: config})
        return self._construct_messages(record, list(self.roster), MessageType.TRAIN)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Attack and score every successful reply, record failures, then average (or not)."""
        replies = list(replies)
        record = RoundRecord()
        self.records[server_round] = record
        valid = [m for m in replies if not m.has_error()]
        valid.sort(key=lambda m: int(m.content[TRUTH_KEY]["partition-id"]))
        for msg in replies:
            if msg.has_error():
                node = msg.metadata.src_node_id
                slot = self.roster.get(node, ClientSlot(node, -1, -1))
                record.failures.append(
                    {
                        "round": self.run_round(server_round),
                        "partition": slot.partition,
                        "subject": slot.subject,
                        "node_id": node,
                        "reason": msg.error.reason,
                    }
                )
        sent = self.sent_state.pop(server_round)
        context = self.context_factory(self.run_round(server_round), sent) if valid else None
        losses = []
        for msg in valid:
            rows = self._attack_reply(server_round, sent, msg, context)
            record.attack_rows.extend(rows)
            record.attack_seconds += sum(r["attack_seconds"] for r in rows)
            metrics = msg.content[METRICS_KEY]
            record.train_seconds += float(metrics["train-seconds"])
            losses.append(float(metrics["train-loss"]))
        record.num_replies = len(valid)
        record.train_loss = float(np.mean(losses)) if losses else float("nan")
        arrays, metrics = super().aggregate_train(server_round, valid)
        if self.experiment.run.regime == "frozen":
            arrays = ArrayRecord(sent)
        return arrays, metrics

    def _attack_reply(
        self,
        server_round: int,
        sent: dict[str, torch.Tensor],
        msg: Message,
        context: attacks.AttackContext,
    ) -> list[dict]:
        truth = msg.content[TRUTH_KEY]
        partition = int(truth["partition-id"])
        num_samples = int(msg.content[METRICS_KEY]["num-examples"])
        client = self.experiment.client
        # The attacker's path: only weights, N, S and lr -- the truth record is not passed on.
        update = last_layer_update(
            sent,
            msg.content[ARRAYS_KEY].to_torch_state_dict(),
            num_samples=num_samples,
            lr=client.lr,
            local_steps=client.local_steps,
        )
        outcomes = attack_update(update, self.experiment.attacks.names, context)
        # The scoring path: compare with the histogram the simulation reports.
        return score_rows(
            outcomes,
            np.asarray(truth["label-counts"], dtype=np.int64),
            server_round=self.run_round(server_round),
            partition=partition,
            subject=int(truth["subject"]),
            config=self.experiment,
        )

    def take_record(self, server_round: int) -> RoundRecord:
        """Hand over (and forget) what was observed in ``server_round``."""
        return self.records.pop(server_round, RoundRecord())

