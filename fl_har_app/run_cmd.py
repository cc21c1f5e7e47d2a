"""``fl-har run``, ``fl-har attacks`` and ``fl-har config``."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fl_har.config import (
    ConfigError,
    ExperimentConfig,
    check_attacks,
    describe_defaults,
    load_config,
)
from fl_har.metrics import METRIC_LABELS
from fl_har_app.console import console, fail


def list_attacks() -> int:
    import attacks

    table = Table(title="Label-reconstruction attacks (attacks.names)", title_justify="left")
    table.add_column("name", style="bold", no_wrap=True)
    for column in ("family", "variant", "description (paper)", "options"):
        table.add_column(column)
    for name in attacks.available():
        spec = attacks.attack_spec(name)
        table.add_row(name, spec.family, spec.variant, f"{spec.description} ({spec.paper})",
                      ", ".join(option.name for option in spec.options))
    console.print(table)
    options = Table(title="Attack options (\\[attacks] keys)", title_justify="left")
    for column in ("option", "default", "description"):
        options.add_column(column, style="bold" if column == "option" else None)
    for option in attacks.option_schema().values():
        options.add_row(option.name, repr(option.default), option.description)
    console.print(options)
    return 0


def show_defaults() -> int:
    import attacks

    config = check_attacks(ExperimentConfig(), attacks.available(), attacks.resolve_options)
    console.print(describe_defaults(config), markup=False)
    return 0


def _load(args: argparse.Namespace) -> ExperimentConfig:
    import attacks

    config = load_config(args.config, args.overrides)
    check_adversary(config)
    return check_attacks(config, attacks.available(), attacks.resolve_options)


def check_adversary(config: ExperimentConfig, plan=None) -> None:
    """The ``[adversary]`` checks that need the attack library (the trigger can be built here)
    and, given the federation ``plan``, the dataset (target class, attackers are clients, trigger
    channels exist); :class:`ConfigError` before any simulation starts."""
    if not config.adversary.active:
        return
    from attacks.backdoor import BackdoorError, check_trigger
    from fl_har.adversary import trigger_options

    try:
        check_trigger(config.adversary.trigger, trigger_options(config))
    except BackdoorError as exc:
        raise ConfigError(f"adversary.trigger = {config.adversary.trigger!r}: {exc}") from None
    if plan is not None:
        from fl_har.adversary import resolve_adversary

        resolve_adversary(config, plan)


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


class RunDirError(ValueError):
    """The run directory cannot be used as asked (exists, or has nothing left to resume)."""


def _stored_meta(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def check_run_dir(run_dir: Path, config: ExperimentConfig, *, resume: bool,
                  overwrite: bool) -> str | None:
    """Refuse, before Ray starts, what the run directory cannot do; returns a note to print
    instead of running (a finished run resumed with nothing left to do), else None."""
    if resume:
        meta = _stored_meta(run_dir)
        if meta is None:
            if not run_dir.is_dir():
                raise RunDirError(f"cannot resume {run_dir}: it does not exist (start the run "
                                  "without --resume)")
            return None  # RunStore.resume explains what is wrong with it
        done = int(meta.get("last_finished_round", 0))
        if done < config.run.rounds:
            return None
        if meta.get("status") == "finished":
            return (f"{run_dir} already finished all {done} rounds; nothing to resume (raise "
                    f"run.rounds above {done} to extend it)")
        raise RunDirError(
            f"cannot resume {run_dir}: it ran all {done} rounds and ended {meta.get('status')}: "
            f"{meta.get('message', '')}. Resuming would only repeat that (more rounds would "
            "not undo the recorded failures): start it again with --overwrite (with --set "
            "run.allow_client_failures=true to accept failed clients), or use another run.name"
        )
    if not overwrite and run_dir.is_dir() and any(run_dir.iterdir()):
        raise RunDirError(
            f"run directory {run_dir} already exists and is not empty: continue it with "
            "--resume, replace it with --overwrite, or choose another --set run.name=... / --out"
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"run directory {run_dir} exists and is not a directory")
    return None


def resume_view(config: ExperimentConfig, run_dir: Path) -> dict:
    """The config to compare with a run's stored ``config.toml`` when resuming it.

    A key that did not exist when the run was made (a newer fl-har added it) is absent from the
    stored file; left at its default it cannot have changed the run, so it is dropped here
    instead of blocking the resume. A non-default value still counts as a difference.
    """
    import tomllib

    given = config.to_dict()
    try:
        stored = tomllib.loads((run_dir / "config.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return given  # RunStore.resume reports the missing or broken file
    defaults = ExperimentConfig().to_dict()
    view: dict = {}
    for section, values in given.items():
        kept = {key: value for key, value in values.items()
                if key in stored.get(section, {}) or value != defaults[section][key]}
        if kept or section in stored:
            view[section] = kept
    return view


def check_inputs(config: ExperimentConfig):
    """Everything a run needs from disk, checked before Ray starts and before the run directory
    is created: the dataset's files, the held subjects and the initial model (a checkpoint of
    model.init must exist and fit the data). Returns the federation plan."""
    from fl_har.federation import (
        check_client_windows,
        dataset_for,
        federation_plan,
        initial_model,
    )

    if config.model.init != "untrained" and not Path(config.model.init).is_file():
        from fl_har.config import ConfigError

        raise ConfigError(
            f"model.init: checkpoint {config.model.init} does not exist (train one with "
            "fl-har pretrain --out FILE, or use model.init = \"untrained\")"
        )
    plan = federation_plan(config, dataset_for(config))
    check_client_windows(config, plan)
    initial_model(config, plan)
    return plan
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
    from fl_har.results import RunStore
    from fl_har.stopping import StopSignal

    if args.out:
        args.overrides = [*args.overrides, f"run.out={Path(args.out).as_posix()!r}"]
    config = _load(args)
    run_dir = Path(config.run.out) / config.run.name
    note = check_run_dir(run_dir, config, resume=args.resume, overwrite=args.overwrite)
    if note is not None:
        console.print(note)
        return 0
    with console.status("loading data ..."):
        plan = check_inputs(config)
        if config.client.privacy == "dp_sgd":  # delta vs client windows, target epsilon reachable
            from fl_har.privacy.client_dp import check_client_privacy

            check_client_privacy(config, plan)
    check_adversary(config, plan)
    if args.resume:
        store = RunStore.resume(run_dir, resume_view(config, run_dir))
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
    stop = StopSignal(resume_hint="continue with the same command and --resume")
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
            ray_address=getattr(args, "ray_address", None),
            stop=stop,
            on_abort=[bar.stop],
        )
    elapsed = time.perf_counter() - started
    clients = store.client_table()
    if len(clients):
        console.print(
            leakage_table(clients, "Leakage per attack (mean ± std over clients, %)")
        )
    meta = store.meta
    if status != "finished":
        done = store.last_finished_round
        if done >= config.run.rounds:
            hint = (f"all {done} rounds are kept in {run_dir}; --resume would repeat this "
                    "outcome: start again with --overwrite, or use another run.name")
        else:
            hint = f"finished rounds are kept in {run_dir}; continue with --resume"
        return fail(f"run {meta.get('status', status)}: {meta.get('message', '')} ({hint})",
                    code=1)
    console.print(f"[green]finished[/] in {elapsed:.0f} s; results in {run_dir}")
    return 0


def deploy_run(args: argparse.Namespace) -> int:
    """``fl-har deploy``: validate, then run on a local SuperLink and one SuperNode per subject."""
    from fl_har.federation import dataset_for, federation_plan
    from fl_har.results import ResultsError, load_run
    from fl_har_app.deploy import DeployError, deploy

    if args.out:
        args.overrides = [*args.overrides, f"run.out={Path(args.out).as_posix()!r}"]
    config = _load(args)
    run_dir = Path(config.run.out) / config.run.name
    if run_dir.is_dir() and any(run_dir.iterdir()) and not args.overwrite:
        return fail(f"run directory {run_dir} already exists and is not empty: pass --overwrite "
                    "or choose another run.name")
    with console.status("loading data ..."):
        plan = federation_plan(config, dataset_for(config))
    check_adversary(config, plan)
    started = time.perf_counter()
    try:
        status = deploy(config, run_dir, len(plan.subjects), tls=args.tls, timeout=args.timeout,
                        echo=lambda text: console.print(text, markup=False))
    except DeployError as exc:
        return fail(str(exc))
    try:
        clients = load_run(run_dir).clients
    except ResultsError:
        clients = None
    if clients is not None and len(clients):
        console.print(leakage_table(clients, "Leakage per attack (mean ± std over clients, %)"))
    console.print(f"{status} in {time.perf_counter() - started:.0f} s; results in {run_dir}")
    return 0 if status == "finished" else 1
