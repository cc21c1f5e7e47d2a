"""Find run directories, keep the finished ones and gather their per-client rows in one frame.

A path given to ``fl-har report`` is either a run directory (it holds ``meta.json``) or any folder
with run directories at any depth (a sweep folder). Runs are read with
:func:`fl_har.results.load_run`; only runs whose ``meta.json`` says ``status = "finished"`` are
used, every other one is listed as skipped with the reason. Two runs whose ``config.toml`` files
are identical apart from ``run.name`` / ``run.out`` ran the same experiment with the same seed, so
only the first (in path order) is used and the other is listed as a duplicate.

Runs with equal :class:`~fl_har.report.factors.RunFactors` form one configuration: their
per-client rows are pooled into one population (the k folds of a "trained" configuration, each
attacking other subjects with a model pre-trained on the rest, become one population of clients).
Pooled runs that differ in other config keys, or that attack the same subject more than once,
are reported in :attr:`Collection.warnings`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fl_har.report.errors import ReportError
from fl_har.report.factors import (
    POOLABLE_KEYS,
    RunFactors,
    attack_identity,
    run_factors,
)
from fl_har.results import (
    CONFIG_FILE,
    META_FILE,
    ResultsError,
    RunTables,
    flatten_config,
    load_run,
)

FINISHED = "finished"
CLIENT_METRICS = ("class_acc", "ln_acc", "le_acc", "le_recall")
FACTOR_COLUMNS = ("dataset", "model", "state", "sampler", "batch_size", "local_steps", "ldp")
CLIENT_FRAME_COLUMNS = (
    "run_id", "run", "variant", *FACTOR_COLUMNS, "attack", "attack_name", "family",
    "partition", "subject", *CLIENT_METRICS, "num_updates", "attack_errors",
)
# Keys told apart only by run bookkeeping: equal configs otherwise mean a duplicate run.
_DUPLICATE_IGNORED_KEYS = ("run.name", "run.out")


@dataclass(frozen=True)
class CollectedRun:
    """A finished run used by the report; ``name`` is unique among the collected runs."""

    run_id: int
    name: str
    path: Path
    factors: RunFactors
    tables: RunTables


@dataclass(frozen=True)
class SkippedRun:
    path: Path
    reason: str


@dataclass
class Collection:
    """Everything the report is computed from.

    ``clients`` has one row per run x client x attack (columns :data:`CLIENT_FRAME_COLUMNS`):
    the run's clients table (ClassAcc over all of the client's updates, LnAcc / LeAcc / LeRecall
    as means over its updates) with the run's factors and the attack's variant, base name and
    family.
    """

    inputs: list[Path]
    runs: list[CollectedRun]
    skipped: list[SkippedRun]
    clients: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


def find_run_dirs(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Run directories (folders holding ``meta.json``) given or found below ``paths``.

    A run directory is not searched further. Order: the inputs' order, then path order; a
    directory reached twice is listed once.
    """
    if not paths:
        raise ReportError("no directory given: pass run directories or folders containing them")
    found: list[Path] = []
    seen: set[Path] = set()
    for given in map(Path, paths):
        if not given.is_dir():
            problem = "does not exist" if not given.exists() else "is not a directory"
            raise ReportError(f"{given} {problem}: expected a run directory or a folder of runs")
        for directory in _walk_runs(given):
            resolved = directory.resolve()
            if resolved not in seen:
                seen.add(resolved)
                found.append(directory)
    if not found:
        raise ReportError(
            f"no run directories (folders with {META_FILE}) found in "
            + ", ".join(str(Path(p)) for p in paths)
        )
    return found


def _walk_runs(root: Path) -> Iterable[Path]:
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        if META_FILE in files:
            subdirs.clear()
            yield Path(directory)


