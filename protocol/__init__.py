"""The messages between the fl-har server and its clients: one definition both sides import.

The server sends a ``train`` message holding the global weights (``arrays``) and the whole flat
experiment config (``config``), as Flower's strategies build it; a client reads it with
:func:`decode_train_request` and :func:`run_round` and replies with :func:`encode_train_reply`. Before
the first round the server asks every node which partition (study participant) it serves with a
``query`` message (:func:`encode_identity` / :func:`decode_identity`): node ids are random per
run, so everything on the server is keyed by partition through that answer, never through a field
of a train reply.

A train reply carries

- ``arrays``: the weights after local training (an ``ArrayRecord``);
- ``metrics``: ``num-examples`` (N: FedAvg's weight and the attacks' batch size), ``train-loss``,
  ``train-seconds`` and any extra numbers a client reports (``MetricRecord``);
- ``simulation-truth``: what only a simulation knows, the true label histogram of the windows the
  client trained on. It exists so the server can *score* its attacks; the server's scoring step is
  its only reader, and a deployment can drop it without changing anything else.

Error replies carry one of the codes below and a one-line reason naming the partition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict

ARRAYS_KEY = "arrays"
METRICS_KEY = "metrics"
CONFIG_KEY = "config"
IDENTITY_KEY = "identity"
TRUTH_KEY = "simulation-truth"
ATTACK_METRIC_PREFIX = "attack."  # keys of SimulationTruth.attack_metrics in the truth record

# Config keys the server adds to the experiment config of a train message. Flower's strategies
# put Flower's round number under "server-round"; a resumed run continues its own numbering.
SERVER_ROUND_KEY = "server-round"
ROUND_OFFSET_KEY = "fl-har.round-offset"  # run round = Flower's round + offset
FAILURE_KEY = "fl-har.inject-failure"  # test hook "partition:round": that client raises

# Metric keys every train reply has (Flower's FedAvg weights replies by NUM_EXAMPLES).
NUM_EXAMPLES = "num-examples"
TRAIN_LOSS = "train-loss"
TRAIN_SECONDS = "train-seconds"

# Error codes of replies.
CLIENT_TRAINING_FAILED = 100  # the client's local training raised
CLIENT_DROPPED_OUT = 101  # injected fault: the client dropped out this round (faults.dropout)
CLIENT_CRASHED = 102  # injected fault: the client crashed during the round (faults.crash_*)

# What the server records as the cause of a missing update (updates table, column "cause").
CAUSE_ERROR = "error"  # an error reply (the client raised, or Flower could not run it)
CAUSE_DROPOUT = "dropout"
CAUSE_CRASH = "crash"
CAUSE_TIMEOUT = "timeout"  # no reply within simulation.timeout
CAUSE_FOREIGN = "foreign-node"  # a reply from a node outside the experiment
_CAUSES = {CLIENT_DROPPED_OUT: CAUSE_DROPOUT, CLIENT_CRASHED: CAUSE_CRASH}


def failure_cause(error_code: int) -> str:
    """The recorded cause of an error reply with ``error_code`` (any other code: ``error``)."""
    return _CAUSES.get(int(error_code), CAUSE_ERROR)


class ProtocolError(ValueError):
    """A message does not follow this protocol; the message says which record or key."""


@dataclass(frozen=True)
class SimulationTruth:
    """Ground truth that only a simulation has: for scoring attacks, never for attacking."""

    label_counts: np.ndarray  # true histogram of the reply's training windows, length C
    # The client sent a malicious (backdoor) update this round: for measuring attacks and
    # defences only (sent only when true, so honest replies are unchanged).
    malicious: bool = False
    # What a malicious client measured about its own attack (e.g. its update norm). On this
    # channel, not in the metrics: Flower's aggregators require every reply to carry the same
    # metric keys, and a key only attackers send would unmask them to any defence.
    attack_metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainReply:
    """A client's answer to a train message, decoded."""

    state: dict[str, torch.Tensor]
    num_examples: int
    train_loss: float
    train_seconds: float
    extra_metrics: Mapping[str, float] = field(default_factory=dict)
    truth: SimulationTruth | None = None


