"""The honest HAR client: a Flower ClientApp (Message API) in which each node is one participant.

The server sends, with the global weights, the whole flat experiment config; the node's
``partition-id`` picks its subject: partition ``i`` is the ``i``-th subject of the dataset (in
sorted order), so one simulation can serve experiments with different client subsets. The server
first asks every node for its partition (a ``query`` message) and then addresses only the nodes
of the experiment's client subjects. The client draws this round's batch with the configured
sampler, trains S local SGD steps (with local clipping/noise if configured) and replies as
:mod:`protocol` defines: the new weights, ``num-examples`` N and its loss and time, and, on the
simulation-truth channel, the true label histogram of the batch (read by the server's scoring
step only).
"""

from __future__ import annotations

import time
from collections import OrderedDict

import torch
from flwr.app import Context, Error, Message, MessageType
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod
from flwr.clientapp.typing import ClientAppCallable
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

import protocol
from clients import malicious
from fl_har.config import ExperimentConfig, from_flat
from fl_har.faults import client_faults
from fl_har.federation import Participant, dataset_for, federation_plan


def central_clipping_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Flower's ``fixedclipping_mod`` on train messages that carry a clipping norm.

    ``server.dp = "central_fixed_client"`` puts the norm in the train config (Flower's
    ``DifferentialPrivacyClientSideFixedClipping``); every other message passes untouched (the
    stock mod answers messages without the norm, such as the partition query, with an error).
    """
    if msg.metadata.message_type == MessageType.TRAIN and any(
        KEY_CLIPPING_NORM in record for record in msg.content.config_records.values()
    ):
        return fixedclipping_mod(msg, context, call_next)
    return call_next(msg, context)


app = ClientApp(mods=[central_clipping_mod])

# Participants are cached per process (a Ray actor serves many partitions and rounds), for one
# experiment config at a time, the most recently served ones only: with thousands of session
# clients a process would otherwise keep every participant it ever served. Rebuilding one is
# cheap (windows come from federation's cache, samplers are pure functions of the round).
MAX_CACHED_PARTICIPANTS = 128
_cache: dict[str, object] = {"config": None, "participants": OrderedDict()}


class InjectedFailure(RuntimeError):
    """Raised on purpose by the failure-injection test hook."""


class InjectedCrash(RuntimeError):
    """Raised on purpose by a ``[faults]`` crash (recorded with cause ``crash``)."""


def _participant(config: ExperimentConfig, partition_id: int) -> Participant:
    if _cache["config"] != config:
        _cache["config"], _cache["participants"] = config, OrderedDict()
    participants: OrderedDict[int, Participant] = _cache["participants"]  # type: ignore[assignment]
    if partition_id in participants:
        participants.move_to_end(partition_id)
    else:
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
        if len(participants) > MAX_CACHED_PARTICIPANTS:
            participants.popitem(last=False)
    return participants[partition_id]


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Tell the server which partition this node serves (node ids are random per run)."""
    partition_id = int(context.node_config["partition-id"])
    return Message(content=protocol.encode_identity(partition_id), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """One round of local training; a failure becomes an error reply with a one-line reason."""
    partition_id = int(context.node_config["partition-id"])
    try:
        return _train(msg, partition_id)
    except Exception as exc:  # noqa: BLE001 -- reported to the server, which records it
        reason = f"partition {partition_id}: {type(exc).__name__}: {exc}"
        code = (protocol.CLIENT_CRASHED if isinstance(exc, InjectedCrash)
                else protocol.CLIENT_TRAINING_FAILED)
        return Message(Error(code=code, reason=reason), reply_to=msg)


def _train(msg: Message, partition_id: int) -> Message:
    torch.set_num_threads(1)  # one actor per core; more threads slow the round down
    global_state, flat = protocol.decode_train_request(msg.content)
    run_round = protocol.run_round(flat)
    failure = str(flat.get(protocol.FAILURE_KEY, ""))
    if failure and failure == f"{partition_id}:{run_round}":
        raise InjectedFailure(f"injected failure of partition {partition_id} in round {run_round}")
    config = from_flat(flat, source="train message config")
    participant = _participant(config, partition_id)
    faults = client_faults(config, partition_id, participant.subject, run_round)
    if faults.dropout:
        # The update never reaches the server; the simulation says so at once instead of
        # holding an actor until the round's timeout.
        reason = (f"partition {partition_id}: dropped out in round {run_round} "
                  f"(faults.dropout = {config.faults.dropout})")
        return Message(Error(code=protocol.CLIENT_DROPPED_OUT, reason=reason), reply_to=msg)
    if faults.delay:
        time.sleep(faults.delay)  # a straggler: late, and lost if past simulation.timeout
    # A node whose subject is a backdoor adversary ([adversary]) trains maliciously.
    attacker = malicious.attacker_for(participant)
    attack_metrics: dict[str, float] = {}
    is_malicious = False
    if attacker is None:
        update = participant.train_round(global_state, run_round)
    else:
        update, attack_metrics, is_malicious = attacker.train_round(global_state, run_round)
    if faults.crash:
        raise InjectedCrash(f"crashed in round {run_round} (faults.crash_round, crash_clients)")
    reply = protocol.TrainReply(
        state=update.state_dict,
        num_examples=update.reported_examples,
        train_loss=update.mean_loss,
        train_seconds=update.seconds,
        extra_metrics=update.metrics,  # e.g. the client's cumulative DP-SGD epsilon
        truth=protocol.SimulationTruth(update.label_counts, malicious=is_malicious,
                                       attack_metrics=attack_metrics),
    )
    return Message(content=protocol.encode_train_reply(reply), reply_to=msg)
