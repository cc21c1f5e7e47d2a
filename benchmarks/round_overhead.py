"""What Flower's simulation costs on top of the clients' own work.

Runs the same experiment (HAPT, untrained DeepConvLSTM, 30 clients, N = 100, S = 1, the five paper
attacks, 5 rounds, frozen model) twice in one go:

1. through ``fl-har run``'s path: Flower's simulation engine (Ray), one CPU per client;
2. as a plain in-process loop: a pool of 2 worker processes doing the same client work
   (``fl_har.federation.Participant``), the server attacking and averaging in the parent.

It prints the steady-state round time of both (rounds 2..R, after start-up), their ratio
(target <= 1.5), the start-up cost of each separately, and the attacks' share of a round.
Usage: ``python benchmarks/round_overhead.py [--rounds 5] [--clients 30]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fl_har.config import load_config
from fl_har.federation import Participant, federation_plan, initial_model
from fl_har.results import RunStore

_worker_participants: dict[int, Participant] = {}


def _init_worker() -> None:
    torch.set_num_threads(1)


def _client_work(args):
    config, subject, state, server_round = args
    if subject not in _worker_participants:
        _worker_participants[subject] = Participant(config, subject)
    update = _worker_participants[subject].train_round(state, server_round)
    return subject, update.state_dict, update.label_counts


def plain_loop(config, rounds: int) -> tuple[float, list[float], float]:
    """(start-up seconds, per-round seconds, attack seconds per round) of the reference loop."""
    from attacks import last_layer_update
    from fl_har.models import HEAD_NAME
    from strategies.leakage import attack_update
    from strategies.server_app import make_context_factory

    start = time.perf_counter()
    plan = federation_plan(config)
    model = initial_model(config, plan)
    sent = {k: v.clone() for k, v in model.state_dict().items()}
    factory = make_context_factory(config, plan)
    pool = mp.get_context("spawn").Pool(2, initializer=_init_worker)
    # start-up: workers import torch and load the data once (like Ray actors do)
    pool.map(_client_work, [(config, s, sent, 1) for s in plan.clients[:2]])
    startup = time.perf_counter() - start
    round_times, attack_times = [], []
    for server_round in range(1, rounds + 1):
        t0 = time.perf_counter()
        results = pool.map(_client_work, [(config, s, sent, server_round) for s in plan.clients])
        ta = time.perf_counter()
        context = factory(server_round, sent)
        for _, state, counts in results:
            update = last_layer_update(
                sent, state, num_samples=int(counts.sum()), lr=config.client.lr,
                local_steps=config.client.local_steps, head_prefix=HEAD_NAME,
            )
            attack_update(update, config.attacks.names, context)
        attack_times.append(time.perf_counter() - ta)
        total = sum(float(c.sum()) for _, _, c in results)
        _ = {
            k: sum(s[k].numpy() * (float(c.sum()) / total) for _, s, c in results)
            for k in sent
        }  # FedAvg, computed (not applied: frozen regime) as the strategy does
        round_times.append(time.perf_counter() - t0)
    pool.close()
    pool.join()
    return startup, round_times, float(np.mean(attack_times[1:]))  # round 1 calibrates


def flower_run(config, rounds: int) -> tuple[float, list[float], float, float]:
    from fl_har_app.launcher import run_simulation

    plan = federation_plan(config)
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore.create(Path(tmp) / "bench", config.to_dict(), seed=config.run.seed)
        start = time.perf_counter()
        status = run_simulation(config, store, len(plan.subjects))
        wall = time.perf_counter() - start
        if status != "finished":
            raise SystemExit(f"Flower run {status}: {store.meta.get('message')}")
        table = store.round_table()
    round_times = list(table["round_seconds"])
    attack = float(table["attack_seconds"].iloc[1:].mean())
    return wall - sum(round_times[1:]), round_times, attack, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=30)
    args = parser.parse_args()
    config = load_config(
        None,
        [f"run.rounds={args.rounds}", f"data.clients='1-{args.clients}'", "run.name='bench'"],
    )
    print(f"{args.clients} clients, {args.rounds} rounds, N=100, S=1, DeepConvLSTM, "
          f"{os.cpu_count()} CPUs")
    p_start, p_rounds, p_attack = plain_loop(config, args.rounds)
    f_start, f_rounds, f_attack, f_wall = flower_run(config, args.rounds)
    p_steady = statistics.mean(p_rounds[1:])
    f_steady = statistics.mean(f_rounds[1:])
    print(f"{'':28s}{'plain loop':>12s}{'Flower/Ray':>12s}")
    print(f"{'start-up + round 1 (s)':28s}{p_start + p_rounds[0]:12.2f}{f_start:12.2f}")
    print(f"{'steady round, mean (s)':28s}{p_steady:12.2f}{f_steady:12.2f}")
    print(f"{'  of which attacks (s)':28s}{p_attack:12.2f}{f_attack:12.2f}")
    print(f"{'attacks share of a round':28s}{p_attack / p_steady:12.1%}{f_attack / f_steady:12.1%}")
    ratio = f_steady / p_steady
    verdict = "meets" if ratio <= 1.5 else "MISSES"
    print(f"steady-state ratio Flower / plain: {ratio:.2f} ({verdict} the <= 1.5 target); "
          f"Flower wall time {f_wall:.1f} s")


if __name__ == "__main__":
    main()
