"""Shared look of the report's figures: colours, percent axes, grouped bars, PNG output.

Figures are drawn on :class:`matplotlib.figure.Figure` objects directly (no pyplot, no global
state, no GUI backend) and saved as 150-dpi PNG files with a tight bounding box.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from fl_har import metrics

DPI = 150
ATTACK_COLOURS = {
    "llg": "#1f77b4", "llg_plus": "#17becf", "llg_star": "#9467bd",
    "ebi": "#2ca02c", "llbg": "#d62728", "llbg_trained": "#ff7f0e",
    "ilrg": "#8c564b", "idlg": "#e377c2",
}
_FALLBACK_COLOURS = ("#7f7f7f", "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39")
SAMPLER_COLOURS = {"shuffle": "#4c72b0", "sequential": "#dd8452", "balanced": "#55a868"}
# Display names of the leakage metrics, by results column (the registry in fl_har.metrics).
METRIC_LABELS = metrics.METRIC_LABELS


@dataclass(frozen=True)
class FigureFile:
    """A written figure: ``kind`` (figure2, figure3, figure4, rounds, spread), file, caption."""

    kind: str
    path: Path
    title: str
    caption: str


@dataclass(frozen=True)
class SkippedFigure:
    kind: str
    what: str
    reason: str


def attack_colour(attack: str) -> str:
    """One colour per base attack name, the same in every figure."""
    if attack in ATTACK_COLOURS:
        return ATTACK_COLOURS[attack]
    return _FALLBACK_COLOURS[sum(map(ord, attack)) % len(_FALLBACK_COLOURS)]


def sampler_colour(sampler: str) -> str:
    return SAMPLER_COLOURS.get(sampler, attack_colour(sampler))


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI)


def percent_axis(axis: Axes, *, points: bool = False) -> None:
    """Fractions shown as percent (``points``: differences in percentage points)."""
    if points:
        axis.yaxis.set_major_formatter(
            FuncFormatter(lambda v, _: "0 pp" if abs(v) < 1e-9 else f"{100 * v:+.0f} pp"))
    else:
        axis.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))
    axis.grid(axis="y", alpha=0.3)
    axis.set_axisbelow(True)


def grouped_bars(axis: Axes, categories: Sequence[str],
                 series: Sequence[tuple[str, str, Mapping[str, float]]]) -> None:
    """Bars per category (x), one bar per series ``(label, colour, {category: value})``.

    A missing or NaN value leaves its slot empty.
    """
    width = 0.8 / max(len(series), 1)
    positions = np.arange(len(categories))
    for index, (label, colour, values) in enumerate(series):
        heights = [values.get(category, np.nan) for category in categories]
        offsets = positions - 0.4 + width * (index + 0.5)
        axis.bar(offsets, heights, width=width, color=colour, label=label, edgecolor="white",
                 linewidth=0.5)
    axis.set_xticks(positions, list(categories))
    axis.set_xlim(-0.6, len(categories) - 0.4)


def legend_outside(figure: Figure, axis: Axes, title: str) -> None:
    """One legend for the whole figure, right of the panels (taken from ``axis``)."""
    handles, labels = axis.get_legend_handles_labels()
    figure.legend(handles, labels, title=title, loc="center left", bbox_to_anchor=(1.0, 0.5),
                  fontsize="small", frameon=False)


def save(figure: Figure, path: Path) -> Path:
    """Write ``figure`` as a 150-dpi PNG with a tight layout (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, bbox_inches="tight", format="png")
    return path


def safe_name(*parts: object) -> str:
    """File-name fragment from ``parts`` (only letters, digits, ``-``, ``_``, ``+``)."""
    text = "_".join(str(part) for part in parts)
    return "".join(c if c.isalnum() or c in "-_+" else "-" for c in text)
