"""Figure-4 equivalent: confusion matrices of one attack with and without local DP.

Bock et al. (arXiv:2505.20924), Fig. 4, shows for LLBG on a trained DeepConvLSTM the confusion
matrices of shuffled and sequential sampling under no LDP, noise, clipping and both. The server
never learns which window carries which label, so these are *sorted-pairing* matrices
(:func:`fl_har.metrics.sorted_pairing_confusion`): each update's sorted true labels are paired
position by position with its sorted reconstructed labels. Here the pair counts are summed over
every update of every client of every run (fold) of the configuration, then each row is divided
by its sum (row = true class). Updates whose predicted counts do not sum to the true N (possible
only for unadjusted iLRG) cannot be paired and are left out, as are failed attacks.

One grid PNG per (variant, dataset, model, state) with single-step runs (N = 100, S = 1): rows =
the samplers run under at least two LDP settings, columns = LDP setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from fl_har.data.hapt import CLASS_NAMES as HAPT_CLASS_NAMES
from fl_har.data.published import LAYOUTS
from fl_har.metrics import sorted_pairing_confusion
from fl_har.report.collect import CollectedRun
from fl_har.report.factors import (
    LDP_ORDER,
    SAMPLER_ORDER,
    attack_variant,
    base_attack,
    ordered,
)
from fl_har.report.style import DPI, FigureFile, SkippedFigure, safe_name, save

_KNOWN_CLASS_NAMES = {
    "hapt": HAPT_CLASS_NAMES,
    **{name: layout.class_names for name, layout in LAYOUTS.items()},
}


def class_names(dataset: str, num_classes: int) -> list[str]:
    """The dataset's class names if it has ``num_classes`` classes, else ``null, 1, 2, ...``."""
    known = _KNOWN_CLASS_NAMES.get(dataset)
    if known is not None and len(known) == num_classes:
        return list(known)
    return ["null", *(str(c) for c in range(1, num_classes))]


@dataclass
class PooledConfusion:
    """Raw sorted-pairing counts summed over updates, with what went into them."""

    counts: np.ndarray
    updates: int = 0
    unpaired: int = 0
    clients: set[tuple[int, int]] = field(default_factory=set)
    runs: set[int] = field(default_factory=set)

    def normalised(self) -> np.ndarray:
        """Row-normalised matrix (rows of classes never present stay 0)."""
        sums = self.counts.sum(axis=1, keepdims=True).astype(np.float64)
        return np.divide(self.counts, sums, out=np.zeros(self.counts.shape), where=sums > 0)


GridKey = tuple[str, str, str, str]  # variant, dataset, model, state
CellKey = tuple[str, str]  # sampler, ldp


def pool_confusions(runs: Sequence[CollectedRun], attack: str, batch_size: int
                    ) -> dict[GridKey, dict[CellKey, PooledConfusion]]:
    """Sorted-pairing counts of ``attack`` (base name, both variants) per grid and cell."""
    pooled: dict[GridKey, dict[CellKey, PooledConfusion]] = {}
    for run in runs:
        factors = run.factors
        if factors.batch_size != batch_size or factors.local_steps != 1:
            continue
        rows = run.tables.attacks
        rows = rows[(rows["error"] == "") & (rows["attack"].map(base_attack) == attack)]
        for name, group in rows.groupby("attack", sort=True):
            grid = (attack_variant(str(name)), factors.dataset, factors.model, factors.state)
            true = np.array(list(group["true_counts"]), dtype=np.int64)
            predicted = np.array(list(group["pred_counts"]), dtype=np.int64)
            cells = pooled.setdefault(grid, {})
            cell = cells.setdefault((factors.sampler, factors.ldp),
                                    PooledConfusion(np.zeros((true.shape[1],) * 2, np.int64)))
            if cell.counts.shape[0] != true.shape[1]:
                cell.unpaired += len(group)
                continue
            paired = true.sum(axis=1) == predicted.sum(axis=1)
            cell.unpaired += int((~paired).sum())
            if paired.any():
                cell.counts += sorted_pairing_confusion(true[paired], predicted[paired])
            cell.updates += int(paired.sum())
            cell.clients |= {(run.run_id, int(p)) for p in group.loc[paired, "partition"]}
            cell.runs.add(run.run_id)
    return pooled


