"""``fl-har report``: run directories in, the paper's tables and figures out.

Turns finished run directories into the equivalents of Table 1 and Figures 2-4 of Bock et al.,
"Label Leakage in Federated Inertial-based Human Activity Recognition" (arXiv:2505.20924),
per-run views, and a Markdown report that compares the results with the paper's findings.

Modules: :mod:`~fl_har.report.collect` (find and read runs, tidy per-client frame),
:mod:`~fl_har.report.factors` (experimental factors from ``config.toml``),
:mod:`~fl_har.report.aggregate` (two-stage means), :mod:`~fl_har.report.tables` (Table 1),
:mod:`~fl_har.report.paper` (the paper's published numbers), :mod:`~fl_har.report.figure_leakage`
(Figures 2, 3), :mod:`~fl_har.report.figure_confusion` (Figure 4),
:mod:`~fl_har.report.run_views`, :mod:`~fl_har.report.findings`, :mod:`~fl_har.report.runtime`,
:mod:`~fl_har.report.markdown`, :mod:`~fl_har.report.build`.
"""

from fl_har.report.build import Report, build_report
from fl_har.report.collect import Collection, collect_runs, find_run_dirs
from fl_har.report.errors import ReportError
from fl_har.report.findings import Finding, paper_findings
from fl_har.report.tables import table1

__all__ = [
    "Collection", "Finding", "Report", "ReportError", "build_report", "collect_runs",
    "find_run_dirs", "paper_findings", "table1",
]