def _read_status(run_dir: Path) -> str | None:
    """Why the run cannot be used judging by ``meta.json`` alone, else None."""
    try:
        meta = json.loads((run_dir / META_FILE).read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return f"{META_FILE} is not readable JSON: {error}"
    if not isinstance(meta, dict):
        return f"{META_FILE} is not a JSON object"
    status = meta.get("status")
    if status != FINISHED:
        detail = f"; last finished round {meta.get('last_finished_round')}"
        if meta.get("message"):
            detail += f"; message: {meta['message']}"
        return f"status {status!r}, not {FINISHED!r}{detail}"
    return None


def _identity(config: Mapping[str, Any]) -> str:
    flat = {k: v for k, v in flatten_config(config).items() if k not in _DUPLICATE_IGNORED_KEYS}
    return json.dumps(flat, sort_keys=True, default=str)


def _unique_name(wanted: str, taken: set[str]) -> str:
    name, number = wanted, 2
    while name in taken:
        name, number = f"{wanted}-{number}", number + 1
    taken.add(name)
    return name


def _client_rows(run: CollectedRun) -> pd.DataFrame:
    clients = run.tables.clients
    identity = [attack_identity(name, run.tables.meta.get("attacks")) for name in clients["attack"]]
    frame = pd.DataFrame({
        "run_id": run.run_id,
        "run": run.name,
        "variant": [variant for _, variant, _ in identity],
        **{column: getattr(run.factors, column) for column in FACTOR_COLUMNS},
        "attack": [base for base, _, _ in identity],
        "attack_name": clients["attack"].astype(str),
        "family": [family for _, _, family in identity],
        "partition": clients["partition"],
        "subject": clients["subject"],
        **{metric: clients[metric].astype(float) for metric in CLIENT_METRICS},
        "num_updates": clients["num_updates"],
        "attack_errors": clients["attack_errors"],
    }, index=clients.index)
    return frame[list(CLIENT_FRAME_COLUMNS)]


def _empty_clients() -> pd.DataFrame:
    return pd.DataFrame({column: [] for column in CLIENT_FRAME_COLUMNS})


def pooling_warnings(runs: Sequence[CollectedRun]) -> list[str]:
    """Lines about runs pooled as one configuration (per attack variant) that are not plain folds.

    Flags (1) config keys outside :data:`POOLABLE_KEYS` whose values differ between the pooled
    runs, and (2) subjects attacked in more than one of them (replicates: each such subject's
    values are averaged over its runs, see :func:`fl_har.report.aggregate.cell_means`).
    """
    groups: dict[tuple[RunFactors, str], list[CollectedRun]] = {}
    for run in runs:
        described = run.tables.meta.get("attacks")
        for variant in sorted({attack_identity(a, described)[1]
                               for a in run.tables.clients["attack"]}):
            groups.setdefault((run.factors, variant), []).append(run)
    warnings = []
    for (factors, variant), members in sorted(groups.items()):
        if len(members) < 2:
            continue
        where = f"{len(members)} runs pooled as [{factors.label()}, {variant} attacks]"
        flats = [flatten_config(member.tables.config) for member in members]
        differing = []
        for key in sorted(set().union(*flats) - set(POOLABLE_KEYS)):
            values = {json.dumps(flat.get(key), default=str) for flat in flats}
            if len(values) > 1:
                differing.append(f"{key} ({', '.join(sorted(values))})")
        if differing:
            warnings.append(f"{where} differ in " + "; ".join(differing))
        subjects = [set(member.tables.clients["subject"]) for member in members]
        repeated = sorted(s for s in set().union(*subjects) if sum(s in x for x in subjects) > 1)
        if repeated:
            warnings.append(f"{where} attack subject(s) {', '.join(map(str, repeated))} more "
                            "than once (replicates: each subject's values are averaged over "
                            "its runs)")
    return warnings


def collect_runs(paths: Sequence[str | os.PathLike[str]]) -> Collection:
    """Read every run under ``paths`` (see the module docstring for what is used or skipped)."""
    runs: list[CollectedRun] = []
    skipped: list[SkippedRun] = []
    identities: dict[str, Path] = {}
    names: set[str] = set()
    for run_dir in find_run_dirs(paths):
        reason = _read_status(run_dir)
        if reason is not None:
            skipped.append(SkippedRun(run_dir, reason))
            continue
        try:
            tables = load_run(run_dir)
            factors = run_factors(tables.config, str(run_dir / CONFIG_FILE))
        except (ResultsError, ReportError) as error:
            skipped.append(SkippedRun(run_dir, str(error)))
            continue
        if tables.clients.empty:
            skipped.append(SkippedRun(run_dir, "finished without any attack result"))
            continue
        identity = _identity(tables.config)
        if identity in identities:
            skipped.append(SkippedRun(
                run_dir, f"duplicate of {identities[identity]} ({CONFIG_FILE} identical apart "
                "from run.name / run.out: same experiment, same seed)"))
            continue
        identities[identity] = run_dir
        wanted = str(tables.config.get("run", {}).get("name") or run_dir.name)
        runs.append(CollectedRun(len(runs), _unique_name(wanted, names), run_dir, factors, tables))
    frames = [_client_rows(run) for run in runs]
    clients = pd.concat(frames, ignore_index=True) if frames else _empty_clients()
    return Collection([Path(p) for p in paths], runs, skipped, clients, pooling_warnings(runs))
