"""Who the server talks to: the participants of an experiment and the nodes that serve them.

Node ids are random per run (simulation) or per connection (deployment), so the server first
asks every node which partition it serves (a ``query`` message, answered by
``protocol.encode_identity``). Partition ``i`` serves the ``i``-th subject of the dataset. From
then on everything is keyed by partition: messages are addressed through the roster, replies are
put in partition order through it, and failures are named by it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from flwr.app import Message, MessageType, RecordDict
from flwr.serverapp import Grid

import protocol
from fl_har.config import ExperimentConfig
from fl_har.federation import FederationPlan, cohort_positions, federation_plan

logger = logging.getLogger("fl_har")


@dataclass(frozen=True)
class ClientSlot:
    """One participant of the experiment: the simulated node that serves it."""

    node_id: int
    partition: int
    subject: int


class Roster:
    """The experiment's participants in partition order, found by node id or partition."""

    def __init__(self, slots: Iterable[ClientSlot]) -> None:
        self._slots = sorted(slots, key=lambda slot: slot.partition)
        self._by_node = {slot.node_id: slot for slot in self._slots}
        if len(self._by_node) != len(self._slots):
            raise ValueError("roster: two participants share a node")

    def __iter__(self) -> Iterator[ClientSlot]:
        return iter(self._slots)

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._by_node

    def slot(self, node_id: int) -> ClientSlot | None:
        """The participant served by ``node_id`` (None for a node outside the experiment)."""
        return self._by_node.get(node_id)

    @property
    def node_ids(self) -> list[int]:
        return [slot.node_id for slot in self._slots]


def wait_for_nodes(grid: Grid, expected: int, timeout: float = 120.0) -> int:
    """Wait until ``expected`` nodes are connected, or the count stops growing; return it."""
    deadline = time.monotonic() + timeout
    last, stable_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = len(list(grid.get_node_ids()))
        if count >= expected:
            return count
        if count != last:
            last, stable_since = count, time.monotonic()
        elif count > 0 and time.monotonic() - stable_since > 5.0:
            return count
        time.sleep(0.2)
    return max(last, 0)


def discover_partitions(grid: Grid, expected: int, timeout: float = 120.0) -> dict[int, int]:
    """Ask every connected node which partition it serves: ``{partition id: node id}``."""
    wait_for_nodes(grid, expected, timeout)
    messages = [
        Message(content=RecordDict(), dst_node_id=node, message_type=MessageType.QUERY)
        for node in grid.get_node_ids()
    ]
    partitions = {}
    for reply in grid.send_and_receive(messages, timeout=timeout):
        if reply.has_error():
            # Not silent: the node is left out of the roster and the reason is logged.
            logger.warning("node %s did not say which partition it serves: %s",
                           reply.metadata.src_node_id, reply.error.reason)
            continue
        partitions[protocol.decode_identity(reply.content)] = reply.metadata.src_node_id
    return partitions


def client_roster(
    grid: Grid, config: ExperimentConfig, plan: FederationPlan
) -> tuple[ExperimentConfig, FederationPlan, Roster]:
    """The node of every client subject; drops (with a warning) clients whose partition has no
    node (e.g. ``flwr run .`` started with too few supernodes)."""
    partitions = discover_partitions(grid, len(plan.subjects))
    missing = [s for s in plan.clients if plan.partition(s) not in partitions]
    if missing:
        logger.warning(
            "no simulated node serves subject(s) %s: start the simulation with "
            "num-supernodes=%d (one per subject of the dataset); continuing without them",
            missing, len(plan.subjects),
        )
        kept = [s for s in plan.clients if s not in missing]
        if not kept:
            raise RuntimeError(
                f"no client subject has a simulated node ({len(partitions)} of "
                f"{len(plan.subjects)} nodes answered which partition they serve)"
            )
        config = config.replace(**{"data.clients": kept})
        plan = federation_plan(config)
    roster = Roster(
        ClientSlot(partitions[plan.partition(s)], plan.partition(s), s) for s in plan.clients
    )
    return config, plan, roster


def seeded_cohort(
    roster: Roster, size: int, seed: int, run_round_of: Callable[[int], int]
) -> Callable[[int], list[ClientSlot]]:
    """Each round's cohort: ``size`` participants drawn without replacement from stream
    ``(COHORT, run round)`` of the run seed, in partition order. Depends on the round alone, so a
    resumed run draws the same cohorts."""
    slots = list(roster)
    if not 1 <= size <= len(slots):
        raise ValueError(f"cohort size {size}: expected 1..{len(slots)} participants")

    def cohort(server_round: int) -> list[ClientSlot]:
        # The clients derive their DP-SGD ledgers from this same draw.
        picks = cohort_positions(seed, len(slots), size, run_round_of(server_round))
        return [slots[i] for i in picks]

    return cohort
