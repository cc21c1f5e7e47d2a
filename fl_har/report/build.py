"""``build_report``: run directories in, tables, figures and Markdown out."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fl_har.report.collect import Collection, collect_runs
from fl_har.report.errors import ReportError
from fl_har.report.factors import base_attack
from fl_har.report.figure_confusion import figure4
from fl_har.report.figure_leakage import figure2, figure3
from fl_har.report.findings import Finding, paper_findings
from fl_har.report.markdown import ReportContent, render, table1_section
from fl_har.report.paper import PAPER_BATCH_SIZE
from fl_har.report.provenance import pretrained_models, sweep_timings
from fl_har.report.run_views import run_views
from fl_har.report.runtime import runs_frame
from fl_har.report.style import FigureFile, SkippedFigure
from fl_har.report.tables import table1

DEFAULT_CONFUSION_ATTACK = "llbg"


@dataclass(frozen=True)
class Report:
    """What :func:`build_report` computed and wrote."""

    out: Path
    report_md: Path
    results_md: Path | None
    collection: Collection
    table1: pd.DataFrame
    findings: list[Finding]
    figures: list[FigureFile]
    skipped_figures: list[SkippedFigure]


def _read_notes(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text("utf-8")
    except FileNotFoundError:
        raise ReportError(f"--notes {path}: file does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ReportError(f"--notes {path}: not readable as UTF-8 text ({error})") from None


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def build_report(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str] | None = None,
    *,
    results_md: str | os.PathLike[str] | None = None,
    notes: str | os.PathLike[str] | None = None,
    confusion_attack: str = DEFAULT_CONFUSION_ATTACK,
    batch_size: int = PAPER_BATCH_SIZE,
    run_views_enabled: bool = True,
    command: str = "fl-har report",
) -> Report:
    """Read every run under ``paths`` and write the report to ``out`` (default
    ``<first path>/report``).

    Writes ``table1.csv`` / ``table1.md`` (Table-1 equivalent per variant, beside the paper's
    values), ``clients.csv`` (tidy per-client rows used), ``runs.csv`` (runs and their runtime),
    ``pretrained.csv`` (the trained runs' checkpoints and their held-out scores, if any),
    ``figures/*.png`` (Figure 2-4 equivalents, where their runs exist), ``runs/<run>/*.png``
    (per-run views unless ``run_views_enabled`` is false) and ``report.md``; with
    ``results_md`` the same report (links relative to that file) also there. ``command`` is the
    command line quoted in the report; ``batch_size`` the N of the single-step setting.
    """
    if batch_size < 1:
        raise ReportError(f"batch size {batch_size}: expected an integer >= 1")
    notes_text = _read_notes(None if notes is None else Path(notes))
    collection = collect_runs(paths)
    if not collection.runs:
        reasons = "; ".join(f"{s.path}: {s.reason}" for s in collection.skipped[:5])
        more = f" (and {len(collection.skipped) - 5} more)" if len(collection.skipped) > 5 else ""
        raise ReportError(f"no finished run in {', '.join(map(str, paths))}: {reasons}{more}")
    out_dir = Path(out) if out is not None else Path(paths[0]) / "report"
    figures_dir = out_dir / "figures"
    # Figures of an earlier report in the same folder must not linger next to the new ones.
    for stale in figures_dir.glob("figure[234]_*.png"):
        stale.unlink()
    table = table1(collection.clients, batch_size)
    figures: list[FigureFile] = []
    skipped: list[SkippedFigure] = []
    for drawn, missed in (
        figure2(collection.clients, figures_dir, batch_size),
        figure3(collection.clients, figures_dir, batch_size),
        figure4(collection.runs, figures_dir, batch_size, base_attack(confusion_attack)),
    ):
        figures += drawn
        skipped += missed
    if run_views_enabled:
        for run in collection.runs:
            drawn, missed = run_views(run, out_dir / "runs")
            figures += drawn
            skipped += missed
    runs = runs_frame(collection.runs)
    pretrained = pretrained_models(collection.runs)
    frames = {"table1.csv": table, "clients.csv": collection.clients, "runs.csv": runs}
    if not pretrained.empty:
        frames["pretrained.csv"] = pretrained
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, frame in frames.items():
        files[name] = out_dir / name
        frame.to_csv(files[name], index=False, lineterminator="\n")
    _write_text(out_dir / "table1.md", "\n".join(table1_section(table, batch_size, "#")))
    content = ReportContent(
        collection=collection, runs=runs, table1=table, figures=figures,
        skipped_figures=skipped, findings=paper_findings(collection.clients, batch_size),
        command=command, batch_size=batch_size, files=files, notes=notes_text,
        notes_path=None if notes is None else Path(notes), pretrained=pretrained,
        sweeps=sweep_timings(paths))
    report_md = out_dir / "report.md"
    _write_text(report_md, render(content, report_md))
    results_path = None
    if results_md is not None:
        results_path = Path(results_md)
        _write_text(results_path, render(content, results_path))
    return Report(out_dir, report_md, results_path, collection, table, content.findings,
                  figures, skipped)