def decode_train_request(content: RecordDict) -> tuple[dict[str, torch.Tensor], dict]:
    """``(global state dict, flat config)`` of a train message."""
    _require(content, ARRAYS_KEY, "train message")
    _require(content, CONFIG_KEY, "train message")
    return content[ARRAYS_KEY].to_torch_state_dict(), dict(content[CONFIG_KEY])


def run_round(flat_config: Mapping[str, object]) -> int:
    """The run's round number of a train message (Flower's round plus the resume offset)."""
    if SERVER_ROUND_KEY not in flat_config:
        raise ProtocolError(f"train message: config has no {SERVER_ROUND_KEY!r}")
    return int(flat_config[SERVER_ROUND_KEY]) + int(flat_config.get(ROUND_OFFSET_KEY, 0))


def encode_train_reply(reply: TrainReply) -> RecordDict:
    """The content of a train reply (see the module docstring)."""
    metrics = {
        NUM_EXAMPLES: int(reply.num_examples),
        TRAIN_LOSS: float(reply.train_loss),
        TRAIN_SECONDS: float(reply.train_seconds),
    }
    clash = set(metrics) & set(reply.extra_metrics)
    if clash:
        raise ProtocolError(f"extra_metrics may not redefine {sorted(clash)}")
    metrics.update({k: float(v) for k, v in reply.extra_metrics.items()})
    content = RecordDict({ARRAYS_KEY: ArrayRecord(reply.state), METRICS_KEY: MetricRecord(metrics)})
    if reply.truth is not None:
        counts = [int(c) for c in np.asarray(reply.truth.label_counts)]
        truth_record = ConfigRecord({"label-counts": counts})
        if reply.truth.malicious:
            truth_record["malicious"] = True
        for key, value in reply.truth.attack_metrics.items():
            truth_record[ATTACK_METRIC_PREFIX + key] = float(value)
        content[TRUTH_KEY] = truth_record
    return content


def decode_train_reply(content: RecordDict) -> TrainReply:
    """A train reply's content as a :class:`TrainReply` (truth included when present)."""
    _require(content, ARRAYS_KEY, "train reply")
    _require(content, METRICS_KEY, "train reply")
    metrics = dict(content[METRICS_KEY])
    for key in (NUM_EXAMPLES, TRAIN_LOSS, TRAIN_SECONDS):
        if key not in metrics:
            raise ProtocolError(f"train reply: metrics have no {key!r}")
    truth = None
    if TRUTH_KEY in content:
        truth = _truth(content[TRUTH_KEY])
    extra = {k: float(v) for k, v in metrics.items()
             if k not in (NUM_EXAMPLES, TRAIN_LOSS, TRAIN_SECONDS)}
    return TrainReply(
        state=content[ARRAYS_KEY].to_torch_state_dict(),
        num_examples=int(metrics[NUM_EXAMPLES]),
        train_loss=float(metrics[TRAIN_LOSS]),
        train_seconds=float(metrics[TRAIN_SECONDS]),
        extra_metrics=extra,
        truth=truth,
    )


def take_truth(content: RecordDict) -> SimulationTruth | None:
    """Remove the simulation's ground truth from a reply and return it (None if absent).

    The server calls this before any aggregation or attack sees the reply, and hands the truth
    to its scoring step alone.
    """
    if TRUTH_KEY not in content:
        return None
    return _truth(content.pop(TRUTH_KEY))


def _truth(record: ConfigRecord) -> SimulationTruth:
    return SimulationTruth(
        np.asarray(record["label-counts"], dtype=np.int64),
        malicious=bool(record.get("malicious", False)),
        attack_metrics={k[len(ATTACK_METRIC_PREFIX):]: float(v) for k, v in record.items()
                        if k.startswith(ATTACK_METRIC_PREFIX)},
    )


def encode_identity(partition_id: int) -> RecordDict:
    """A node's answer to the server's query: the partition (participant) it serves."""
    return RecordDict({IDENTITY_KEY: ConfigRecord({"partition-id": int(partition_id)})})


def decode_identity(content: RecordDict) -> int:
    """The partition id in a query reply."""
    _require(content, IDENTITY_KEY, "query reply")
    return int(content[IDENTITY_KEY]["partition-id"])


def _require(content: RecordDict, key: str, what: str) -> None:
    if key not in content:
        raise ProtocolError(f"{what}: no record {key!r} (records: {sorted(content)})")
