"""``fl-har sweep FILE``: run a grid of experiments in one Flower simulation, resumably."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fl_har.config import check_attacks
from fl_har.sweep import (
    MANIFEST,
    PretrainJob,
    Sweep,
    SweepRun,
    load_sweep,
    read_manifest,
    write_json_atomic,
)
from fl_har_app.console import console, fail


def add_parser(commands) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="run the grid of experiments a sweep file declares (resumable)",
        description="Run the cartesian product of experiments declared in a sweep file (TOML; "
        "see fl_har/sweep.py and experiments/paper/). Finished runs are skipped, interrupted ones "
        "resumed; models for 'pretrained' cells are pre-trained once per fold and cached. All runs "
        "share one Flower simulation, so Ray and the clients start once. Every run keeps its own "
        "run directory under <out>/<name>/cells/. Exit status 1 if any run failed.",
    )
    sweep.add_argument("file", help="sweep file (TOML)")
    sweep.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value in every cell, e.g. --set run.rounds=2 (repeatable)",
    )
    sweep.add_argument(
        "--name", help="sweep folder name instead of sweep.name (e.g. for another dataset)"
    )
    sweep.add_argument("--list", action="store_true", help="list the runs and their state; run nothing")
    sweep.add_argument("--verbose", "-v", action="store_true", help="show Flower's and Ray's logs")
    from fl_har_app.main import add_ray_address_arg

    add_ray_address_arg(sweep)


def _run_dir(sweep: Sweep, run: SweepRun) -> Path:
    return sweep.out_dir / "cells" / run.run_id


def run_state(sweep: Sweep, run: SweepRun) -> tuple[str, int]:
    """("finished" | "partial" | "failed" | "pending", rounds finished) from the run's meta.json."""
    meta_path = _run_dir(sweep, run) / "meta.json"
    if not meta_path.is_file():
        return "pending", 0
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return "pending", 0
    done = int(meta.get("last_finished_round", 0))
    if meta.get("status") == "finished" and done >= run.config.run.rounds:
        return "finished", done
    if meta.get("status") == "failed" and done >= run.config.run.rounds:
        return "failed", done
    return ("partial" if done else "pending"), done


def _pretrain(job: PretrainJob, console_progress: Progress) -> dict:
    from fl_har.federation import dataset_for
    from fl_har.pretrain import (
        PretrainConfig,
        load_checkpoint,
        pretrain,
        save_checkpoint,
        untrained_baseline,
    )

    config = job.config
    settings = PretrainConfig(
        model=config.model.name, epochs=job.spec.epochs, lr=job.spec.lr,
        batch_size=job.spec.batch_size, seed=config.run.seed, head_bias=config.model.head_bias,
        window=config.data.window, overlap=config.data.overlap,
        normalization=config.data.normalization,
    )
    if job.checkpoint.is_file():
        cached = load_checkpoint(job.checkpoint)
        meta = cached.meta
        if "untrained_eval_macro_f1" not in meta and job.eval_subjects:
            # checkpoints from before the baseline was recorded: add it once
            base = untrained_baseline(
                dataset_for(config), job.train_subjects, job.eval_subjects, settings
            )
            meta["untrained_eval_macro_f1"] = base.macro_f1
            meta["untrained_eval_accuracy"] = base.accuracy
            save_checkpoint(job.checkpoint, cached)
        return {"key": job.key, "checkpoint": str(job.checkpoint), "cached": True,
                "eval_macro_f1": meta.get("eval_macro_f1"), "eval_accuracy": meta.get("eval_accuracy"),
                "untrained_eval_macro_f1": meta.get("untrained_eval_macro_f1"),
                "seconds": meta.get("pretrain_seconds")}
    task = console_progress.add_task(f"pre-train {job.key}", total=job.spec.epochs)

    def progress(epoch: int, epochs: int, info: dict) -> None:
        text = f"pre-train {job.key}: loss {info.get('loss', float('nan')):.3f}"
        if "eval_macro_f1" in info:
            text += f", held-out macro-F1 {info['eval_macro_f1']:.3f}"
        console_progress.update(task, completed=epoch, description=text)

    start = time.perf_counter()
    result = pretrain(dataset_for(config), job.train_subjects, job.eval_subjects, settings, progress)
    seconds = time.perf_counter() - start
    result.meta["pretrain_seconds"] = seconds
    save_checkpoint(job.checkpoint, result)
    console_progress.remove_task(task)
    return {"key": job.key, "checkpoint": str(job.checkpoint), "cached": False,
            "eval_macro_f1": result.meta.get("eval_macro_f1"),
            "eval_accuracy": result.meta.get("eval_accuracy"),
            "untrained_eval_macro_f1": result.meta.get("untrained_eval_macro_f1"), "seconds": seconds}


