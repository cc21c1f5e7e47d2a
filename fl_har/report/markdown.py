"""``report.md`` / ``RESULTS.md``: runs read, runtime, Table 1 beside the paper, figures, the
point-by-point comparison with the paper's findings and, last, hand-written notes verbatim.

Every number in the text is computed from the runs; the notes (``--notes FILE``) are inserted
unchanged and by convention hold interpretation only, no numbers (this is not enforced).
Links are relative to the folder of the Markdown file being written.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from fl_har.report.collect import FACTOR_COLUMNS, Collection
from fl_har.report.factors import PUBLISHED, REFERENCE, VARIANTS, ordered
from fl_har.report.findings import Finding
from fl_har.report.paper import PAPER_CITATION
from fl_har.report.runtime import duration, time_span
from fl_har.report.style import FigureFile, SkippedFigure
from fl_har.report.tables import table1_markdown

VARIANT_HEADINGS = {
    PUBLISHED: "Attacks as published",
    REFERENCE: "Reference-code reproductions (`leakage_har.*`)",
}
FIGURE_SECTIONS = (
    ("figure2", "Figure 2 equivalent: leakage per attack and sampling strategy"),
    ("figure3", "Figure 3 equivalent: multi-step minus single-step"),
    ("figure4", ("Figure 4 equivalent: confusion matrices with and without batch "
                 "clip+noise (the paper's LDP, no ε)")),
)


@dataclass
class ReportContent:
    """Everything :func:`render` writes about."""

    collection: Collection
    runs: pd.DataFrame
    table1: pd.DataFrame
    figures: list[FigureFile]
    skipped_figures: list[SkippedFigure]
    findings: list[Finding]
    command: str
    batch_size: int
    files: dict[str, Path] = field(default_factory=dict)  # label -> data file (CSV, ...)
    notes: str | None = None
    notes_path: Path | None = None
    pretrained: pd.DataFrame | None = None  # provenance.pretrained_models
    sweeps: list[tuple[Path, dict[str, object]]] = field(default_factory=list)


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], right: int = 0) -> list[str]:
    """Markdown table; the last ``right`` columns right-aligned."""
    align = ["---"] * (len(header) - right) + ["---:"] * right
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _link(path: Path, base: Path) -> str:
    return quote(Path(os.path.relpath(path.resolve(), base.resolve())).as_posix())


def _runs_section(content: ReportContent, base: Path) -> list[str]:
    collection, runs = content.collection, content.runs
    lines = ["## Runs", "",
             "Read from: " + ", ".join(f"`{p}`" for p in collection.inputs) + ".", "",
             (f"{len(collection.runs)} finished run(s) used, {len(collection.skipped)} skipped. "
             "Runs with the same dataset, model, state (trained / untrained), sampler, N, S and "
             "LDP setting form one configuration; their clients are pooled (e.g. the folds of a "
             "trained configuration); a subject attacked in several runs of a configuration "
             "counts once, with the mean of its values."), ""]
    keys = list(FACTOR_COLUMNS)
    grouped = runs.groupby(keys, sort=True).agg(runs=("run", "size"),
                                                 seconds=("round_seconds", "sum"))
    clients = collection.clients.groupby(keys, sort=True).agg(
        subjects=("subject", "nunique"),
        variants=("variant", lambda v: ", ".join(ordered(v, VARIANTS))))
    grouped = grouped.join(clients)
    rows = [[*key, row.variants, row.runs, row.subjects, duration(row.seconds)]
            for key, row in zip(grouped.index, grouped.itertuples(), strict=True)]
    lines += _table(["dataset", "model", "state", "sampler", "N", "S", "clip+noise (paper's LDP, no ε)", "attacks",
                     "runs", "clients", "round time"], rows, right=3)
    if collection.skipped:
        lines += ["", "Skipped run directories:", ""]
        lines += _table(["run directory", "reason"],
                        [[f"`{s.path}`", s.reason] for s in collection.skipped])
    lines += ["", f"<details><summary>All {len(runs)} runs used</summary>", ""]
    lines += _table(["run", "directory", "attacks", "rounds", "clients", "round time",
                     "started", "ended"],
                    [[r.run, f"`{r.path}`", r.attacks, r.rounds, r.clients,
                      duration(r.round_seconds), r.started_at, r.ended_at]
                     for r in runs.itertuples()])
    lines += ["", "</details>", ""]
    if content.files:
        lines += ["Data: " + ", ".join(f"[{label}]({_link(path, base)})"
                                       for label, path in content.files.items()) + ".", ""]
    return lines


def _number(value: object, digits: int = 3) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return "–"
    return f"{value:.{digits}f}"


def _pretrained_section(pretrained: pd.DataFrame | None) -> list[str]:
    if pretrained is None or pretrained.empty:
        return []
    lines = ["## Trained models", "",
             ("Each trained run attacks a model pre-trained centrally on other subjects. "
              "Held-out = the subjects the checkpoint was evaluated on and never trained on "
              "(in a sweep's leave-subjects-out folds: the fold's own clients); macro-F1 and "
              "accuracy from the checkpoint's meta."), ""]
    rows = [[Path(str(r.checkpoint)).name, r.dataset, r.model,
             r.held_out_subjects if isinstance(r.held_out_subjects, str) else "–",
             _number(r.train_subjects, 0), _number(r.epochs, 0), _number(r.eval_macro_f1),
             _number(r.eval_accuracy), _number(r.untrained_eval_macro_f1),
             duration(float(r.pretrain_seconds)) if _number(r.pretrain_seconds) != "–" else "–",
             len(str(r.runs).split(";")), r.problem or ""]
            for r in pretrained.itertuples()]
    lines += _table(["checkpoint", "dataset", "model", "held-out subjects", "training subjects",
                     "epochs", "held-out macro-F1", "held-out accuracy",
                     "untrained macro-F1 (same windows)", "pre-training time",
                     "runs", "problem"], rows)
    valid = pretrained.dropna(subset=["eval_macro_f1"])
    if not valid.empty:
        means = valid.groupby(["dataset", "model"])["eval_macro_f1"].agg(["mean", "min", "size"])
        lines += [""] + [f"- {dataset} {model}: mean held-out macro-F1 {_number(row['mean'])} "
                         f"(lowest {_number(row['min'])}, {int(row['size'])} checkpoints)"
                         for (dataset, model), row in means.iterrows()]
    return [*lines, ""]


def _runtime_section(runs: pd.DataFrame, sweeps: Sequence[tuple[Path, dict]]) -> list[str]:
    start, end = time_span(runs)
    lines = ["## Runtime", "",
             (f"- Sum over runs of the per-round time the server recorded (`round_seconds`: "
              f"local training and attacks): {duration(float(runs['round_seconds'].sum()))}."),
             (f"- Sum over runs of `ended_at - started_at` from `meta.json` (includes start-up "
              f"and waiting): {duration(float(runs['wall_seconds'].sum()))}."),
             f"- First run started {start}; last run ended {end}.", ""]
    for path, timing in sweeps:
        lines.append(f"Sweep `{path.parent}` (`{path.name}`, timing of its last invocation):")
        lines.append("")
        if not timing:
            lines.append("- no timing recorded")
        for key, value in timing.items():
            shown = (duration(float(value)) if key.endswith("seconds")
                     and _number(value) != "–" else str(value))
            lines.append(f"- {key.replace('_', ' ')}: {shown}")
        lines.append("")
    return lines


def table1_section(table: pd.DataFrame, batch_size: int, heading: str = "##") -> list[str]:
    """Both variants' Table 1 with the explanation of how each value is averaged."""
    lines = [f"{heading} Table 1 equivalent: average ClassAcc by sampling strategy", "",
             (f"Single-step updates (N={batch_size}, S=1) without batch clip+noise (the paper's "
              "LDP, which has no ε). Each value: the mean "
              "ClassAcc over clients per model × attack (all runs / folds of a configuration "
              "pooled, each subject once), then the equal-weight mean over the family's attacks "
              "(weight-based: LLG, LLG+, LLG*; bias-based: EBI, LLBG, iLRG, iDLG) and over the "
              "model architectures; "
              "Avg. = mean of the Weight and Bias values. U = untrained, T = trained model. "
              f"Paper columns: {PAPER_CITATION} (WEAR and Wetlab, DeepConvLSTM and TinyHAR)."),
             ""]
    for variant in VARIANTS:
        lines += [f"{heading}# {VARIANT_HEADINGS[variant]}", ""]
        if (table["variant"] == variant).any():
            lines.append(table1_markdown(table, variant))
        else:
            lines += ["No single-step no-LDP run with these attacks.", ""]
    return lines


