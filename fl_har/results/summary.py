"""``summary.md``: a short human-readable summary of a run's committed state."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from fl_har.metrics import METRIC_LABELS
from fl_har.results.layout import FAILURES_CSV
from fl_har.results.readers import RunTables
from fl_har.results.schemas import records

# Client-table columns shown per attack; their headers are the labels of fl_har.metrics.
SUMMARY_METRICS = ("ln_acc", "le_acc", "le_recall", "class_acc")
_SUMMARY_MAX_FAILURES = 20


def _mean_std(values: pd.Series) -> str:
    """Mean +- population std (ddof=0) over clients, skipping NaN; ``n/a`` if none."""
    values = values.dropna()
    if values.empty:
        return "n/a"
    return f"{values.mean():.3f} ± {values.std(ddof=0):.3f}"


def summary_markdown(tables: RunTables) -> str:
    """Short human-readable summary: status, rounds, per-attack means over clients, failures."""
    meta = tables.meta
    run = tables.config.get("run")
    run = run if isinstance(run, Mapping) else {}
    last_round = meta["last_finished_round"]
    planned = run.get("rounds")
    lines = [
        f"# fl-har run {run.get('name', tables.run_dir.name)}",
        "",
        f"- status: {meta.get('status', '?')}"
        + (f" ({meta['message']})" if meta.get("message") else ""),
        f"- seed: {meta.get('seed')}",
        f"- rounds finished: {last_round}" + (f" of {planned}" if planned is not None else ""),
        f"- failed client replies: {len(tables.failures)}",
        f"- started: {meta.get('started_at')}; ended: {meta.get('ended_at') or '-'}",
        "",
        "## Label leakage per attack (mean ± std over clients)",
        "",
        "| attack | clients | updates | attack errors | "
        + " | ".join(METRIC_LABELS[column] for column in SUMMARY_METRICS) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(SUMMARY_METRICS),
    ]
    for attack, group in tables.clients.groupby("attack", sort=True):
        cells = [str(attack), str(len(group)), str(int(group["num_updates"].sum())),
                 str(int(group["attack_errors"].sum()))]
        cells += [_mean_std(group[column]) for column in SUMMARY_METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    if tables.clients.empty:
        lines.append("| (no attack results yet) |")
    if len(tables.rounds):
        last = tables.rounds.iloc[-1]
        metrics = ", ".join(f"{name} = {last[name]:.4g}" for name in tables.rounds.columns
                            if name != "round" and not pd.isna(last[name]))
        lines += ["", f"## Round {int(last['round'])}", "", metrics or "(no metrics)"]
    if len(tables.failures):
        lines += ["", "## Failed client replies", "", "| round | partition | subject | reason |",
                  "|---:|---:|---:|---|"]
        for failure in records(tables.failures.head(_SUMMARY_MAX_FAILURES)):
            reason = failure["reason"].replace("|", "/").replace("\n", " ")
            lines.append(f"| {failure['round']} | {failure['partition']} | "
                         f"{failure['subject']} | {reason} |")
        if len(tables.failures) > _SUMMARY_MAX_FAILURES:
            lines.append(f"\n... and {len(tables.failures) - _SUMMARY_MAX_FAILURES} more "
                         f"in {FAILURES_CSV}")
    return "\n".join(lines) + "\n"