def _state_table(sweep: Sweep, states: dict[str, tuple[str, int]]) -> Table:
    table = Table(title=f"sweep {sweep.name}: {len(sweep.runs)} runs", title_justify="left")
    for column in ("run", "rounds", "state"):
        table.add_column(column)
    colours = {"finished": "green", "failed": "red", "partial": "yellow", "pending": "dim"}
    for run in sweep.runs:
        state, done = states[run.run_id]
        table.add_row(run.run_id, f"{done}/{run.config.run.rounds}",
                      f"[{colours[state]}]{state}[/]")
    return table


def _check_inputs(runs: list[SweepRun]) -> None:
    """Before anything is written or started: every dataset loads and every checkpoint named in
    model.init exists (those of 'pretrained' cells are made by the sweep itself)."""
    from fl_har.config import ConfigError
    from fl_har.federation import check_client_windows, dataset_for, federation_plan

    for run in runs:
        init = run.config.model.init
        if run.pretrain_key is None and init != "untrained" and not Path(init).is_file():
            raise ConfigError(f"{run.run_id}: model.init checkpoint {init} does not exist")
        try:
            check_client_windows(run.config, federation_plan(run.config, dataset_for(run.config)))
        except ConfigError as error:
            raise ConfigError(f"{run.run_id}: {error}") from None