def _figures_section(content: ReportContent, base: Path) -> list[str]:
    lines = ["## Figures", ""]
    for kind, heading in FIGURE_SECTIONS:
        lines += [f"### {heading}", ""]
        mine = [f for f in content.figures if f.kind == kind]
        for figure in mine:
            lines += [f"![{figure.title}]({_link(figure.path, base)})", "", figure.caption, ""]
        if not mine:
            lines += ["Not drawn (see below).", ""]
    views = [f for f in content.figures if f.kind in ("rounds", "spread")]
    if views:
        lines += ["### Per-run views", "",
                  (f"<details><summary>{len(views)} figures (leakage over rounds, ClassAcc "
                  "across clients)</summary>"), ""]
        lines += [f"- [{f.title}]({_link(f.path, base)})" for f in views]
        lines += ["", "</details>", ""]
    single_round = [s for s in content.skipped_figures if s.kind == "rounds"]
    others = [s for s in content.skipped_figures if s.kind != "rounds"]
    if others or single_round:
        lines += ["### Figures not drawn", ""]
        lines += [f"- {s.kind} ({s.what}): {s.reason}" for s in others]
        if single_round:
            lines.append(f"- leakage over rounds: not drawn for {len(single_round)} run(s) "
                         "with a single round")
        lines.append("")
    return lines


