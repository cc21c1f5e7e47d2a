"""Message delivery of Flower's simulation engine in time independent of the population.

Flower's simulation runtime (``flwr.server.superlink.fleet.vce.vce_api``, 1.41-1.42) hands
messages to its workers from a thread, ``add_messages_to_queue``, that every 0.1 s asks *every*
simulated node for its next message. Each ask, ``InMemoryLinkState.get_message_ins``, scans and
validates every stored message under the state's lock. One sweep therefore costs
O(nodes x stored messages), paid whether or not a node has anything to receive, in the driver
process and holding the GIL. With HAPT cut into 2,995 sessions it took 0.2 s per sweep for a
30-client round and up to 25 s for the start-up query that addresses all 2,995 nodes (about a
minute of a three-round run); see ``benchmarks/scale.py``.

:func:`deliver_pending` is the same loop done in one pass: validate the stored messages once
(Flower's own ``_check_stored_messages``: expiry, federation), take for each node its first
undelivered message, in the order Flower's loop visits the nodes, mark them delivered and queue
them. Same messages, same order, same one-message-per-node-and-sweep pacing; the cost is
O(stored messages + nodes). It reads ``InMemoryLinkState`` internals (``message_ins_store``,
``lock``), so a state without them gets Flower's own loop, and ``tests/test_simulation_patch.py``
checks the two deliver the same messages on Flower's real state. ``FL_HAR_FLOWER_DELIVERY=1`` in
the environment keeps Flower's loop (for comparisons: ``benchmarks/scale.py``).
"""

from __future__ import annotations

import os
import threading
from queue import Queue

from flwr.app import Message
from flwr.server.superlink.fleet.vce import vce_api
from flwr.supercore.date import now

_FLOWER_ADD_MESSAGES_TO_QUEUE = vce_api.add_messages_to_queue
_POLL_SECONDS = 0.1  # Flower's interval between sweeps
FLOWER_DELIVERY_ENV = "FL_HAR_FLOWER_DELIVERY"


def supports_single_pass(state: object) -> bool:
    """True for a link state whose stored messages :func:`take_pending` can read directly."""
    return all(hasattr(state, name)
               for name in ("message_ins_store", "lock", "_check_stored_messages"))


def take_pending(state, nodes_mapping: dict[int, int]) -> list[Message]:
    """One sweep: the first undelivered message of every node that has one, marked delivered.

    Messages that fail Flower's checks (expired TTL, nodes outside the federation) are deleted
    by Flower's own check first, as ``get_message_ins`` does while it scans.
    """
    with state.lock:
        store = state.message_ins_store
        state._check_stored_messages(set(store))
        first: dict[int, Message] = {}
        for message in store.values():
            meta = message.metadata
            if meta.delivered_at == "" and meta.dst_node_id not in first:
                first[meta.dst_node_id] = message
        # Flower's loop visits the nodes in registration order
        taken = [first[node] for node in nodes_mapping if node in first]
        delivered_at = now().isoformat()
        for message in taken:
            message.metadata.delivered_at = delivered_at
    return taken


def deliver_pending(
    state,
    queue: Queue[Message],
    nodes_mapping: dict[int, int],
    f_stop: threading.Event,
) -> None:
    """Drop-in for ``vce_api.add_messages_to_queue`` (same arguments, same pacing)."""
    if not supports_single_pass(state):
        _FLOWER_ADD_MESSAGES_TO_QUEUE(state, queue, nodes_mapping, f_stop)
        return
    while not f_stop.is_set():
        for message in take_pending(state, nodes_mapping):
            queue.put(message)
        f_stop.wait(_POLL_SECONDS)


def install() -> None:
    """Use :func:`deliver_pending` in Flower's simulation runtime of this process (idempotent);
    Flower's own loop when ``FL_HAR_FLOWER_DELIVERY`` is set to anything but 0."""
    keep_flower = os.environ.get(FLOWER_DELIVERY_ENV, "0") not in ("", "0")
    vce_api.add_messages_to_queue = (_FLOWER_ADD_MESSAGES_TO_QUEUE if keep_flower
                                     else deliver_pending)
