"""Round time and whole-process-tree memory against sampled clients and population size.

Each point is one real ``fl-har run`` (Flower's simulation engine on Ray, HAPT, untrained
DeepConvLSTM, frozen regime, N = 5 windows per client and round (the shortest 7.5 s session holds 6), S = 1, the attacks LLG and EBI),
started as a subprocess. While it runs, this script samples every process of its tree (the driver,
Ray's GCS, raylet and agents, the workers that serve the simulated clients) from ``/proc`` four
times a second and keeps the peak of their summed PSS (proportional set size: a page shared by k
processes, such as libtorch's code, counts 1/k in each, so the sum is the tree's real footprint)
and of their summed RSS (what ``top`` adds up: shared pages counted once per process).

Two sweeps:

- sampled clients per round K = 10, 30, 100, 300 from a population of 2,995 clients (HAPT cut
  into 7.5 s sessions, ``data.client_unit = "session"``, ``session_minutes = 0.125``): the
  steady-state round time should grow linearly with K;
- population P = 30 (subjects), 189 (2-minute sessions), 749 (0.5), 2,995 (0.125) at K = 30:
  round time and memory should stay flat.

The steady-state round time is the median of ``round_seconds`` over rounds 2..R (round 1 includes
the workers' start-up). ``--breakdown`` prints, for the 30-subject default, the peak PSS per kind of
process. Last, the same largest-population point with Flower's own message delivery
(``FL_HAR_FLOWER_DELIVERY=1``) and with fl-har's single pass (``fl_har_app/simulation_patch.py``),
wall time included (it contains the start-up query of every node). Usage:
``python benchmarks/scale.py [--rounds 4] [--quick] [--breakdown] [--delivery-only]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
BASE = [
    "run.regime='frozen'", "client.batch_size=5", "client.local_steps=1",
    "attacks.names='llg,ebi'", "run.allow_client_failures=false",
]
POPULATION_SESSION = 0.125  # minutes: 2,995 HAPT sessions


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree[int(fields[1])].append(int(entry))
    return tree


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants, from /proc."""
    tree, found, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return found


def _kind(pid: int) -> str:
    """A short name for a process: Ray sets its workers' titles (ray::...), others by command."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            command = handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"
    if command.startswith("ray::"):
        return command.split()[0].split(".")[0].split("(")[0]
    for name in ("gcs_server", "raylet", "dashboard_agent", "runtime_env/agent", "log_monitor",
                 "monitor.py", "dashboard.py", "reaper", "default_worker"):
        if name in command:
            return name
    return "fl-har driver" if "fl-har" in command or "fl_har" in command else command[:40]


def memory_kb(pid: int) -> tuple[int, int]:
    """(PSS, RSS) of one process in kB (0, 0 if it is gone)."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except OSError:
        pass
    return pss, rss


class TreeSampler(threading.Thread):
    """Samples a process tree's summed PSS and RSS until stopped; keeps the peaks."""

    def __init__(self, root: int, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak_pss = self.peak_rss = 0
        self.breakdown: dict[str, int] = {}
        self.processes = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            by_kind: dict[str, int] = defaultdict(int)
            pss_total = rss_total = 0
            pids = process_tree(self.root)
            for pid in pids:
                pss, rss = memory_kb(pid)
                pss_total += pss
                rss_total += rss
                by_kind[_kind(pid)] += pss
            if pss_total > self.peak_pss:
                self.peak_pss, self.breakdown, self.processes = pss_total, dict(by_kind), len(pids)
            self.peak_rss = max(self.peak_rss, rss_total)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def run_point(out: Path, name: str, overrides: list[str], rounds: int,
              env: dict[str, str] | None = None) -> dict:
    """One ``fl-har run``; its wall time, steady round time and the tree's peak memory."""
    command = [sys.executable, "-m", "fl_har_app", "run", "--out", str(out),
               "--set", f"run.name='{name}'", "--set", f"run.rounds={rounds}"]
    for item in [*BASE, *overrides]:
        command += ["--set", item]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, **(env or {})})
    sampler = TreeSampler(process.pid)
    sampler.start()
    _, stderr = process.communicate()
    sampler.stop()
    wall = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{name}: fl-har run exited {process.returncode}\n{stderr.decode()}")
    rounds_table = pd.read_csv(out / name / "rounds.csv")
    participants = pd.read_csv(out / name / "participants.csv")
    steady = rounds_table["round_seconds"].iloc[1:]
    return {
        "population": int((participants["role"] == "client").sum()),
        "round_s": statistics.median(steady) if len(steady) else float("nan"),
        "first_round_s": float(rounds_table["round_seconds"].iloc[0]),
        "wall_s": wall,
        "peak_pss_mb": sampler.peak_pss / 1024,
        "peak_rss_mb": sampler.peak_rss / 1024,
        "processes": sampler.processes,
        "breakdown": sampler.breakdown,
    }


