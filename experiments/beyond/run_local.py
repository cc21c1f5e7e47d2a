"""Run the cells of a sweep file in-process (no Ray): for small runs on a busy machine.

    python experiments/beyond/run_local.py experiments/beyond/attacks.toml --out DIR \
        --set model.init=pretrained.pt --set data.clients=1-6 ...

Each cell runs through the real ServerApp logic and ClientApp, delivered by ``LocalGrid`` (the
in-process grid the golden tests use), and writes a normal run directory under
``DIR/<sweep name>/<run id>``; ``make_results.py`` reads them like Ray runs. Cells with
``model.init = "pretrained"`` need a checkpoint: pass ``--set model.init=PATH``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from clients.har_client import app as client_app
from fl_har.federation import dataset_for
from fl_har.results import RunStore
from fl_har.sweep import load_sweep
from strategies.local_grid import LocalGrid
from strategies.server_app import run_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep")
    parser.add_argument("--out", required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    sweep = load_sweep(args.sweep, args.overrides)
    for run in sweep.runs:
        if run.pretrain_key is not None:
            raise SystemExit(f"{run.run_id}: needs pre-training; pass --set model.init=PATH")
        run_dir = Path(args.out) / sweep.name / run.run_id
        if (run_dir / "meta.json").exists():
            print(f"{run.run_id}: exists, skipped")
            continue
        start = time.perf_counter()
        store = RunStore.create(run_dir, run.config.to_dict(), seed=run.config.run.seed)
        grid = LocalGrid(client_app, len(dataset_for(run.config).subjects), seed=7)
        status = run_server(grid, run.config, store)
        print(f"{run.run_id}: {status} in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
