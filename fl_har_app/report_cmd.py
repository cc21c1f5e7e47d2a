"""``fl-har report DIR...``: the paper's tables and figures from run directories.

Wiring (in :mod:`fl_har_app.main`): ``report_cmd.add_parser(commands)`` in ``build_parser`` and
``if args.command == "report": return report_cmd.report(args)`` in ``main``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from fl_har_app.console import console, fail

COMMAND = "report"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``fl-har report`` on the ``fl-har`` sub-command parsers."""
    parser = subparsers.add_parser(
        COMMAND,
        help="turn run directories into the paper's tables and figures",
        description="Read finished run directories (or folders containing them at any depth, "
        "e.g. a sweep folder) and write the Table-1 equivalent (Markdown + CSV, beside the "
        "paper's values), Figure 2-4 equivalents, per-run views and report.md with a "
        "point-by-point comparison with the paper's findings. Every factor (dataset, model, "
        "trained or not, sampler, N, S, batch clip+noise (the paper's LDP, no ε), attack "
        "variant) is read from each run's config.toml. Runs that are not finished are listed as skipped. Exit status 2 if no "
        "run is found.",
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR",
                        help="run directory or folder of run directories")
    parser.add_argument("--out", "-o", metavar="OUT",
                        help="output folder (default: <first DIR>/report)")
    parser.add_argument("--results-md", metavar="PATH",
                        help="also write the report to PATH with links relative to it "
                        "(e.g. experiments/paper/RESULTS.md)")
    parser.add_argument("--notes", metavar="FILE",
                        help="Markdown inserted verbatim at the end of the report "
                        "(interpretation; by convention without numbers)")
    parser.add_argument("--confusion-attack", default="llbg", metavar="ATTACK",
                        help="attack of the Figure-4 confusion matrices, base name without "
                        "'leakage_har.' (default: llbg)")
    parser.add_argument("--batch-size", type=int, default=100, metavar="N",
                        help="N of the single-step setting of Table 1 and Figures 2-4 "
                        "(default: 100, as in the paper)")
    parser.add_argument("--no-run-views", action="store_true",
                        help="skip the per-run figures (faster for large sweeps)")
    return parser


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as typed: ``sys.argv`` joined (program name shortened, shell-quoted)."""
    argv = list(sys.argv if argv is None else argv)
    program = Path(argv[0]).name if argv else "fl-har"
    if program in ("__main__.py", "__init__.py"):
        program = "python -m fl_har"
    return " ".join([program, *map(shlex.quote, argv[1:])])


def _summary(report) -> None:
    from fl_har.report.tables import FAMILY_LABELS, column_label, percent

    collection = report.collection
    console.print(f"[bold]{len(collection.runs)}[/] run(s) used, "
                  f"[bold]{len(collection.skipped)}[/] skipped")
    for skipped in collection.skipped[:10]:
        console.print(f"  [yellow]skipped[/] {escape(str(skipped.path))}: "
                      f"{escape(skipped.reason)}")
    if len(collection.skipped) > 10:
        console.print(f"  ... and {len(collection.skipped) - 10} more (see report.md)")
    table = report.table1
    for variant in dict.fromkeys(table["variant"]):
        mine = table[table["variant"] == variant]
        columns = list(dict.fromkeys(zip(mine["dataset"], mine["state"])))
        view = Table(title=f"Table 1 equivalent ({variant} attacks): mean ClassAcc",
                     title_justify="left")
        view.add_column("sampling")
        view.add_column("attacks")
        for dataset, state in columns:
            view.add_column(column_label(dataset, state), justify="right")
        for (sampler, family), rows in mine.groupby(["sampler", "family"], sort=False):
            values = dict(zip(zip(rows["dataset"], rows["state"]), rows["class_acc"]))
            view.add_row(sampler, FAMILY_LABELS.get(family, family),
                         *(percent(values.get(column, float("nan"))) for column in columns))
        console.print(view)
    verdicts = Table(title="Paper findings", title_justify="left")
    for name in ("#", "variant", "verdict", "finding"):
        verdicts.add_column(name)
    for finding in report.findings:
        # The reasons behind "not measured" are in report.md; the console keeps one word.
        verdict = "not measured" if not finding.measured else finding.verdict
        verdicts.add_row(str(finding.number), finding.variant, verdict, finding.title)
    console.print(verdicts)
    console.print(f"{len(report.figures)} figure(s), {len(report.skipped_figures)} not drawn; "
                  f"report: [bold]{escape(str(report.report_md))}[/]"
                  + (f", results: [bold]{escape(str(report.results_md))}[/]"
                     if report.results_md else ""))


def report(args: argparse.Namespace) -> int:
    """Run ``fl-har report``; input errors print one line and return 2."""
    from fl_har.report import ReportError, build_report

    try:
        with console.status("reading runs and drawing figures ..."):
            result = build_report(
                args.dirs, args.out, results_md=args.results_md, notes=args.notes,
                confusion_attack=args.confusion_attack, batch_size=args.batch_size,
                run_views_enabled=not args.no_run_views, command=command_line())
    except ReportError as error:
        return fail(str(error))
    _summary(result)
    return 0