def sweep(args: argparse.Namespace) -> int:
    import attacks
    from fl_har.federation import dataset_for
    from fl_har.results import RunStore

    started = time.perf_counter()
    spec = load_sweep(args.file, args.overrides, name=args.name)
    # Every attack option resolved (defaults filled in), so each run's config.toml records them.
    spec.runs[:] = [
        dataclasses.replace(
            run, config=check_attacks(run.config, attacks.available(), attacks.resolve_options)
        )
        for run in spec.runs
    ]
    from fl_har.federation import federation_plan
    from fl_har_app.run_cmd import check_adversary

    for run in spec.runs:
        if run.config.client.privacy == "dp_sgd":
            from fl_har.privacy.client_dp import check_client_privacy

            check_client_privacy(run.config)  # before Ray: delta vs windows, reachable epsilon
        if run.config.adversary.active:  # backdoor settings against the dataset, before Ray
            check_adversary(run.config, federation_plan(run.config, dataset_for(run.config)))
    states = {run.run_id: run_state(spec, run) for run in spec.runs}
    if args.list:
        console.print(_state_table(spec, states))
        return 0
    # A run that did all its rounds but failed (a client failed) is final: delete its folder to
    # run it again. Partial runs are resumed.
    todo = [run for run in spec.runs if states[run.run_id][0] not in ("finished", "failed")]
    _check_inputs(todo)
    manifest_path = spec.out_dir / MANIFEST
    manifest = {
        "sweep": spec.name, "source": str(spec.source), "folds": spec.folds,
        "cells": {}, "pretraining": {}, "timing": {},
    }
    for run in spec.runs:
        manifest["cells"][run.run_id] = {
            "cell": run.cell_id, "axes": run.axes, "fold": run.fold,
            "run_dir": str(Path("cells") / run.run_id), "status": states[run.run_id][0],
        }
    spec.out_dir.mkdir(parents=True, exist_ok=True)
    (spec.out_dir / "sweep.toml").write_text(spec.source.read_text(encoding="utf-8"))
    console.print(
        f"[bold]sweep {spec.name}[/]: {len(spec.runs)} runs, {len(spec.runs) - len(todo)} already "
        f"finished; results in {spec.out_dir}"
    )
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console,
    ) as bar:
        # 1. pre-training (cached; reported separately from the grid's time)
        needed = {run.pretrain_key for run in todo if run.pretrain_key}
        for key in sorted(spec.pretrain_jobs):
            job = spec.pretrain_jobs[key]
            if key in needed or job.checkpoint.is_file():
                entry = manifest["pretraining"][key] = _pretrain(job, bar)
                if not entry["cached"]:
                    f1 = entry["eval_macro_f1"]
                    bar.console.print(
                        f"pre-trained {key}: held-out macro-F1 "
                        f"{'n/a' if f1 is None else f'{f1:.3f}'} ({entry['seconds']:.0f} s)"
                    )
        # The one-time cost of the sweep's models, whether trained now or read from the cache.
        pretraining = sum(float(e.get("seconds") or 0.0) for e in manifest["pretraining"].values())
        if not todo:
            # Nothing ran: keep the timing of the invocation that did the work.
            manifest["timing"] = read_manifest(spec.out_dir).get("timing", {})
            manifest["timing"]["pretraining_seconds"] = pretraining
            write_json_atomic(manifest_path, manifest)
            console.print("[green]every run is finished[/]")
            return 0
        manifest["timing"]["pretraining_seconds"] = pretraining
        write_json_atomic(manifest_path, manifest)

        # 2. every pending run in one simulation
        runs_task = bar.add_task("runs", total=len(spec.runs),
                                 completed=len(spec.runs) - len(todo))
        rounds_task = bar.add_task("rounds", total=1)
        timing: dict[str, float] = {}
        clock = {"launch": time.perf_counter(), "run": 0.0}

        def opener(run: SweepRun):
            def open_store() -> RunStore:
                run_dir = _run_dir(spec, run)
                if states[run.run_id][0] == "partial":
                    from fl_har_app.run_cmd import resume_view

                    return RunStore.resume(run_dir, resume_view(run.config, run_dir))
                return RunStore.create(run_dir, run.config.to_dict(), seed=run.config.run.seed,
                                       overwrite=True)
            return open_store

        first_run_rounds: list[float] = []

        def on_run_start(index: int, config) -> None:
            clock["run"] = time.perf_counter()
            run = todo[index]
            bar.update(rounds_task, total=config.run.rounds, completed=states[run.run_id][1],
                       description=f"rounds of {run.run_id}")

        def on_run_end(index: int, status: str, message: str) -> None:
            run = todo[index]
            entry = manifest["cells"][run.run_id]
            entry.update(status=status, message=message,
                         seconds=time.perf_counter() - clock["run"])
            timing["runs_seconds"] = timing.get("runs_seconds", 0.0) + entry["seconds"]
            manifest["timing"].update(timing)
            write_json_atomic(manifest_path, manifest)
            bar.advance(runs_task)
            if status != "finished":
                bar.console.print(f"[red]{run.run_id} {status}[/]: {message}")

        def on_round(run_round: int, rounds: int, row: dict) -> None:
            bar.update(rounds_task, completed=run_round)
            if "first_round_done" not in clock:
                clock["first_round_done"] = time.perf_counter()
            if "startup_seconds" not in timing and len(first_run_rounds) < 3:
                first_run_rounds.append(float(row["round_seconds"]))
                if len(first_run_rounds) == 3 or run_round == rounds:
                    # Start-up (Ray, actors importing torch and loading data) = time to the end of
                    # the sweep's first round, less what a steady round of that run takes.
                    steady = min(first_run_rounds[1:] or first_run_rounds)
                    first = clock["first_round_done"] - clock["launch"]
                    timing["startup_seconds"] = max(first - steady, 0.0)

        from fl_har.stopping import StopSignal
        from fl_har_app.launcher import start_simulation
        from strategies.server_app import make_sweep_server_app

        stop = StopSignal(resume_hint="rerun the same sweep command to resume")
        server_app = make_sweep_server_app(
            [(run.config, opener(run)) for run in todo],
            on_run_start=on_run_start, on_run_end=on_run_end, progress=on_round, stop=stop,
        )
        num_nodes = max(len(dataset_for(run.config).subjects) for run in todo)
        cpus = max(run.config.simulation.cpus_per_client for run in todo)
        start_simulation(server_app, num_nodes, cpus_per_client=cpus, verbose=args.verbose,
                         ray_address=args.ray_address, stop=stop, on_abort=[bar.stop])
    manifest["timing"]["sweep_wall_seconds"] = time.perf_counter() - started
    manifest["timing"]["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_json_atomic(manifest_path, manifest)
    states = {run.run_id: run_state(spec, run) for run in spec.runs}
    failed = [r for r in spec.runs if states[r.run_id][0] != "finished"]
    timing = manifest["timing"]
    timing["runs_after_startup_seconds"] = max(
        timing.get("runs_seconds", 0.0) - timing.get("startup_seconds", 0.0), 0.0
    )
    write_json_atomic(manifest_path, manifest)
    console.print(
        f"pre-training {timing.get('pretraining_seconds', 0):.0f} s, simulation start-up "
        f"{timing.get('startup_seconds', 0):.0f} s, runs after start-up "
        f"{timing['runs_after_startup_seconds']:.0f} s, wall {timing['sweep_wall_seconds']:.0f} s"
    )
    if failed:
        console.print(_state_table(spec, states))
        return fail(f"{len(failed)} run(s) did not finish: "
                    f"{', '.join(r.run_id for r in failed)} (rerun the same command to resume)",
                    code=1)
    console.print(f"[green]all {len(spec.runs)} runs finished[/]; report with: "
                  f"fl-har report {spec.out_dir}")
    return 0
