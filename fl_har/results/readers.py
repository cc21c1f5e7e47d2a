"""Reading a run directory's committed state without writing to it (:func:`load_run`).

A crash between two writes can leave rows of the unfinished round in some tables: every reader
here drops the rows after ``meta.json``'s ``last_finished_round``, and the rounds table keeps only
the columns ``meta.json`` lists.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fl_har.results.layout import (
    ATTACKS_FILE,
    CONFIG_FILE,
    FAILURES_CSV,
    META_FILE,
    ROUNDS_FILE,
    UPDATES_FILE,
    ResultsError,
)
from fl_har.results.per_client import client_summary
from fl_har.results.schemas import (
    ATTACK_COLUMNS,
    FAILURE_COLUMNS,
    attack_frame,
    failures_frame,
    records,
    rounds_frame,
    updates_frame,
)


@dataclass(frozen=True)
class RunTables:
    """Read-only view of a run's committed state (rows up to ``meta['last_finished_round']``)."""

    run_dir: Path
    config: dict[str, Any]
    meta: dict[str, Any]
    attacks: pd.DataFrame
    rounds: pd.DataFrame
    clients: pd.DataFrame
    failures: pd.DataFrame
    updates: pd.DataFrame = field(default_factory=lambda: updates_frame([]))


def load_run(run_dir: str | os.PathLike[str]) -> RunTables:
    """Read a run directory without writing to it; ``clients`` is recomputed from ``attacks``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultsError(f"run directory {run_dir} does not exist")
    meta = _read_meta(run_dir / META_FILE)
    last_round = meta["last_finished_round"]
    attacks = _read_attacks(run_dir, last_round)
    return RunTables(
        run_dir=run_dir,
        config=_read_config(run_dir / CONFIG_FILE),
        meta=meta,
        attacks=attacks,
        rounds=_read_rounds(run_dir, meta),
        clients=client_summary(attacks),
        failures=_read_failures(run_dir, last_round),
        updates=_read_updates(run_dir, last_round),
    )


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path} is missing: not a run directory (or never started)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResultsError(f"{path} is not readable JSON: {error}") from None
    if not isinstance(meta, dict):
        raise ResultsError(f"{path}: expected a JSON object, found {type(meta).__name__}")
    last = meta.get("last_finished_round")
    if isinstance(last, bool) or not isinstance(last, int) or last < 0:
        raise ResultsError(f"{path}: last_finished_round = {last!r}: expected an integer >= 0")
    return meta


def _read_config(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path} is missing: not a run directory") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ResultsError(f"{path} is not readable TOML: {error}") from None


def _read_parquet(path: Path, last_round: int, required: Sequence[str]) -> pd.DataFrame | None:
    """Rows with ``round <= last_round``; None if the file is absent and no round has finished."""
    if not path.exists():
        if last_round == 0:
            return None
        raise ResultsError(f"{path} is missing although meta.json says round {last_round} finished")
    try:
        frame = pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException) as error:
        raise ResultsError(f"{path} is not a readable Parquet file: {error}") from None
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise ResultsError(f"{path} lacks column(s) {missing}")
    return frame[frame["round"] <= last_round]


def _read_attacks(run_dir: Path, last_round: int) -> pd.DataFrame:
    frame = _read_parquet(run_dir / ATTACKS_FILE, last_round, ATTACK_COLUMNS)
    return attack_frame([] if frame is None else records(frame[list(ATTACK_COLUMNS)]))


def _read_rounds(run_dir: Path, meta: Mapping[str, Any]) -> pd.DataFrame:
    """Committed rows and columns: meta.json lists the columns, so a column that only an
    unfinished round introduced is dropped."""
    path = run_dir / ROUNDS_FILE
    last_round = meta["last_finished_round"]
    frame = _read_parquet(path, last_round, ("round",))
    if frame is not None and "round_columns" in meta:
        columns = meta["round_columns"]
        missing = [name for name in columns if name not in frame.columns]
        if missing:
            raise ResultsError(f"{path} lacks column(s) {missing} listed in {META_FILE}")
        frame = frame[list(columns)]
    rounds = rounds_frame([] if frame is None else records(frame))
    found = [int(r) for r in rounds["round"]]
    if found != list(range(1, last_round + 1)):
        raise ResultsError(
            f"{path} holds rounds {found} but {META_FILE} says rounds 1..{last_round} finished"
        )
    return rounds


def _read_failures(run_dir: Path, last_round: int) -> pd.DataFrame:
    path = run_dir / FAILURES_CSV
    if not path.exists():
        if last_round == 0:
            return failures_frame([])
        raise ResultsError(f"{path} is missing although meta.json says round {last_round} finished")
    try:
        frame = pd.read_csv(path, dtype={"node_id": str, "reason": str}, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise ResultsError(f"{path} is not a readable CSV file: {error}") from None
    missing = [name for name in FAILURE_COLUMNS if name not in frame.columns]
    if missing:
        raise ResultsError(f"{path} lacks column(s) {missing}")
    try:
        rows = [
            {"round": int(r["round"]), "partition": int(r["partition"]),
             "subject": int(r["subject"]), "node_id": str(r["node_id"]),
             "reason": str(r["reason"])}
            for r in records(frame)
        ]
    except ValueError as error:
        raise ResultsError(f"{path}: round/partition/subject must be integers ({error})") from None
    return failures_frame([r for r in rows if r["round"] <= last_round])


def _read_updates(run_dir: Path, last_round: int) -> pd.DataFrame:
    """The committed rows of ``updates.parquet`` (absent in runs written before it existed)."""
    path = run_dir / UPDATES_FILE
    if not path.exists():
        return updates_frame([])
    frame = _read_parquet(path, last_round, ("round", "partition", "subject", "status"))
    return updates_frame([] if frame is None else records(frame))