def _population(minutes: float) -> list[str]:
    return ["data.client_unit='session'", f"data.session_minutes={minutes}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="K = 10, 30 and P = 30, 189 only")
    parser.add_argument("--delivery-only", action="store_true",
                        help="only compare Flower's message delivery with the single pass")
    parser.add_argument("--breakdown", action="store_true",
                        help="peak PSS per kind of process of the 30-subject default")
    args = parser.parse_args()
    sampled = [10, 30] if args.quick else [10, 30, 100, 300]
    populations = ([(None, "30 subjects"), (2.0, "2-min sessions")] if args.quick else
                   [(None, "30 subjects"), (2.0, "2-min sessions"), (0.5, "30-s sessions"),
                    (POPULATION_SESSION, "7.5-s sessions")])
    print(f"HAPT, DeepConvLSTM, frozen, N=5, S=1, attacks llg+ebi, {args.rounds} rounds per point, "
          f"{os.cpu_count()} CPUs; round = median of rounds 2..{args.rounds}")
    with tempfile.TemporaryDirectory(prefix="fl-har-scale-") as tmp:
        out = Path(tmp)
        if args.delivery_only:
            delivery(out, args.rounds)
            return
        if args.breakdown:
            point = run_point(out, "default", ["client.batch_size=100"], args.rounds)
            print(f"\nthe 30-client default (N=100): peak PSS {point['peak_pss_mb']:.0f} MB, "
                  f"RSS {point['peak_rss_mb']:.0f} MB over {point['processes']} processes")
            for kind, kb in sorted(point["breakdown"].items(), key=lambda kv: -kv[1]):
                print(f"  {kind:<36} {kb / 1024:8.0f} MB")
        print(f"\nsampled clients per round, population {POPULATION_SESSION}-min sessions")
        print(f"{'K':>5} {'population':>10} {'round s':>8} {'s/client':>9} {'round 1 s':>9} "
              f"{'peak PSS MB':>11} {'peak RSS MB':>11} {'procs':>5}")
        for k in sampled:
            p = run_point(out, f"k{k}", [*_population(POPULATION_SESSION),
                                         f"run.clients_per_round={k}"], args.rounds)
            print(f"{k:>5} {p['population']:>10} {p['round_s']:>8.2f} {p['round_s'] / k:>9.3f} "
                  f"{p['first_round_s']:>9.2f} {p['peak_pss_mb']:>11.0f} {p['peak_rss_mb']:>11.0f} "
                  f"{p['processes']:>5}")
        print("\npopulation, K = 30 sampled per round (wall: the whole run, start-up included)")
        print(f"{'population':>10} {'clients are':<16} {'round s':>8} {'round 1 s':>9} "
              f"{'wall s':>7} {'peak PSS MB':>11} {'peak RSS MB':>11} {'procs':>5}")
        for minutes, label in populations:
            overrides = ["run.clients_per_round=30"]
            if minutes is not None:
                overrides += _population(minutes)
            p = run_point(out, f"p{label.split()[0]}", overrides, args.rounds)
            print(f"{p['population']:>10} {label:<16} {p['round_s']:>8.2f} "
                  f"{p['first_round_s']:>9.2f} {p['wall_s']:>7.1f} {p['peak_pss_mb']:>11.0f} "
                  f"{p['peak_rss_mb']:>11.0f} {p['processes']:>5}")
        delivery(out, args.rounds)


def delivery(out: Path, rounds: int) -> None:
    """Flower's message delivery against fl-har's single pass (fl_har_app/simulation_patch.py)
    on the largest population, K = 30, in one run of this script."""
    overrides = [*_population(POPULATION_SESSION), "run.clients_per_round=30"]
    print(f"\nmessage delivery, population {POPULATION_SESSION}-min sessions, K = 30")
    print(f"{'delivery':<28} {'round s':>8} {'round 1 s':>9} {'wall s':>7}")
    points = {}
    for label, flag in (("Flower's per-node loop", "1"), ("fl-har single pass", "0")):
        p = run_point(out, f"delivery{flag}", overrides, rounds,
                      env={"FL_HAR_FLOWER_DELIVERY": flag})
        points[label] = p
        print(f"{label:<28} {p['round_s']:>8.2f} {p['first_round_s']:>9.2f} {p['wall_s']:>7.1f}")
    flower, ours = points.values()
    print(f"ratio Flower / single pass: round {flower['round_s'] / ours['round_s']:.2f}, "
          f"wall {flower['wall_s'] / ours['wall_s']:.2f}")


if __name__ == "__main__":
    main()
