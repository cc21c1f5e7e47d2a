"""The honest HAR client: a Flower ClientApp (Message API) in which each node is one participant.

The server sends, with the global weights, the whole flat experiment config and the round number;
the node's ``partition-id`` picks its subject: partition ``i`` is the ``i``-th subject of the
dataset (in sorted order), so one simulation can serve experiments with different client subsets.
The server first asks every node for its partition (a ``query`` message) and then addresses only
the nodes of the experiment's client subjects. The client
draws this round's batch with the configured sampler, trains S local SGD steps (with local
clipping/noise if configured) and replies with

- ``arrays``: the updated weights (an ``ArrayRecord``),
- ``metrics``: ``num-examples`` (N, which the server uses as FedAvg weight and the attacks as
  batch size), ``train-loss`` and ``train-seconds``,
- ``truth``: partition id, subject and the true label histogram of the batch. Only the server's
  scoring step reads it, to measure leakage; the attacks never receive it.
"""

from __future__ import annotations

import torch
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Error,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp

from fl_har.config import from_flat
from fl_har.federation import Participant, dataset_for, federation_plan

ARRAYS_KEY = "arrays"
METRICS_KEY = "metrics"
CONFIG_KEY = "config"
TRUTH_KEY = "truth"
# Config key, sent by the server, with the round number in the run (differs from Flower's
# "server-round" when a run is resumed).
ROUND_KEY = "fl-har.round"
# Test hook: "partition:round" makes that client raise in that round, to exercise failure handling.
FAILURE_KEY = "fl-har.inject-failure"

app = ClientApp()

# Participants are cached per process (a Ray actor serves many partitions and rounds), for one
# experiment config at a time.
_cache: dict[str, object] = {"config": None, "participants": {}}


class InjectedFailure(RuntimeError):
    """Raised on purpose by the failure-injection test hook."""


def _participant(flat_config: dict, partition_id: int) -> Participant:
    config = from_flat(flat_config, source="train message config")
    if _cache["config"] != config:
        _cache["config"], _cache["participants"] = config, {}
    participants: dict[int, Participant] = _cache["participants"]  # type: ignore[assignment]
    if partition_id not in participants:
        subjects = dataset_for(config).subjects
        if partition_id >= len(subjects):
            raise RuntimeError(
                f"partition {partition_id} has no subject: dataset {config.data.dataset!r} has "
                f"{len(subjects)} subjects"
            )
        subject = subjects[partition_id]
        if subject not in federation_plan(config).clients:
            raise RuntimeError(f"subject {subject} (partition {partition_id}) is not a client")
        participants[partition_id] = Participant(config, subject)
    return participants[partition_id]


# Error code of a reply whose local training raised.
CLIENT_TRAINING_FAILED = 100


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Tell the server which partition this node serves (node ids are random per run)."""
    partition_id = int(context.node_config["partition-id"])
    content = RecordDict({TRUTH_KEY: ConfigRecord({"partition-id": partition_id})})
    return Message(content=content, reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """One round of local training; a failure becomes an error reply with a one-line reason."""
    partition_id = int(context.node_config["partition-id"])
    try:
        return _train(msg, partition_id)
    except Exception as exc:  # noqa: BLE001 -- reported to the server, which records it
        reason = f"partition {partition_id}: {type(exc).__name__}: {exc}"
        return Message(Error(code=CLIENT_TRAINING_FAILED, reason=reason), reply_to=msg)


def _train(msg: Message, partition_id: int) -> Message:
    torch.set_num_threads(1)  # one actor per core; more threads slow the round down
    flat = dict(msg.content[CONFIG_KEY])
    server_round = int(flat.get(ROUND_KEY, flat.get("server-round", 1)))
    failure = str(flat.get(FAILURE_KEY, ""))
    if failure and failure == f"{partition_id}:{server_round}":
        raise InjectedFailure(f"injected failure of partition {partition_id} in round {server_round}")
    participant = _participant(flat, partition_id)
    update = participant.train_round(msg.content[ARRAYS_KEY].to_torch_state_dict(), server_round)
    content = RecordDict(
        {
            ARRAYS_KEY: ArrayRecord(update.state_dict),
            METRICS_KEY: MetricRecord(
                {
                    "num-examples": int(update.label_counts.sum()),
                    "train-loss": update.mean_loss,
                    "train-seconds": update.seconds,
                }
            ),
            TRUTH_KEY: ConfigRecord(
                {
                    "partition-id": partition_id,
                    "subject": participant.subject,
                    "label-counts": [int(c) for c in update.label_counts],
                }
            ),
        }
    )
    return Message(content=content, reply_to=msg)
