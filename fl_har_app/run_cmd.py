"""``fl-har run``, ``fl-har attacks`` and ``fl-har config``."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fl_har.config import ExperimentConfig, check_attack_names, describe_defaults, load_config
from fl_har.metrics import METRIC_LABELS
from fl_har_app.console import console, fail


def list_attacks() -> int:
    import attacks

    table = Table(title="Label-reconstruction attacks (attacks.names)", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("description")
    for name, text in attacks.available().items():
        table.add_row(name, text)
    console.print(table)
    return 0


def show_defaults() -> int:
    console.print(describe_defaults(), markup=False)
    return 0


def _load(args: argparse.Namespace) -> ExperimentConfig:
    import attacks

    config = load_config(args.config, args.overrides)
    check_attack_names(config, attacks.available())
    return config


def check_config(args: argparse.Namespace) -> int:
    import tomli_w

    config = _load(args)
    console.print(tomli_w.dumps(config.to_dict()), markup=False)
    console.print("[green]config is valid[/]")
    return 0


# The leakage columns a reader looks for first, labelled by the metric registry.
LEAKAGE_COLUMNS = ("le_acc", "le_recall", "ln_acc", "class_acc")


def leakage_table(clients, title: str) -> Table:
    """Per-attack means over clients (the numbers a reader looks for first)."""
    table = Table(title=title, title_justify="left")
    table.add_column("attack", style="bold")
    for column in LEAKAGE_COLUMNS:
        table.add_column(METRIC_LABELS[column], justify="right")
    table.add_column("clients", justify="right")
    for attack, group in clients.groupby("attack", sort=False):
        def pct(column: str, group=group) -> str:
            mean, std = group[column].mean(), group[column].std(ddof=0)
            if math.isnan(mean):
                return "n/a"
            return f"{100 * mean:.1f} ± {100 * std:.1f}"

        table.add_row(attack, *(pct(c) for c in LEAKAGE_COLUMNS), str(len(group)))
    return table


def _defences(config: ExperimentConfig) -> str:
    """The privacy defences of a run in words (empty without any)."""
    client, server = config.client, config.server
    parts = []
    if client.privacy == "ldp":
        parts.append(f"batch clip+noise (the paper's LDP, no ε: rho {client.ldp_clip}, "
                     f"sigma {client.ldp_noise}, {client.ldp_scope})")
    elif client.privacy == "dp_sgd":
        noise = (f"target ε {client.dp_epsilon}" if client.dp_epsilon > 0
                 else f"σ {client.dp_noise_multiplier}")
        parts.append(f"DP-SGD (C {client.dp_clip}, {noise}, δ {client.dp_delta}, "
                     f"{client.dp_accountant})")
    if server.dp != "none":
        parts.append(f"central DP {server.dp} (C {server.dp_clip}, "
                     f"σ {server.dp_noise_multiplier})")
    return f"\nprivacy: {'; '.join(parts)}" if parts else ""


def run(args: argparse.Namespace) -> int:
    from fl_har.federation import dataset_for, federation_plan
    from fl_har.results import RunStore

    if args.out:
        args.overrides = [*args.overrides, f"run.out={Path(args.out).as_posix()!r}"]
    config = _load(args)
    run_dir = Path(config.run.out) / config.run.name
    with console.status("loading data ..."):
        plan = federation_plan(config, dataset_for(config))
        if config.client.privacy == "dp_sgd":  # delta vs client windows, target epsilon reachable
            from fl_har.privacy.client_dp import check_client_privacy

            check_client_privacy(config, plan)
    if args.resume:
        store = RunStore.resume(run_dir, config.to_dict())
        console.print(f"resuming {run_dir} after round {store.last_finished_round}")
    else:
        store = RunStore.create(
            run_dir, config.to_dict(), seed=config.run.seed, overwrite=args.overwrite
        )
    console.print(
        f"[bold]{config.run.name}[/]: {config.data.dataset}, {config.model.name} "
        f"({config.model.init}), {len(plan.clients)} clients, N = {config.client.batch_size}, "
        f"S = {config.client.local_steps}, {config.client.sampler} batches, "
        f"{config.run.regime} model, {config.run.rounds} rounds; attacks: "
        f"{', '.join(config.attacks.names)}{_defences(config)}\nresults: {run_dir}"
    )
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]rounds"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console,
    ) as bar:
        task = bar.add_task("starting Flower simulation (Ray) ...", total=config.run.rounds,
                            completed=store.last_finished_round)

        def progress(run_round: int, rounds: int, row: dict) -> None:
            text = f"round {run_round}: {row['round_seconds']:.1f} s"
            if "eval_macro_f1" in row:
                text += f", held-out macro-F1 {row['eval_macro_f1']:.3f}"
            if row.get("clients_failed"):
                text += f", [red]{row['clients_failed']} client(s) failed[/]"
            bar.update(task, completed=run_round, description=text)

        from fl_har_app.launcher import run_simulation

        status = run_simulation(
            config,
            store,
            len(plan.subjects),
            progress=progress,
            verbose=args.verbose,
            failure_injection=args.inject_failure,
        )
    elapsed = time.perf_counter() - started
    clients = store.client_table()
    if len(clients):
        console.print(
            leakage_table(clients, "Leakage per attack (mean ± std over clients, %)")
        )
    meta = store.meta
    if status != "finished":
        return fail(
            f"run {meta.get('status', status)}: {meta.get('message', '')} "
            f"(finished rounds are kept in {run_dir}; continue with --resume)",
            code=1,
        )
    console.print(f"[green]finished[/] in {elapsed:.0f} s; results in {run_dir}")
    return 0
