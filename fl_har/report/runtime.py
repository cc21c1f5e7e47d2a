"""What was run and how long it took, per run (from ``meta.json`` and ``rounds.round_seconds``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import pandas as pd

from fl_har.report.collect import CollectedRun

RUN_COLUMNS = (
    "run", "path", "dataset", "model", "state", "sampler", "batch_size", "local_steps", "ldp",
    "attacks", "rounds", "clients", "round_seconds", "started_at", "ended_at", "wall_seconds",
)


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def round_seconds(run: CollectedRun) -> float:
    """Sum of the run's ``round_seconds`` (NaN if the rounds table lacks the column)."""
    rounds = run.tables.rounds
    if "round_seconds" not in rounds.columns:
        return math.nan
    return float(rounds["round_seconds"].sum())


def runs_frame(runs: Sequence[CollectedRun]) -> pd.DataFrame:
    """One row per used run: factors, attacks, rounds, clients, compute and wall-clock time.

    ``round_seconds`` is the sum of the per-round wall time the server recorded (training and
    attacks of the round); ``wall_seconds`` is ``ended_at - started_at`` from ``meta.json`` and
    includes start-up and, for resumed runs, the time in between.
    """
    records = []
    for run in runs:
        meta = run.tables.meta
        started, ended = _timestamp(meta.get("started_at")), _timestamp(meta.get("ended_at"))
        records.append({
            "run": run.name,
            "path": str(run.path),
            **{key: getattr(run.factors, key) for key in
               ("dataset", "model", "state", "sampler", "batch_size", "local_steps", "ldp")},
            "attacks": ";".join(sorted(set(run.tables.clients["attack"]))),
            "rounds": int(meta.get("last_finished_round", 0)),
            "clients": int(run.tables.clients["partition"].nunique()),
            "round_seconds": round_seconds(run),
            "started_at": meta.get("started_at") or "",
            "ended_at": meta.get("ended_at") or "",
            "wall_seconds": (ended - started).total_seconds() if started and ended else math.nan,
        })
    return pd.DataFrame(records, columns=list(RUN_COLUMNS))


def duration(seconds: float) -> str:
    """``1 h 02 min 03 s`` / ``4 min 05 s`` / ``7.3 s``; ``–`` for NaN."""
    if seconds is None or math.isnan(seconds):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min {secs:02d} s" if hours else f"{minutes} min {secs:02d} s"


def time_span(frame: pd.DataFrame) -> tuple[str, str]:
    """Earliest start and latest end among the runs (ISO strings; ``–`` if unknown)."""
    starts = [t for t in map(_timestamp, frame["started_at"]) if t is not None]
    ends = [t for t in map(_timestamp, frame["ended_at"]) if t is not None]
    return (min(starts).isoformat() if starts else "–", max(ends).isoformat() if ends else "–")