def findings_section(findings: Sequence[Finding], heading: str = "##") -> list[str]:
    """The comparison with the paper: claim, rule, verdict and the numbers behind it."""
    lines = [f"{heading} Comparison with the paper's findings", "",
             ("Computed automatically from the runs above; each finding states the rule it is "
             "checked by and the numbers it rests on. Verdicts: holds / does not hold / not "
             "measured."), ""]
    for number in sorted({f.number for f in findings}):
        mine = [f for f in findings if f.number == number]
        lines += [f"{heading}# ({number}) {mine[0].title}", "", f"Rule: {mine[0].rule}", ""]
        for finding in mine:
            lines.append(f"- **{finding.variant}**: **{finding.verdict}**")
            lines += [f"  - {line}" for line in finding.evidence]
        lines.append("")
    return lines


def render(content: ReportContent, markdown_path: Path) -> str:
    """The whole report, with links relative to ``markdown_path``'s folder."""
    base = markdown_path.parent
    lines = ["# fl-har report: label leakage compared with the paper", "",
             ("Generated by `fl-har report`; every number is computed from the run directories "
             "listed below. Command line:"), "", "```", content.command, "```", ""]
    lines += _runs_section(content, base)
    lines += _pretrained_section(content.pretrained)
    lines += _runtime_section(content.runs, content.sweeps)
    lines += table1_section(content.table1, content.batch_size)
    lines += _figures_section(content, base)
    lines += findings_section(content.findings)
    if content.collection.warnings:
        lines += ["## Warnings", ""]
        lines += [f"- {warning}" for warning in content.collection.warnings]
        lines.append("")
    if content.notes is not None:
        lines += ["## Interpretation", "",
                  (f"_Hand-written notes from `{content.notes_path}`, inserted verbatim (by "
                  "convention without numbers: every number is in the sections above)._"), "",
                  content.notes.rstrip("\n"), ""]
    return "\n".join(lines) + "\n"
