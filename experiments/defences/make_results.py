"""Write experiments/defences/RESULTS.md and its figure from a finished defences sweep.

    python experiments/defences/make_results.py results/defences-hapt-boost \
        [results/defences-hapt-boost-strong ...] [--out experiments/defences/RESULTS.md]
    python experiments/defences/make_results.py results/defences-hapt-grid \
        --out experiments/defences/grid/RESULTS.md

One run per aggregation rule and attacker setting (the sweeps' cells, e.g. ``clean``,
``fedavg``, ``median``), labelled by rule, poisoning rate and stamp amplitude. For each:
the attack success rate (ASR, with and without NULL sources) and the clean accuracy / macro-F1 on
the held-out people in the last round and averaged over the attack rounds, the price for the
honest participants (macro-F1 against the attack-free run), what the rule did with the
attacker's updates (``decision`` in updates.parquet) and, for cells with the label_histogram
detector, its TPR / FPR / AUROC (over the run and per round), and the curious server's label
leakage from the honest clients' updates (LnAcc / LeAcc of the run's first attack, per update).
Cells of a sweep with an ``attack`` and a ``defence`` axis (``hapt_grid.toml``) also get grid
tables (defence x attacker setting: ASR, clean macro-F1 and its cost against attack-free FedAvg,
honest updates excluded, honest leakage) and the robustness-utility figure (ASR against clean
macro-F1, per defence and attacker setting). All numbers come from the run directories.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import MaxNLocator

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fl_har.config import parse_subjects
from fl_har.metrics import detection_rates, detection_rates_by_round
from fl_har.results.readers import load_run

# The label_histogram detector's columns in updates.parquet (strategies.detection).
SCORE, FLAGGED = "detector_score", "detector_flagged"


def attack_rounds(config: dict) -> set[int] | None:
    """The rounds the attacker attacks (None: every round; empty: no attacker)."""
    adversary = config.get("adversary", {})
    if not adversary.get("clients") and not adversary.get("fraction"):
        return set()
    rounds = str(adversary.get("rounds", "all"))
    return None if rounds.strip().lower() == "all" else set(parse_subjects(rounds, "rounds"))


def axes_of(run_dir: Path) -> dict[str, str]:
    """The sweep axes of a cell (``{"attack": "boost1", "defence": "median"}``), from the sweep's
    manifest; empty for a run outside a sweep."""
    manifest = run_dir.parent.parent / "manifest.json"
    if not manifest.is_file():
        return {}
    cells = json.loads(manifest.read_text("utf-8")).get("cells", {})
    return dict(cells.get(run_dir.name, {}).get("axes", {}))


def label(run_dir: Path, config: dict) -> str:
    adversary = config.get("adversary", {})
    if attack_rounds(config) == set() or "attack" in axes_of(run_dir):
        return run_dir.name
    return (f"{run_dir.name} (poison {float(adversary['poison_rate']):.0%}, stamp "
            f"{float(adversary['stamp_amplitude']):g} std)")


def detector_columns(updates: pd.DataFrame) -> tuple[dict, pd.DataFrame | None]:
    """The detector's TPR / FPR / AUROC over all the run's updates, and per round (None
    without a detector or without the malicious truth)."""
    empty = {"detector_tpr": float("nan"), "detector_fpr": float("nan"),
             "detector_auroc": float("nan")}
    if SCORE not in updates or "malicious" not in updates:
        return empty, None
    scored = updates[updates["status"] == "ok"]
    truth = scored["malicious"].eq(True) | scored["malicious"].eq(1)
    flagged = scored[FLAGGED].eq(True) | scored[FLAGGED].eq(1)
    scores = scored[SCORE].astype(float)
    pooled = detection_rates(truth, scores, flagged)
    per_round = pd.DataFrame([
        {"round": r, "malicious": d.positives, "honest": d.negatives, "tpr": d.tpr,
         "fpr": d.fpr, "auroc": d.auroc}
        for r, d in detection_rates_by_round(scored["round"], truth, scores, flagged).items()
    ])
    return ({"detector_tpr": pooled.tpr, "detector_fpr": pooled.fpr,
             "detector_auroc": pooled.auroc}, per_round)


def summarise(run_dir: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame | None]:
    run = load_run(run_dir)
    rounds = run.rounds.sort_values("round")
    attacked = attack_rounds(run.config)
    last = rounds.iloc[-1]
    window = rounds if attacked is None else rounds[rounds["round"].isin(attacked or [])]
    updates = run.updates
    server = run.config.get("server", {})
    detector = server.get("detector", "none")
    row = {
        "rule": label(run_dir, run.config),
        "aggregator": server.get("aggregator", "fedavg"),
        "detector": "" if detector == "none" else
        f"{detector} ({'exclude' if server.get('detector_exclude') else 'watch'})",
        "rounds": int(last["round"]),
        "final_accuracy": float(last["eval_accuracy"]),
        "final_macro_f1": float(last["eval_macro_f1"]),
        "final_asr": float(last.get("asr", float("nan"))),
        "final_asr_no_null": float(last.get("asr_no_null", float("nan"))),
        "mean_asr_attack_rounds": float(window["asr"].mean()) if "asr" in window else float("nan"),
        # the rule's own time per round (runs recorded since aggregate_seconds exists)
        "aggregate_seconds": float(rounds["aggregate_seconds"].mean())
        if "aggregate_seconds" in rounds else float("nan"),
        "malicious_updates": 0,
        "malicious_selected": float("nan"),
        "benign_excluded_share": float("nan"),
    }
    if "malicious" in updates and len(updates):
        bad = updates[updates["malicious"].fillna(0).astype(bool)]
        row["malicious_updates"] = len(bad)
        if "decision" in bad and bad["decision"].notna().any():
            row["malicious_selected"] = int((bad["decision"] != "excluded").sum())
    if "decision" in updates and updates["decision"].notna().any():
        benign = updates[~updates["malicious"].fillna(0).astype(bool)] if "malicious" in updates \
            else updates
        row["benign_excluded_share"] = float((benign["decision"] == "excluded").mean())
    rates, per_round = detector_columns(updates)
    row.update(rates)
    row.update(honest_leakage(run.attacks, updates))
    row.update({f"axis_{axis}": value for axis, value in axes_of(run_dir).items()})
    return row, rounds, per_round


def honest_leakage(attacks: pd.DataFrame, updates: pd.DataFrame) -> dict:
    """LnAcc and LeAcc of the run's first attack on the honest clients' updates (mean per
    update): what a robust aggregator changes, or not, about what the curious server learns."""
    if attacks.empty:
        return {"honest_ln_acc": float("nan"), "honest_le_acc": float("nan")}
    rows = attacks[attacks["attack"] == attacks["attack"].iloc[0]]
    if "malicious" in updates:
        bad = updates[updates["malicious"].fillna(0).astype(bool)]
        bad_keys = set(zip(bad["round"], bad["partition"], strict=True))
        keep = [(r, p) not in bad_keys for r, p in zip(rows["round"], rows["partition"],
                                                        strict=True)]
        rows = rows[keep]
    return {"honest_ln_acc": float(rows["ln_acc"].mean()),
            "honest_le_acc": float(rows["le_acc"].mean())}


GRID_TABLES = {  # column -> what the grid table shows
    "mean_asr_attack_rounds": "ASR, mean over the attack rounds",
    "final_asr": "ASR in the last round",
    "final_macro_f1": "clean macro-F1 in the last round",
    "f1_cost_vs_clean_fedavg": "macro-F1 cost against attack-free FedAvg (the honest pay)",
    "benign_excluded_share": "share of honest updates excluded",
    "honest_ln_acc": "label leakage from honest updates (LnAcc of the curious server's attack)",
    "aggregate_seconds": "aggregation time per round, seconds (server wall time of the rule)",
}


def axis_order(sweeps: list[Path], axis: str, values: list[str], first: str) -> list[str]:
    """``values`` in the order the sweep files declare them (the copy each sweep folder keeps
    as ``sweep.toml``; the manifest lists cells alphabetically), ``first`` leading."""
    declared: list[str] = []
    for sweep in sweeps:
        path = sweep / "sweep.toml"
        if path.is_file():
            grid = tomllib.loads(path.read_text(encoding="utf-8")).get("grid", {})
            declared += [v for v in grid.get(axis, {}) if v not in declared]
    rank = {value: i for i, value in enumerate(declared)}
    return sorted(dict.fromkeys(values),
                  key=lambda v: (v != first, rank.get(v, len(rank)), v))


def grid_sections(table: pd.DataFrame, figure_path: Path, attack_order: list[str],
                  defence_order: list[str]) -> list[str]:
    """Defence x attacker-setting tables and the robustness-utility figure of a grid sweep."""
    grid = table.dropna(subset=["axis_attack", "axis_defence"])
    reference = grid[(grid["axis_attack"] == "clean") & (grid["axis_defence"] == "fedavg")]
    if len(reference):
        grid = grid.assign(f1_cost_vs_clean_fedavg=float(reference["final_macro_f1"].iloc[0])
                           - grid["final_macro_f1"])
    lines = []
    for column, title in GRID_TABLES.items():
        if column not in grid or grid[column].isna().all():
            continue
        pivot = grid.pivot(index="axis_defence", columns="axis_attack", values=column)
        pivot = pivot.reindex(index=defence_order, columns=attack_order)
        pivot.index.name, pivot.columns.name = "defence", None
        lines += ["", f"### {title}", "", markdown(pivot)]
    grid_figure(grid, attack_order, defence_order, figure_path)
    lines += ["", f"![ASR against clean macro-F1 per defence]({figure_path.name})"]
    return lines


def grid_rounds_figure(table: pd.DataFrame, series: dict[str, pd.DataFrame],
                       attacks: list[str], defences: list[str], path: Path) -> None:
    """ASR over rounds, one panel per attacker setting, one line per defence (and the clean
    macro-F1 per defence in the last panel): the grid's per-round view, readable."""
    grid = table.dropna(subset=["axis_attack", "axis_defence"])
    attacked = [a for a in attacks if a != "clean"]
    panels = [*attacked, "clean"] if "clean" in attacks else attacked
    columns = 4
    rows = -(-len(panels) // columns)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(rows, columns, figsize=(3.3 * columns, 2.7 * rows), sharex=True,
                             sharey=True, squeeze=False)
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    for ax, attack in zip(axes.ravel(), panels, strict=False):
        metric = "eval_macro_f1" if attack == "clean" else "asr"
        for index, defence in enumerate(defences):
            match = grid[(grid["axis_attack"] == attack) & (grid["axis_defence"] == defence)]
            if match.empty:
                continue
            rounds = series[match.index[0]]
            if metric in rounds:
                ax.plot(rounds["round"], rounds[metric], marker="o", ms=2, lw=1,
                        color=colours[index % len(colours)], label=defence)
        ax.set_title(f"{attack}: {'clean macro-F1' if attack == 'clean' else 'ASR'}",
                     fontsize=9)
        ax.set_ylim(0, 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for column in range(columns):  # the lowest visible panel of each column
        visible = [axes[r][column] for r in range(rows) if r * columns + column < len(panels)]
        if visible:
            visible[-1].set_xlabel("round")
            visible[-1].xaxis.set_tick_params(labelbottom=True)
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
               fontsize=8, title="defence")
    fig.tight_layout()
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def grid_figure(grid: pd.DataFrame, attacks: list[str], defences: list[str], path: Path) -> None:
    """The robustness-utility frontier: ASR (mean over attack rounds) against clean macro-F1,
    one panel per attacker setting, one point per defence."""
    attacked = [a for a in attacks if grid.loc[grid["axis_attack"] == a,
                                               "mean_asr_attack_rounds"].notna().any()]
    if not attacked:
        return
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(attacked), figsize=(3.6 * len(attacked), 3.6), sharey=True,
                             squeeze=False)
    for ax, attack in zip(axes[0], attacked, strict=True):
        part = grid[grid["axis_attack"] == attack].set_index("axis_defence")
        for index, defence in enumerate(defences):
            if defence not in part.index:
                continue
            row = part.loc[defence]
            ax.scatter(row["final_macro_f1"], row["mean_asr_attack_rounds"], s=40,
                       color=colours[index % len(colours)], label=defence, zorder=3)
        ax.set(title=attack, xlabel="clean macro-F1 (last round)", ylim=(-0.03, 1.03))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("ASR (mean over attack rounds)")
    axes[0][-1].legend(frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.suptitle("Robustness vs utility: lower right is better", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def markdown(table: pd.DataFrame) -> str:
    """A GitHub table of ``table`` (index first), numbers to 3 decimals."""
    counts = {"rounds", "malicious_updates", "malicious_selected", "malicious", "honest"}

    def cell(column: str, value) -> str:
        if isinstance(value, float):
            if pd.isna(value):
                return ""
            return f"{value:.0f}" if column in counts else f"{value:.3f}"
        return str(value)

    header = [table.index.name or "", *table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in table.iterrows():
        cells = [cell(column, value) for column, value in row.items()]
        lines.append("| " + " | ".join([str(index), *cells]) + " |")
    return "\n".join(lines)


def figure(series: dict[str, pd.DataFrame], path: Path) -> None:
    fig, (ax_asr, ax_f1) = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (name, rounds) in enumerate(series.items()):
        style = {"marker": "o", "ms": 3, "label": name, "color": colours[index % len(colours)]}
        if "asr" in rounds:
            ax_asr.plot(rounds["round"], rounds["asr"], **style)
        ax_f1.plot(rounds["round"], rounds["eval_macro_f1"], **style)
    ax_asr.set(title="attack success rate (held-out people)", xlabel="round", ylabel="ASR",
               ylim=(0, 1))
    ax_f1.set(title="clean macro-F1 (held-out people)", xlabel="round", ylabel="macro-F1",
              ylim=(0, 1))
    ax_f1.legend(frameon=False, fontsize=8)
    for ax in (ax_asr, ax_f1):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", type=Path, nargs="+",
                        help="sweep folders (one run directory per rule)")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments/defences/RESULTS.md")
    args = parser.parse_args(argv)
    run_dirs = []
    for meta in (p for sweep in args.sweeps for p in sorted(sweep.rglob("meta.json"))):
        status = json.loads(meta.read_text("utf-8")).get("status")
        if status == "finished":
            run_dirs.append(meta.parent)
        else:  # a run still going, interrupted or failed: reported, not summarised
            print(f"skipping {meta.parent}: status {status}", file=sys.stderr)
    if not run_dirs:
        parser.error(f"{' '.join(map(str, args.sweeps))}: no finished run directory found")
    rows, series, detectors = [], {}, {}
    for run_dir in run_dirs:
        row, rounds, per_round = summarise(run_dir)
        rows.append(row)
        series[row["rule"]] = rounds
        if per_round is not None:
            detectors[row["rule"]] = per_round
    table = pd.DataFrame(rows).set_index("rule")
    axis_columns = [c for c in table.columns if c.startswith("axis_")]
    grid = {"axis_attack", "axis_defence"} <= set(axis_columns)
    if "clean" in table.index:  # the price for the honest participants (attack-free FedAvg)
        table["f1_cost_vs_clean"] = table.loc["clean", "final_macro_f1"] - table["final_macro_f1"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out.with_suffix(".csv"))
    figure_path = args.out.with_name("asr_f1_over_rounds.png")
    grid_lines = []
    if grid:
        attack_order, defence_order = (
            axis_order(args.sweeps, axis, list(table[f"axis_{axis}"].dropna()), first)
            for axis, first in (("attack", "clean"), ("defence", "fedavg")))
        grid_lines = grid_sections(table, args.out.with_name("asr_vs_f1.png"), attack_order,
                                   defence_order)
        grid_rounds_figure(table, series, attack_order, defence_order, figure_path)
    else:
        figure(series, figure_path)
    table = table.drop(columns=axis_columns)
    lines = [
        "# Backdoor vs defences on HAPT",
        "",
        ("Generated by `python experiments/defences/make_results.py "
         f"{' '.join(map(str, args.sweeps))}` from the run directories of those sweeps "
         "(configs: each sweep's `sweep.toml`; in this folder: `hapt_boost.toml`, "
         "`hapt_boost_strong.toml`, `hapt_grid.toml`)."),
        *(["", "## Defence x attacker", *grid_lines, "", "## Every run"] if grid else []),
        "",
        markdown(table),
        "",
        f"![ASR and macro-F1 over rounds]({figure_path.name})",
        "",
        ("Columns: `final_*` in the last round on the 5 held-out people; `mean_asr_attack_rounds` "
        "averages the ASR over the rounds in which the attacker attacks; `malicious_updates` "
        "counts the attacker's updates (it attacks only when sampled); `malicious_selected` how "
        "many of them the rule used (not excluded); `benign_excluded_share` the share of honest "
         "updates it left out; `f1_cost_vs_clean` is the macro-F1 the rule "
        "costs against the attack-free FedAvg run. `detector_*`: the label_histogram "
        "detector's true-positive rate (malicious updates flagged), false-positive rate (honest "
        "updates flagged) and AUROC of its scores, over all the run's updates "
        "(fl_har.metrics.detection_rates). `honest_ln_acc` / `honest_le_acc`: the curious "
        "server's label leakage (its first attack) from the honest clients' updates, per "
        "update."),
    ]
    for name, per_round in detectors.items():
        lines += ["", f"### label_histogram detector per round: {name}", "",
                  markdown(per_round.set_index("round").astype(float)), "",
                  ("TPR and AUROC are empty in rounds without a malicious update (the attacker "
                   "attacks only when sampled and in its attack rounds).")]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(table.round(3).to_string())
    print(f"wrote {args.out}, {args.out.with_suffix('.csv')} and {figure_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
