"""Figure-2 and Figure-3 equivalents: leakage per attack, and its change with multi-step updates.

- Figure 2 (Bock et al., arXiv:2505.20924, Fig. 2): LnAcc, LeAcc and ClassAcc per attack (x) and
  sampling strategy (bars) for single-step updates (N = 100, S = 1) without LDP; one figure per
  (variant, dataset, model state), averaged over the model architectures (the paper also averaged
  over its two datasets; here each dataset gets its own figure).
- Figure 3 (Fig. 3): the change of LnAcc and ClassAcc from the single-step run (N = 100, S = 1)
  of the same configuration to each multi-step setting (N, S), no LDP; per attack (x), bars per
  (N, S), one panel per sampler; the change is computed per model architecture and then averaged
  over the architectures measured in both settings.

Every value is a mean over clients per configuration x attack first
(:func:`fl_har.report.aggregate.cell_means`), then the mean over models.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib import colormaps

from fl_har.report.aggregate import average, cell_means, select, single_step
from fl_har.report.factors import ATTACK_ORDER, LDP_NONE, SAMPLER_ORDER, ordered
from fl_har.report.style import (
    METRIC_LABELS,
    FigureFile,
    SkippedFigure,
    grouped_bars,
    legend_outside,
    new_figure,
    percent_axis,
    safe_name,
    sampler_colour,
    save,
)

FIGURE2_METRICS = ("ln_acc", "le_acc", "class_acc")
FIGURE3_METRICS = ("ln_acc", "class_acc")
_SETTING = ["variant", "dataset", "state"]
_CONFIG = ["variant", "dataset", "model", "state", "sampler", "attack"]


def _models(part: pd.DataFrame) -> str:
    return ", ".join(sorted(set(part["model"])))


def figure2(clients: pd.DataFrame, out_dir: Path, batch_size: int
            ) -> tuple[list[FigureFile], list[SkippedFigure]]:
    """One Figure-2 PNG per (variant, dataset, state) with single-step no-LDP runs."""
    rows = single_step(clients, batch_size)
    if rows.empty:
        return [], [SkippedFigure("figure2", "all", f"no single-step run (N={batch_size}, S=1) "
                                                    "without LDP")]
    cells = cell_means(rows, FIGURE2_METRICS)
    written = []
    for (variant, dataset, state), part in cells.groupby(_SETTING, sort=True):
        attacks = ordered(part["attack"], ATTACK_ORDER)
        samplers = ordered(part["sampler"], SAMPLER_ORDER)
        figure = new_figure(4.2 * len(FIGURE2_METRICS) + 0.5, 4.2)
        axes = figure.subplots(1, len(FIGURE2_METRICS), sharey=True)
        for axis, metric in zip(axes, FIGURE2_METRICS):
            means = average(part, ["attack", "sampler"], metric)
            series = [(sampler, sampler_colour(sampler),
                       dict(zip(means.loc[means["sampler"] == sampler, "attack"],
                                means.loc[means["sampler"] == sampler, metric])))
                      for sampler in samplers]
            grouped_bars(axis, attacks, series)
            axis.set_title(METRIC_LABELS[metric])
            axis.set_xlabel("attack")
            axis.set_ylim(0, 1.0)
            axis.tick_params(axis="x", labelrotation=30)
            percent_axis(axis)
        axes[0].set_ylabel("mean over clients, then models")
        legend_outside(figure, axes[0], "sampling")
        title = f"Figure 2 equivalent: {dataset}, {state} models, {variant} attacks"
        figure.suptitle(f"{title}\nsingle-step N={batch_size}, S=1, no LDP; averaged over "
                        f"models ({_models(part)})", fontsize="medium")
        figure.tight_layout()
        path = save(figure, out_dir / f"{safe_name('figure2', variant, dataset, state)}.png")
        caption = (f"LnAcc, LeAcc and ClassAcc per attack and sampling strategy ({dataset}, "
                   f"{state} models, {variant} attack definitions; single-step N={batch_size}, "
                   f"no LDP; mean over clients per model, then over models: {_models(part)}).")
        written.append(FigureFile("figure2", path, title, caption))
    return written, []


def multi_step_changes(clients: pd.DataFrame, batch_size: int) -> pd.DataFrame:
    """Per configuration x attack x (N, S): multi-step minus single-step (N=batch_size, S=1)
    mean over clients of LnAcc and ClassAcc (columns ``d_ln_acc``, ``d_class_acc``), no LDP."""
    cells = cell_means(select(clients, ldp=LDP_NONE), FIGURE3_METRICS)
    is_base = (cells["batch_size"] == batch_size) & (cells["local_steps"] == 1)
    base = cells[is_base][[*_CONFIG, *FIGURE3_METRICS]]
    multi = cells[~is_base][[*_CONFIG, "batch_size", "local_steps", *FIGURE3_METRICS]]
    joined = multi.merge(base, on=_CONFIG, suffixes=("", "_base"))
    for metric in FIGURE3_METRICS:
        joined[f"d_{metric}"] = joined[metric] - joined[f"{metric}_base"]
    return joined


def figure3(clients: pd.DataFrame, out_dir: Path, batch_size: int
            ) -> tuple[list[FigureFile], list[SkippedFigure]]:
    """One Figure-3 PNG per (variant, dataset, state) with multi-step runs and their baseline."""
    no_ldp = select(clients, ldp=LDP_NONE)
    multi = no_ldp[(no_ldp["batch_size"] != batch_size) | (no_ldp["local_steps"] != 1)]
    if multi.empty:
        return [], [SkippedFigure("figure3", "all", "no multi-step run (S > 1 or N != "
                                                    f"{batch_size}) without LDP")]
    changes = multi_step_changes(clients, batch_size)
    if changes.empty:
        return [], [SkippedFigure("figure3", "all", "no multi-step run has a single-step run "
                                  f"(N={batch_size}, S=1, no LDP) of the same configuration")]
    settings = sorted(set(zip(changes["batch_size"], changes["local_steps"])))
    palette = colormaps["viridis"].resampled(max(len(settings), 2) + 1)
    colours = {setting: palette(index) for index, setting in enumerate(settings)}
    written = []
    for (variant, dataset, state), part in changes.groupby(_SETTING, sort=True):
        attacks = ordered(part["attack"], ATTACK_ORDER)
        samplers = ordered(part["sampler"], SAMPLER_ORDER)
        present = sorted(set(zip(part["batch_size"], part["local_steps"])))
        figure = new_figure(0.6 + 4.4 * len(samplers), 3.6 * len(FIGURE3_METRICS))
        axes = figure.subplots(len(FIGURE3_METRICS), len(samplers), squeeze=False, sharey="row")
        for row, metric in enumerate(FIGURE3_METRICS):
            means = average(part, ["sampler", "attack", "batch_size", "local_steps"],
                            f"d_{metric}")
            for column, sampler in enumerate(samplers):
                axis = axes[row][column]
                mine = means[means["sampler"] == sampler]
                series = []
                for n, s in present:
                    chosen = mine[(mine["batch_size"] == n) & (mine["local_steps"] == s)]
                    series.append((f"N={n}, S={s}", colours[(n, s)],
                                   dict(zip(chosen["attack"], chosen[f"d_{metric}"]))))
                grouped_bars(axis, attacks, series)
                axis.axhline(0.0, color="black", linewidth=0.8)
                axis.set_title(f"{sampler}: change of {METRIC_LABELS[metric]}")
                axis.tick_params(axis="x", labelrotation=30)
                percent_axis(axis, points=True)
                if row == len(FIGURE3_METRICS) - 1:
                    axis.set_xlabel("attack")
                if column == 0:
                    axis.set_ylabel(f"{METRIC_LABELS[metric]} minus single-step")
        legend_outside(figure, axes[0][0], "update")
        title = f"Figure 3 equivalent: {dataset}, {state} models, {variant} attacks"
        figure.suptitle(f"{title}\nchange vs single-step N={batch_size}, S=1 (no LDP), in "
                        f"percentage points; averaged over models ({_models(part)})",
                        fontsize="medium")
        figure.tight_layout()
        path = save(figure, out_dir / f"{safe_name('figure3', variant, dataset, state)}.png")
        caption = (f"Change of LnAcc and ClassAcc from single-step (N={batch_size}, S=1) to "
                   f"multi-step updates per attack and sampler ({dataset}, {state} models, "
                   f"{variant} attack definitions, no LDP; per model, then averaged over "
                   f"models: {_models(part)}).")
        written.append(FigureFile("figure3", path, title, caption))
    return written, []
