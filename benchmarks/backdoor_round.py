"""A poisoning client's round against an honest client's round, on HAPT, in one process.

Target (issue 9): a poisoning client's round costs no more than 1.5x an honest client's round
once the generator is cached. The setting is the federation of
``experiments/backdoor/hapt_grid.toml``: subject ``--attacker`` (default 3) trains one local epoch
(batches of 100, standardised accelerometer windows) of DeepConvLSTM, one torch thread as a Flower
client actor has. Rounds of every kind are interleaved (the machine is noisy) and each kind's
median round is divided by the honest median.

Kinds of round, all through ``clients.malicious.MaliciousParticipant.train_round``:

- ``stamp``: the additive burst on 10 % of the round's windows;
- ``diffusion, every round``: 10 % of the round's windows generated afresh (``poison_once`` off);
- ``diffusion once: first round``: ``poison_once``, the poisoned windows not yet on disk
  (generated: the attacker's first attack round);
- ``diffusion once: new worker``: ``poison_once``, another simulation worker's first round
  (its memory is empty, the windows are loaded from the disk cache);
- ``diffusion once: later rounds``: ``poison_once`` with the windows in memory.

A run of R rounds with ``poison_once`` costs the first-round ratio once and the later-rounds ratio
R - 1 times. The generator comes from ``--cache-dir`` (default: the one the backdoor sweeps fill,
``results/.cache/diffusion-triggers``); a missing one is trained first (about 1-6 minutes).

Run: ``python benchmarks/backdoor_round.py [--rounds 5] [--attacker 3] [--cache-dir DIR]``.
Prints a table; saves nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time

import torch

from clients import malicious
from fl_har.config import load_config
from fl_har.federation import Participant, working_model

TARGET = 1.5
GRID = [
    "run.regime=train", "run.seed=0", "data.dataset=hapt", 'data.clients="1-22"',
    'data.server_subjects="23-25"', 'data.eval_subjects="26-30"',
    "data.normalization=standardize", "model.name=deepconvlstm", "client.batch_size=100",
    "client.local_epochs=1", "client.lr=0.05", "client.sampler=shuffle",
    'adversary.target="walking_upstairs"', "adversary.stamp_channels=[0,1,2]",
    "adversary.stamp_amplitude=3.0", "adversary.poison_rate=0.1",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each kind (default 5)")
    parser.add_argument("--attacker", type=int, default=3, help="attacking subject (default 3)")
    parser.add_argument("--cache-dir", default="results/.cache/diffusion-triggers",
                        help="trained generators (default: the backdoor sweeps' cache)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    def attacker(*extra: str) -> malicious.MaliciousParticipant:
        config = load_config(None, [*GRID, f"adversary.clients=[{args.attacker}]",
                                    f"adversary.diffusion_cache={args.cache_dir!r}", *extra])
        return malicious.attacker_for(Participant(config, args.attacker))

    started = time.perf_counter()
    every_round = attacker("adversary.trigger=diffusion")
    generator = every_round.trigger
    print(f"generator of subject {args.attacker}: "
          f"{'from the cache' if generator.meta.get('cache_hit') else 'trained'} in "
          f"{time.perf_counter() - started:.1f} s ({generator.meta.get('cache_file')})")
    stamp = attacker("adversary.trigger=stamp")
    once = attacker("adversary.trigger=diffusion", "adversary.poison_once=true")
    # The fixed poisoned windows go to a fresh folder so the first round really generates them.
    poisoned_cache = tempfile.TemporaryDirectory(prefix="poisoned-windows-")
    once.plan = dataclasses.replace(
        once.plan, trigger_options={**once.plan.trigger_options, "cache_dir": poisoned_cache.name})
    honest = stamp.participant
    state = working_model(honest.config, honest.num_channels, honest.num_classes).state_dict()
    attackers = {"stamp": stamp, "diffusion, every round": every_round}
    times: dict[str, list[float]] = {name: [] for name in
                                     ["honest", *attackers, "diffusion once: first round",
                                      "diffusion once: new worker", "diffusion once: later rounds"]}

    def timed(name: str, client, run_round: int) -> None:
        start = time.perf_counter()
        client.train_round(state, run_round)
        times[name].append(time.perf_counter() - start)

    print(f"{args.rounds} rounds of each kind, interleaved ({len(honest.windows.y)} windows, "
          f"one epoch) ...", flush=True)
    for index in range(args.rounds):
        run_round = 3 + index  # attack rounds of the grid: 3-12
        timed("honest", honest, run_round)
        for name, attacker in attackers.items():
            timed(name, attacker, run_round)
        # first round of the run (nothing on disk) / of another worker (on disk) / later rounds
        malicious._cache["poisoned"] = {}
        first_or_new = "diffusion once: first round" if index == 0 else "diffusion once: new worker"
        timed(first_or_new, once, run_round)
        timed("diffusion once: later rounds", once, run_round + 1)
    poisoned_cache.cleanup()

    reference = statistics.median(times["honest"])
    print(f"\n{'round':32s} {'median s':>9s} {'x honest':>9s}  target <= {TARGET}x")
    for name, values in times.items():
        ratio = statistics.median(values) / reference
        verdict = "" if name in ("honest", "diffusion, every round",
                                 "diffusion once: first round") else (
            "ok" if ratio <= TARGET else "MISSED")
        print(f"{name:32s} {statistics.median(values):9.3f} {ratio:9.2f}  {verdict}")
    first = statistics.median(times["diffusion once: first round"]) / reference
    later = statistics.median(times["diffusion once: later rounds"]) / reference
    for rounds in (10, 30):
        print(f"poison_once over {rounds} attack rounds: "
              f"{(first + (rounds - 1) * later) / rounds:.2f}x an honest round")


if __name__ == "__main__":
    main()
