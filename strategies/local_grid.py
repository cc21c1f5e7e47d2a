"""An in-process Flower Grid: delivers messages by calling a ClientApp directly.

For unit tests of the strategy and the client logic without Ray, and for the in-process reference
loop of the round-overhead benchmark. Real experiments use Flower's simulation engine
(``fl-har run``). Node ids are random-looking and replies come back in a shuffled order, as they do
in the simulation, so tests exercise the server's partition bookkeeping and reply sorting.
"""

from __future__ import annotations

import random
import traceback
from collections.abc import Callable, Iterable

from flwr.app import Context, Error, Message, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

# A ClientApp (or one of its handlers): (message, context) -> reply message.
Handler = Callable[[Message, Context], Message]
CLIENT_EXCEPTION = 1  # error code of a reply whose handler raised


class LocalGrid(Grid):
    """``num_nodes`` nodes with partition ids ``0..num_nodes-1``, served by ``handler``."""

    def __init__(self, handler: Handler, num_nodes: int, *, seed: int = 0) -> None:
        rng = random.Random(seed)
        self.handler = handler
        self.node_ids = rng.sample(range(10**6, 10**7), num_nodes)
        self.contexts = {
            node: Context(
                run_id=1,
                node_id=node,
                node_config={"partition-id": i, "num-partitions": num_nodes},
                state=RecordDict(),
                run_config={},
            )
            for i, node in enumerate(self.node_ids)
        }
        self._rng = rng
        self._run = None
        # Flower stamps new messages with the identity of the running task; outside its runtime
        # none is set, so act as the SuperLink's task of run 1 (what run_simulation does too).
        TaskIdentity.run_id = 1
        TaskIdentity.task_id = 1
        TaskIdentity.node_id = SUPERLINK_NODE_ID

    def set_run(self, run) -> None:
        self._run = run

    @property
    def run(self):
        return self._run

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None) -> Message:
        return Message(
            content=content, dst_node_id=dst_node_id, message_type=message_type, group_id=group_id
        )

    def get_node_ids(self) -> Iterable[int]:
        return list(self.node_ids)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        raise NotImplementedError("LocalGrid only supports send_and_receive")

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        raise NotImplementedError("LocalGrid only supports send_and_receive")

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        replies = []
        for message in messages:
            context = self.contexts[message.metadata.dst_node_id]
            try:
                reply = self.handler(message, context)
            except Exception as exc:  # noqa: BLE001 -- a failing client becomes an error reply, as in Flower
                reason = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
                reply = Message(Error(code=CLIENT_EXCEPTION, reason=reason), reply_to=message)
            replies.append(reply)
        self._rng.shuffle(replies)
        return replies
