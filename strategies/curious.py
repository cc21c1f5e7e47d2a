"""The honest-but-curious server as a wrapper around any Flower strategy."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from logging import INFO

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Bulyan, FedMedian, FedTrimmedAvg, Krum, MultiKrum, Strategy

import protocol
from attacks.cohort import secure_sum
from strategies.backdoor import update_statistics
from strategies.leakage import LeakageObserver
from strategies.recorder import RoundRecorder
from strategies.roster import ClientSlot, Roster

# Chooses the participants addressed in a Flower round (default: every participant).
CohortFn = Callable[[int], list[ClientSlot]]

# Aggregators that need individual updates: they cannot run under secure aggregation.
NEEDS_INDIVIDUAL_UPDATES = (FedMedian, FedTrimmedAvg, Krum, MultiKrum, Bulyan)


class CohortGrid(Grid):
    """A view of a Grid in which only this round's cohort of nodes is connected.

    The wrapped strategy samples nodes from ``get_node_ids()`` as it always does; through this
    view it can only pick the participants the curious server addressed, so the choice of who
    trains is made once, seeded and recorded, whatever the wrapped strategy's sampling is.
    """

    def __init__(self, grid: Grid, node_ids: list[int]) -> None:
        self._grid = grid
        self._node_ids = list(node_ids)

    def set_run(self, run) -> None:
        self._grid.set_run(run)

    @property
    def run(self):
        return self._grid.run

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None) -> Message:
        return self._grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return list(self._node_ids)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self._grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self._grid.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        return self._grid.send_and_receive(messages, timeout=timeout)


class CuriousStrategy(Strategy):
    """Honest-but-curious server around any Flower strategy.

    The threat model of Bock et al. (label leakage in federated HAR, Sec. 3.1): the server follows
    the protocol -- the wrapped ``strategy`` aggregates exactly the replies it would aggregate
    without the wrapper -- but inspects every individual update first. For each reply the wrapper
    takes the simulation's ground truth out of the message (so neither the wrapped strategy nor
    the attacks ever see it), hands the returned weights, with the weights sent that round, to the
    ``observer`` (label-reconstruction attacks, then scoring against the truth), and records the
    reply or its failure, and, when the wrapped strategy is one of :mod:`strategies.robust`, what
    it decided for each update (selected / excluded / clipped, with its score). A detector
    wrapped directly inside (:class:`strategies.detection.LabelHistogramDefence`) is handed the
    attacks' reconstructed counts of every reply before it aggregates, and its scores and flags
    are recorded too. Replies are
    processed and aggregated in partition order, whatever order
    they arrive in, so runs are reproducible. Composed like Flower's own
    ``DifferentialPrivacyServerSideFixedClipping(strategy, ...)``: ``CuriousStrategy(FedAvg())``,
    ``CuriousStrategy(FedMedian())``, ``CuriousStrategy(Krum(...))``...

    Parameters
    ----------
    strategy : Strategy
        The Flower strategy that samples (within the cohort) and aggregates.
    roster : Roster
        Node, partition and subject of every participant.
    observer : LeakageObserver
        Attacks and scores every individual update (Flower-free).
    recorder : RoundRecorder
        Receives every round's attack rows, reply statistics and failures.
    frozen : bool (default: False)
        The paper's protocol: the aggregate is computed but not applied, so every round attacks
        a fresh batch under the same model.
    cohort : Callable[[int], list[ClientSlot]] or None (default: None)
        The participants addressed in a Flower round; every participant when None.
    secure_aggregation : bool (default: False)
        Simulated secure aggregation: the observer receives only the round's FedAvg-weighted
        aggregate of the valid replies (``attacks.cohort.secure_sum``, what SecAgg+ followed by
        FedAvg reveals) with N = the cohort's windows, never an individual update; its rows are
        scored against the sum of the cohort's true histograms. The secure sum is simulated
        in-process (the wrapped mean-based strategy still aggregates the replies, which is what the
        protocol computes): Flower's ``SecAggPlusWorkflow`` / ``secaggplus_mod`` work only with the
        legacy fit-record message format (the mod converts replies with
        ``compat.recorddict_to_fitres``; a Message-API ``@app.train()`` client fails with
        ``KeyError: 'arrays'``) and cannot be combined with ``flwr.serverapp.strategy``. Median,
        trimmed mean and Krum-type strategies need individual updates and are rejected.
    measure_updates : bool (default: False)
        Record each update's norm, its cosine to the mean of the other benign updates and the
        truth's malicious flag in the updates table (backdoor runs; ``strategies.backdoor``).
    """

    def __init__(
        self,
        strategy: Strategy,
        *,
        roster: Roster,
        observer: LeakageObserver,
        recorder: RoundRecorder,
        frozen: bool = False,
        cohort: CohortFn | None = None,
        secure_aggregation: bool = False,
        measure_updates: bool = False,
    ) -> None:
        if secure_aggregation and isinstance(strategy, NEEDS_INDIVIDUAL_UPDATES):
            raise ValueError(
                f"secure aggregation reveals only a weighted sum; {type(strategy).__name__} needs "
                "individual updates"
            )
        self.secure_aggregation = secure_aggregation
        self.strategy = strategy
        self.roster = roster
        self.observer = observer
        self.recorder = recorder
        self.frozen = frozen
        self.cohort = cohort
        self.measure_updates = measure_updates
        self._sent: dict[int, dict[str, torch.Tensor]] = {}
        self._addressed: dict[int, list[int]] = {}

    def summary(self) -> None:
        """Log the wrapper's settings, then the wrapped strategy's."""
        log(INFO, "\t├──> Curious server: %d participants, attacks every update%s",
            len(self.roster), " (frozen model)" if self.frozen else "")
        self.strategy.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Snapshot the weights sent this round; let the wrapped strategy address the cohort."""
        slots = self.cohort(server_round) if self.cohort is not None else list(self.roster)
        needed = max(getattr(self.strategy, "min_available_nodes", 0),
                     getattr(self.strategy, "min_train_nodes", 0))
        if len(slots) < needed:
            raise ValueError(
                f"round {server_round}: the cohort has {len(slots)} participants but "
                f"{type(self.strategy).__name__} needs at least {needed} "
                "(min_available_nodes / min_train_nodes)"
            )
        self._sent[server_round] = arrays.to_torch_state_dict()
        config["server-round"] = server_round
        messages = list(self.strategy.configure_train(
            server_round, arrays, config, CohortGrid(grid, [slot.node_id for slot in slots])
        ))
        self._addressed[server_round] = [m.metadata.dst_node_id for m in messages]
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Observe and record every reply in partition order, then let the strategy aggregate."""
        replies = list(replies)
        sent = self._sent.pop(server_round)
        addressed = self._addressed.pop(server_round, [])
        self.observer.begin_round(self.recorder.run_round(server_round), sent)
        valid: list[tuple[ClientSlot, Message]] = []
        for msg in replies:
            node = msg.metadata.src_node_id
            slot = self.roster.slot(node)
            if msg.has_error():
                self.recorder.record_failure(server_round, node, slot, msg.error.reason,
                                             protocol.failure_cause(msg.error.code))
            elif slot is None:
                self.recorder.record_failure(
                    server_round, node, None, "reply from a node outside the experiment",
                    protocol.CAUSE_FOREIGN)
            else:
                valid.append((slot, msg))
        # Flower returns only the replies that arrived within the round's timeout: every
        # addressed node without one is a failure too, never silently left out.
        answered = {msg.metadata.src_node_id for msg in replies}
        for node in addressed:
            if node not in answered:
                self.recorder.record_failure(
                    server_round, node, self.roster.slot(node), "no reply (timed out)",
                    protocol.CAUSE_TIMEOUT)
        valid.sort(key=lambda item: item[0].partition)
        # Each reply is decoded, attacked and recorded in turn, and its decoded weights are let
        # go unless a later step needs them all (secure aggregation's sum, the update
        # statistics of backdoor runs): the server's memory grows by one copy of the model per
        # sampled client (the reply itself), not two. The truth record is taken off every reply
        # (before decoding, so the decoded reply and the inner strategy never carry it); only
        # the scoring and measuring steps read it.
        keep_decoded = self.secure_aggregation or self.measure_updates
        decoded: list[tuple[ClientSlot, protocol.TrainReply, protocol.SimulationTruth | None]] = []
        reconstructions: dict[int, dict[str, list[int]]] = {}
        for slot, msg in valid:
            truth = protocol.take_truth(msg.content)
            reply = protocol.decode_train_reply(msg.content)
            rows = []
            if truth is not None and not self.secure_aggregation:
                rows = self.observer.observe(
                    slot.partition, slot.subject, reply.state, reply.num_examples,
                    truth.label_counts,
                )
            self.recorder.record_reply(server_round, slot, reply, rows)
            # what the attacks predicted (never the truth the rows are scored against)
            reconstructions[msg.metadata.src_node_id] = {
                row["attack"]: row["pred_counts"] for row in rows}
            if keep_decoded:
                decoded.append((slot, reply, truth))
        if self.secure_aggregation:
            self._observe_aggregate(server_round, decoded)
        else:
            # A detector on the reconstructions (strategies.detection) scores them now.
            observe_reconstructions = getattr(self.strategy, "observe_reconstructions", None)
            if observe_reconstructions is not None:
                observe_reconstructions(server_round, reconstructions)
        if self.measure_updates:
            measured = [(slot.partition, reply.state, truth) for slot, reply, truth in decoded]
            self.recorder.annotate_updates(server_round, update_statistics(sent, measured))
        start = time.perf_counter()
        arrays, metrics = self.strategy.aggregate_train(server_round, [m for _, m in valid])
        self.recorder.record_aggregation(server_round, time.perf_counter() - start)
        # Robust aggregators (strategies.robust) say what they did with each update.
        take_decisions = getattr(self.strategy, "take_decisions", None)
        if take_decisions is not None:
            by_node = take_decisions(server_round)
            self.recorder.record_decisions(server_round, {
                slot.partition: (d.status, d.score)
                for slot, msg in valid
                if (d := by_node.get(msg.metadata.src_node_id)) is not None
            })
        take_detections = getattr(self.strategy, "take_detections", None)
        if take_detections is not None:
            by_node = take_detections(server_round)
            self.recorder.annotate_updates(server_round, {
                slot.partition: by_node[msg.metadata.src_node_id]
                for slot, msg in valid if msg.metadata.src_node_id in by_node
            })
        if self.frozen:
            arrays = ArrayRecord(sent)
        return arrays, metrics

    def _observe_aggregate(
        self, server_round: int,
        decoded: list[tuple[ClientSlot, protocol.TrainReply, protocol.SimulationTruth | None]],
    ) -> None:
        """Secure aggregation: only the cohort's weighted sum reaches the observer."""
        if not decoded or any(truth is None for _, _, truth in decoded):
            return
        states = [reply.state for _, reply, _ in decoded]
        counts = [reply.num_examples for _, reply, _ in decoded]
        truths = [np.asarray(truth.label_counts) for _, _, truth in decoded]
        aggregate = {k: torch.from_numpy(v) for k, v in secure_sum(states, counts).items()}
        rows = self.observer.observe_aggregate(
            aggregate, int(sum(counts)), np.sum(truths, axis=0).astype(np.int64))
        self.recorder.record_cohort(server_round, rows)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        return self.strategy.aggregate_evaluate(server_round, replies)