def comparable_samplers(cells: dict[CellKey, PooledConfusion]) -> list[str]:
    """Samplers measured (with at least one paired update) under two or more LDP settings."""
    settings: dict[str, set[str]] = {}
    for (sampler, ldp), cell in cells.items():
        if cell.updates:
            settings.setdefault(sampler, set()).add(ldp)
    return ordered([s for s, found in settings.items() if len(found) >= 2], SAMPLER_ORDER)


def _draw_grid(grid: GridKey, cells: dict[CellKey, PooledConfusion], attack: str,
               batch_size: int, path: Path) -> FigureFile:
    variant, dataset, model, state = grid
    samplers = comparable_samplers(cells)
    settings = ordered([ldp for sampler, ldp in cells if sampler in samplers], LDP_ORDER)
    num_classes = next(iter(cells.values())).counts.shape[0]
    names = class_names(dataset, num_classes)
    side = 1.0 + 0.22 * num_classes
    figure = Figure(figsize=(side * len(settings) + 2.2, side * len(samplers) + 1.6), dpi=DPI,
                    layout="constrained")
    axes = figure.subplots(len(samplers), len(settings), squeeze=False)
    image = None
    ticks = np.arange(num_classes)
    for row, sampler in enumerate(samplers):
        for column, setting in enumerate(settings):
            axis = axes[row][column]
            cell = cells.get((sampler, setting))
            if cell is None or cell.updates == 0:
                axis.set_axis_off()
                axis.text(0.5, 0.5, f"{sampler}, clip+noise {setting}:\nno run", ha="center",
                          va="center", transform=axis.transAxes)
                continue
            image = axis.imshow(cell.normalised(), vmin=0.0, vmax=1.0, cmap="Blues")
            left_out = f", {cell.unpaired} unpaired left out" if cell.unpaired else ""
            axis.set_title(f"{sampler}, clip+noise {setting}\n{len(cell.clients)} clients, "
                           f"{cell.updates} updates{left_out}", fontsize="small")
            bottom, left = row == len(samplers) - 1, column == 0
            axis.set_xticks(ticks if bottom else [], names if bottom else [], rotation=90,
                            fontsize="x-small")
            axis.set_yticks(ticks if left else [], names if left else [], fontsize="x-small")
            if bottom:
                axis.set_xlabel("reconstructed label\n(sorted pairing)", fontsize="small")
            if left:
                axis.set_ylabel("true label", fontsize="small")
    if image is not None:
        bar = figure.colorbar(image, ax=axes, shrink=0.6,
                              format=FuncFormatter(lambda v, _: f"{100 * v:.0f}%"))
        bar.set_label("share of the true class's windows (row-normalised)")
    title = (f"Figure 4 equivalent: {attack} on {dataset}, {state} {model}, {variant} "
             "attacks")
    figure.suptitle(f"{title}\nsingle-step N={batch_size}, S=1; sorted-pairing confusion "
                    "pooled over all updates of all clients", fontsize="medium")
    save(figure, path)
    caption = (f"Sorted-pairing confusion matrices of {attack} ({variant} definition) on "
               f"{dataset} with the {state} {model}, per sampling strategy (rows) and batch clip+noise "
               "setting (the paper's LDP, no ε; columns); pair counts summed over every update of every client, rows "
               "normalised to 100%.")
    return FigureFile("figure4", path, title, caption)


def figure4(runs: Sequence[CollectedRun], out_dir: Path, batch_size: int, attack: str
            ) -> tuple[list[FigureFile], list[SkippedFigure]]:
    """Figure-4 grids for ``attack`` (base name, e.g. ``llbg``); see the module docstring."""
    pooled = pool_confusions(runs, attack, batch_size)
    if not pooled:
        return [], [SkippedFigure("figure4", f"attack {attack}", f"no single-step run "
                                  f"(N={batch_size}, S=1) with a successful {attack} result")]
    written, skipped = [], []
    for grid, cells in sorted(pooled.items()):
        what = f"{attack}: " + ", ".join(grid)
        if not comparable_samplers(cells):
            settings = ", ".join(repr(s) for s in ordered([ldp for _, ldp in cells], LDP_ORDER))
            skipped.append(SkippedFigure("figure4", what, "no sampler was run under two or more "
                                         f"LDP settings (LDP settings present: {settings})"))
            continue
        path = out_dir / f"{safe_name('figure4', *grid, attack)}.png"
        written.append(_draw_grid(grid, cells, attack, batch_size, path))
    return written, skipped
