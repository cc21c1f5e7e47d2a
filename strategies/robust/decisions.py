"""What a decision-recording Flower strategy keeps between ``configure_train`` and the wrapper.

A strategy that aggregates *updates* must know the weights it sent: Flower hands them to
``configure_train``, and the curious wrapper calls that on the wrapped strategy every round, so
the mixin below snapshots them there. After ``aggregate_train`` the wrapper takes the round's
per-client decisions with :meth:`DecisionRecorder.take_decisions` (keyed by node id) and writes
them to the results' updates table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid

from strategies.robust.arrays import State, to_numpy
from strategies.robust.common import Decision


class DecisionRecorder:
    """Mixin for Flower strategies: remembers the weights sent per round and the decisions made
    per round and node. Put it first in the bases (``class X(DecisionRecorder, FedAvg)``)."""

    def _recording_state(self) -> tuple[dict[int, State], dict[int, dict[int, Decision]]]:
        # Flower's constructors are left untouched; the bookkeeping appears on first use.
        if "_sent_states" not in self.__dict__:
            self.__dict__["_sent_states"] = {}
            self.__dict__["_round_decisions"] = {}
        return self.__dict__["_sent_states"], self.__dict__["_round_decisions"]

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Snapshot the weights sent this round, then configure as the strategy does."""
        sent, _ = self._recording_state()
        sent[server_round] = to_numpy(arrays)
        return super().configure_train(server_round, arrays, config, grid)  # type: ignore[misc]

    def sent_state(self, server_round: int) -> State:
        """The weights sent in ``server_round`` (forgotten once taken)."""
        sent, _ = self._recording_state()
        if server_round not in sent:
            raise RuntimeError(
                f"{type(self).__name__}: round {server_round} was aggregated without "
                "configure_train having been called for it (the sent weights are unknown)"
            )
        return sent.pop(server_round)

    def record_decisions(
        self, server_round: int, replies: Sequence[Message], decisions: Sequence[Decision]
    ) -> None:
        """Remember one decision per reply, keyed by the reply's node id."""
        _, made = self._recording_state()
        made[server_round] = {
            msg.metadata.src_node_id: decision
            for msg, decision in zip(replies, decisions, strict=True)
        }

    def take_decisions(self, server_round: int) -> dict[int, Decision]:
        """The decisions of ``server_round`` by node id (forgotten once taken; empty if none)."""
        _, made = self._recording_state()
        return made.pop(server_round, {})
