"""Per-run views: leakage over rounds and the spread of ClassAcc across clients.

For every run used by the report, in ``OUT/runs/<run name>/``:

- ``leakage_over_rounds.png`` (runs with more than one round): per attack and round the mean
  LnAcc and LeAcc over the clients attacked in that round, with a band of +- one standard
  deviation across those clients (population std, clipped to 0-100%);
- ``class_acc_spread.png``: one box per attack of the clients' ClassAcc (box = quartiles,
  whiskers = 1.5 IQR, triangle = mean).

Colours are per base attack (:func:`fl_har.report.style.attack_colour`); the reference-code
reproductions (``leakage_har.*``) are drawn dashed / hatched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fl_har.report.collect import CollectedRun
from fl_har.report.factors import ATTACK_ORDER, REFERENCE, attack_variant, base_attack
from fl_har.report.style import (
    METRIC_LABELS,
    FigureFile,
    SkippedFigure,
    attack_colour,
    new_figure,
    percent_axis,
    save,
)

ROUND_METRICS = ("ln_acc", "le_acc")


def _attack_order(names: list[str]) -> list[str]:
    rank = {name: index for index, name in enumerate(ATTACK_ORDER)}
    return sorted(set(names), key=lambda n: (rank.get(base_attack(n), len(rank)),
                                             attack_variant(n), n))


def _subtitle(run: CollectedRun) -> str:
    return f"{run.name}: {run.factors.label()}"


def rounds_figure(run: CollectedRun, path: Path) -> FigureFile:
    """Mean LnAcc / LeAcc per attack per round with a +-1 std band across clients."""
    rows = run.tables.attacks
    rows = rows[rows["error"] == ""]
    figure = new_figure(11, 4.2)
    axes = figure.subplots(1, len(ROUND_METRICS), sharey=True)
    for axis, metric in zip(axes, ROUND_METRICS):
        for name in _attack_order(list(rows["attack"])):
            per_round = rows[rows["attack"] == name].groupby("round")[metric]
            mean, std = per_round.mean(), per_round.std(ddof=0).fillna(0.0)
            colour = attack_colour(base_attack(name))
            style = "--" if attack_variant(name) == REFERENCE else "-"
            axis.plot(mean.index, mean.values, style, color=colour, marker="o", markersize=3,
                      label=name)
            axis.fill_between(mean.index, np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1),
                              color=colour, alpha=0.15, linewidth=0)
        axis.set_title(f"{METRIC_LABELS[metric]} per round")
        axis.set_xlabel("round")
        axis.set_ylim(0, 1.0)
        axis.xaxis.get_major_locator().set_params(integer=True)
        percent_axis(axis)
    axes[0].set_ylabel("mean over clients (band: ±1 std)")
    axes[-1].legend(title="attack", fontsize="small", loc="lower right")
    title = "Leakage over rounds"
    figure.suptitle(f"{title}\n{_subtitle(run)}", fontsize="medium")
    figure.tight_layout()
    save(figure, path)
    return FigureFile("rounds", path, f"{title}: {run.name}",
                      f"Mean LnAcc and LeAcc per attack and round over the clients of {run.name} "
                      "(band: ±1 std across clients).")


def spread_figure(run: CollectedRun, path: Path) -> FigureFile:
    """Box plot of the clients' ClassAcc per attack."""
    clients = run.tables.clients
    names = [n for n in _attack_order(list(clients["attack"]))
             if clients.loc[clients["attack"] == n, "class_acc"].notna().any()]
    figure = new_figure(max(6.5, 1.2 + 0.9 * len(names)), 4.2)
    axis = figure.subplots()
    values = [clients.loc[clients["attack"] == n, "class_acc"].dropna().to_numpy() for n in names]
    if names:
        boxes = axis.boxplot(values, patch_artist=True, showmeans=True, widths=0.6,
                             medianprops={"color": "black"},
                             meanprops={"marker": "^", "markerfacecolor": "white",
                                        "markeredgecolor": "black"})
        for box, name in zip(boxes["boxes"], names):
            box.set_facecolor(attack_colour(base_attack(name)))
            box.set_alpha(0.75)
            if attack_variant(name) == REFERENCE:
                box.set_hatch("//")
        axis.set_xticks(np.arange(1, len(names) + 1), names, rotation=30, ha="right")
    axis.set_ylim(0, 1.02)
    axis.set_xlabel("attack")
    axis.set_ylabel("ClassAcc per client")
    percent_axis(axis)
    clients_count = clients[["partition"]].drop_duplicates().shape[0]
    title = "ClassAcc across clients"
    axis.set_title(f"{title} ({clients_count} clients)\n{_subtitle(run)}", fontsize="medium")
    figure.tight_layout()
    save(figure, path)
    return FigureFile("spread", path, f"{title}: {run.name}",
                      f"ClassAcc of every client of {run.name} per attack (box: quartiles, "
                      "triangle: mean).")


def run_views(run: CollectedRun, out_dir: Path) -> tuple[list[FigureFile], list[SkippedFigure]]:
    """Both views of ``run`` in ``out_dir/<run name>/`` (rounds only with > 1 round)."""
    folder = out_dir / run.name
    written = [spread_figure(run, folder / "class_acc_spread.png")]
    rounds = pd.unique(run.tables.attacks["round"])
    if len(rounds) > 1:
        return [rounds_figure(run, folder / "leakage_over_rounds.png"), *written], []
    return written, [SkippedFigure("rounds", run.name, f"{len(rounds)} round: nothing to plot "
                                                       "over rounds")]
