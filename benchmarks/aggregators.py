"""What robust aggregation costs the server, against one client's local training round.

Model: DeepConvLSTM for HAPT's shapes (3 channels, 13 classes, windows of 50). A round of 30
replies: 27 benign updates (a shared direction plus client noise, norm ~1e-2 as an SGD step of
lr 0.01 gives) and 3 boosted attackers (10x, opposite direction), as ``float32`` ArrayRecords in
Flower Messages. Each aggregator is timed through its Flower strategy's ``aggregate_train`` (the
path the server runs: reading the replies, flattening, the rule, rebuilding the ArrayRecord);
replies are rebuilt before every call because Flower's median / trimmed mean / Bulyan consume
them. FLTrust's time includes the server's own root-update pass (``fl_har.training.local_update``
on N = 100 windows). The reference is one client's local round: ``local_update`` with N = 100,
S = 1, one torch thread (as a Flower client actor runs). Issue 10's target is aggregation
under 5 % of a round's training: the round of the defences experiments, in which each of the 30
clients trains one local epoch over its windows (``--epoch-windows``, default 1,400: a mean HAPT
subject) in mini-batches of 100, the clients spread over this machine's cores as the simulation
spreads its actors (round = 30 x one client's epoch / cores). "plain" rows are Flower's strategies
without decision recording (the recording's overhead is the difference). Times are medians over
``--repeats`` calls after one warm-up call. BLAS runs on one thread (``OPENBLAS_NUM_THREADS=1`` unless set): on
2 cores shared with busy client actors, a multi-threaded OpenBLAS Gram matrix took 0.5-12 s
instead of 0.06 s here.
Usage: ``python benchmarks/aggregators.py [--repeats 3]``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads OpenBLAS

import argparse
import statistics
import time

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import Bulyan, FedAvg, FedMedian, Krum

from fl_har.models import build_model
from fl_har.training import LocalTrainingConfig, local_update
from strategies.local_grid import LocalGrid
from strategies.robust.defences import Flame, FLTrust, NormClipping
from strategies.robust.recording import (
    RecordingBulyan,
    RecordingFedMedian,
    RecordingFedTrimmedAvg,
    RecordingKrum,
    RecordingMultiKrum,
)

CHANNELS, CLASSES, WINDOW, N, LR = 3, 13, 50, 100, 0.01
CLIENTS, ATTACKERS = 30, 3
SAMPLING = {"fraction_train": 1.0, "fraction_evaluate": 0.0, "min_train_nodes": 1,
            "min_available_nodes": 1}


def make_updates(state: dict[str, np.ndarray], seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    direction = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in state.items()}
    scale = 1e-2 / np.sqrt(sum(float((d ** 2).sum()) for d in direction.values()))
    updates = []
    for i in range(CLIENTS):
        boost = -10.0 if i >= CLIENTS - ATTACKERS else 1.0
        updates.append({k: (boost * scale * (d + 0.5 * rng.normal(size=d.shape))).astype(
            np.float32) for k, d in direction.items()})
    return updates


def scripted_grid(updates):
    def handler(msg: Message, context) -> Message:
        i = int(context.node_config["partition-id"])
        sent = msg.content["arrays"]
        arrays = ArrayRecord({k: Array(sent[k].numpy() + updates[i][k]) for k in sent})
        return Message(RecordDict({"arrays": arrays,
                                   "metrics": MetricRecord({"num-examples": N})}), reply_to=msg)

    return LocalGrid(handler, len(updates), seed=1)


def time_strategy(strategy, grid, sent: ArrayRecord, repeats: int) -> tuple[float, int, int]:
    """Median seconds of aggregate_train over fresh replies; of the last round, the number of
    updates admitted (not excluded) and how many of them are attackers'."""
    times = []
    admitted, attackers_in = -1, -1  # no decisions recorded
    for server_round in range(1, repeats + 2):
        messages = strategy.configure_train(server_round, sent, ConfigRecord({}), grid)
        replies = list(grid.send_and_receive(messages))
        replies.sort(key=lambda m: grid.node_ids.index(m.metadata.src_node_id))
        start = time.perf_counter()
        strategy.aggregate_train(server_round, replies)
        if server_round > 1:
            times.append(time.perf_counter() - start)
        take = getattr(strategy, "take_decisions", None)
        if take is not None:
            decisions = take(server_round)
            admitted = sum(d.status != "excluded" for d in decisions.values())
            attackers_in = sum(decisions[node].status != "excluded"
                               for node in grid.node_ids[CLIENTS - ATTACKERS:])
    return statistics.median(times), admitted, attackers_in


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epoch-windows", type=int, default=1400,
                        help="windows of one client's local epoch in the round reference")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = build_model("deepconvlstm", CHANNELS, CLASSES, window=WINDOW, seed=0)
    params = sum(p.numel() for p in model.parameters())
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    sent = ArrayRecord({k: Array(v) for k, v in state.items()})
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, WINDOW, CHANNELS)).astype(np.float32)
    y = rng.integers(0, CLASSES, size=N)
    training = LocalTrainingConfig(lr=LR)

    def client_round() -> float:
        model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
        start = time.perf_counter()
        local_update(model, x, y, training, num_classes=CLASSES, seed=1)
        return time.perf_counter() - start

    client_round()
    client = statistics.median(client_round() for _ in range(args.repeats))
    steps = args.epoch_windows // N
    x_epoch = rng.normal(size=(steps * N, WINDOW, CHANNELS)).astype(np.float32)
    y_epoch = rng.integers(0, CLASSES, size=steps * N)
    epoch_training = LocalTrainingConfig(lr=LR, local_steps=steps)

    def client_epoch() -> float:
        model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
        start = time.perf_counter()
        local_update(model, x_epoch, y_epoch, epoch_training, num_classes=CLASSES, seed=1)
        return time.perf_counter() - start

    epoch = statistics.median(client_epoch() for _ in range(args.repeats))
    cores = os.cpu_count() or 1
    round_seconds = CLIENTS * epoch / cores

    updates = make_updates(state)

    def root_update_fn(server_round, sent_state):
        # the server's pass is run for its cost; its result is replaced by the benign clients'
        # mean so that the trust scores mean something on these synthetic updates
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in sent_state.items()})
        local_update(model, x, y, training, num_classes=CLASSES, seed=server_round)
        benign = updates[:CLIENTS - ATTACKERS]
        return {k: v + np.mean([u[k] for u in benign], axis=0) for k, v in sent_state.items()}

    grid = scripted_grid(updates)
    strategies = {
        "fedavg (Flower)": FedAvg(**SAMPLING),
        "median (Flower, plain)": FedMedian(**SAMPLING),
        "median (Flower)": RecordingFedMedian(**SAMPLING),
        "trimmed_mean 0.2 (Flower)": RecordingFedTrimmedAvg(**SAMPLING, beta=0.2),
        "krum f=3 (Flower, plain)": Krum(**SAMPLING, num_malicious_nodes=ATTACKERS),
        "krum f=3 (Flower)": RecordingKrum(**SAMPLING, num_malicious_nodes=ATTACKERS),
        "multikrum f=3 (Flower)": RecordingMultiKrum(
            **SAMPLING, num_malicious_nodes=ATTACKERS, num_nodes_to_select=CLIENTS - ATTACKERS),
        "bulyan f=3 (Flower, plain)": Bulyan(**SAMPLING, num_malicious_nodes=ATTACKERS),
        "bulyan f=3 (Flower)": RecordingBulyan(**SAMPLING, num_malicious_nodes=ATTACKERS),
        "clip M=0.01, z=0.1": NormClipping(**SAMPLING, clip_norm=0.01, noise_multiplier=0.1),
        "flame lambda=0.001": Flame(**SAMPLING, noise_lambda=0.001),
        "fltrust (+ root pass)": FLTrust(**SAMPLING, root_update_fn=root_update_fn),
    }
    print(f"model: DeepConvLSTM {CHANNELS} ch / {CLASSES} classes / window {WINDOW}: "
          f"{params} parameters; {CLIENTS} updates ({ATTACKERS} boosted attackers); "
          f"median of {args.repeats}")
    print(f"one client's local round (N={N}, S=1, 1 torch thread): {client:.3f} s")
    print(f"one client's local epoch ({steps * N} windows, {steps} steps of {N}): {epoch:.3f} s; "
          f"round of {CLIENTS} such clients on {cores} cores: {round_seconds:.2f} s")
    print(f"{'aggregator':30s} {'seconds':>8s} {'vs client':>10s} {'vs fedavg':>10s} "
          f"{'vs round':>9s} {'< 5 %':>6s} admitted (attackers)")
    baseline = None
    for name, strategy in strategies.items():
        seconds, admitted, attackers_in = time_strategy(strategy, grid, sent, args.repeats)
        baseline = baseline or seconds
        kept = f"{admitted:>5d}/{CLIENTS} ({attackers_in})" if admitted >= 0 else "    -"
        share = seconds / round_seconds
        print(f"{name:30s} {seconds:8.3f} {seconds / client:9.2f}x {seconds / baseline:9.1f}x "
              f"{share:8.1%} {'pass' if share < 0.05 else 'FAIL':>6s} {kept}")


if __name__ == "__main__":
    main()
