"""fl_har_app.simulation_patch delivers what Flower's own delivery loop delivers, on Flower's state."""

from __future__ import annotations

import threading
import time
from queue import Queue
from typing import cast

import pytest
from flwr.app import Message, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.proto.task_pb2 import Task
from flwr.server.superlink.fleet.vce import vce_api
from flwr.server.superlink.linkstate import InMemoryLinkState, LinkStateFactory
from flwr.server.superlink.linkstate.in_memory_linkstate import RunRecord
from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME, NOOP_FEDERATION_ID
from flwr.supercore.object_store import ObjectStoreFactory
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity
from flwr.superlink.federation import NoOpFederationManager
from flwr.superlink.grid.inmemory_grid import InMemoryGrid

from fl_har_app import simulation_patch

RUN_ID, TASK_ID = 7, 3


def linkstate(num_nodes: int):
    """Flower's in-memory state, nodes and grid, set up as flwr.simulation's _main_loop does."""
    factory = LinkStateFactory(FLWR_IN_MEMORY_DB_NAME, NoOpFederationManager(),
                               ObjectStoreFactory())
    nodes = vce_api._register_nodes(num_nodes, factory)
    run = Run.create_empty(run_id=RUN_ID)
    run.primary_task_id, run.federation_id = TASK_ID, NOOP_FEDERATION_ID
    TaskIdentity.run_id, TaskIdentity.task_id = RUN_ID, TASK_ID
    TaskIdentity.node_id = SUPERLINK_NODE_ID
    state = cast(InMemoryLinkState, factory.state())
    state.run_ids[RUN_ID] = RunRecord(run=run)
    state.task_store[TASK_ID] = Task(task_id=TASK_ID, run_id=RUN_ID)
    grid = InMemoryGrid(state_factory=factory)
    grid.set_run(run)
    return state, nodes, grid


def push(grid, nodes: dict[int, int], partitions: list[int], ttl: float | None = None) -> None:
    ids = list(nodes)
    grid.push_messages([Message(RecordDict(), ids[p], "train", ttl=ttl) for p in partitions])


class OneSweep(threading.Event):
    """A stop event that lets a delivery loop run exactly one sweep, synchronously."""

    def __init__(self) -> None:
        super().__init__()
        self._asked = False

    def is_set(self) -> bool:
        asked, self._asked = self._asked, True
        return asked

    def wait(self, timeout: float | None = None) -> bool:
        return True


def sweeps(loop, state, nodes, count: int) -> list[list[tuple[int, int]]]:
    """What ``loop`` queues in each of ``count`` sweeps, in queue order: (partition of the
    destination node, position of the message in push order)."""
    pushed = {message_id: i for i, message_id in enumerate(state.message_ins_store)}
    found = []
    for _ in range(count):
        queue: Queue[Message] = Queue()
        loop(state, queue, nodes, OneSweep())
        batch = []
        while not queue.empty():
            message = queue.get()
            batch.append((nodes[message.metadata.dst_node_id], pushed[message.metadata.message_id]))
        found.append(batch)
    return found


def twin_states(num_nodes: int, partitions: list[int], ttl: float | None = None):
    """Two states holding the same messages for the same partitions (one per loop)."""
    twins = []
    for _ in range(2):
        state, nodes, grid = linkstate(num_nodes)
        push(grid, nodes, partitions, ttl)
        twins.append((state, nodes, grid))
    return twins


@pytest.mark.parametrize("partitions", [
    [4, 17, 3, 40, 41, 0],                   # a cohort in arbitrary order
    [5, 5, 9, 5, 2],                         # several messages for one node: one per sweep
    list(range(60)),                         # everyone (the start-up query)
])
def test_same_messages_in_the_same_order_and_pace_as_flower(partitions):
    (flower_state, nodes, _), (patched_state, same_nodes, _) = twin_states(60, partitions)
    expected = sweeps(simulation_patch._FLOWER_ADD_MESSAGES_TO_QUEUE, flower_state, nodes, 4)
    got = sweeps(simulation_patch.deliver_pending, patched_state, same_nodes, 4)
    assert got == expected
    assert sum(len(batch) for batch in got) == len(partitions)
    assert len(got[0]) == len(set(partitions))  # one message per node and sweep
    ids = [m.metadata.message_id for m in patched_state.message_ins_store.values()]
    assert all(patched_state.message_ins_store[i].metadata.delivered_at for i in ids)


def test_expired_messages_are_dropped_not_delivered():
    (flower_state, nodes, _), (patched_state, same_nodes, _) = twin_states(10, [1, 2], ttl=0.01)
    time.sleep(0.05)
    assert sweeps(simulation_patch.deliver_pending, patched_state, same_nodes, 1) == [[]]
    assert sweeps(simulation_patch._FLOWER_ADD_MESSAGES_TO_QUEUE, flower_state, nodes, 1) == [[]]
    assert not patched_state.message_ins_store and not flower_state.message_ins_store


def test_a_state_without_the_internals_gets_flowers_loop(monkeypatch):
    calls = []
    monkeypatch.setattr(simulation_patch, "_FLOWER_ADD_MESSAGES_TO_QUEUE",
                        lambda *args: calls.append(args))
    simulation_patch.deliver_pending(object(), Queue(), {}, threading.Event())
    assert len(calls) == 1
    state, _, _ = linkstate(3)
    assert simulation_patch.supports_single_pass(state)


def test_install_replaces_flowers_loop_unless_told_not_to(monkeypatch):
    monkeypatch.setattr(vce_api, "add_messages_to_queue",
                        simulation_patch._FLOWER_ADD_MESSAGES_TO_QUEUE)
    monkeypatch.delenv(simulation_patch.FLOWER_DELIVERY_ENV, raising=False)
    simulation_patch.install()
    simulation_patch.install()
    assert vce_api.add_messages_to_queue is simulation_patch.deliver_pending
    monkeypatch.setenv(simulation_patch.FLOWER_DELIVERY_ENV, "1")
    simulation_patch.install()
    assert vce_api.add_messages_to_queue is simulation_patch._FLOWER_ADD_MESSAGES_TO_QUEUE
