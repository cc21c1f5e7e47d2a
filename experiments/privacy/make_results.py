"""Write experiments/privacy/RESULTS.md, its table and its figure from finished frontier sweeps.

    python experiments/privacy/make_results.py results/privacy-frontier-pretrained \
        [results/privacy-frontier-pretrained-seed1 ...] [results/privacy-frontier] \
        [--out experiments/privacy/RESULTS.md]

Sweeps of the same start (pre-trained: "pretrained" in the folder name; untrained otherwise) run
with different ``run.seed`` (``fl-har sweep ... --set run.seed=1 --name ...-seed1``) are pooled:
one row per start and defence cell with the mean over seeds and, with two or more seeds, the
sample standard deviation; the price (ΔF1) is taken against the ``none`` cell of the same seed
before averaging. Per run: epsilon (DP-SGD: the largest cumulative epsilon any client
reached, from updates.parquet; central DP: the last round's central_epsilon; the paper's LDP and the
mitigations have none), the held-out macro-F1 of the global model in the last round and its change
against the sweep's ``none`` cell (the price), and the label leakage of every attack: ClassAcc (per
client over the run, clients.parquet), LnAcc and LeAcc (per update, attacks.parquet), averaged over
clients. "Best attack" is the attack with the highest ClassAcc in that cell (mean over seeds).
All numbers come from the run directories; every run's row is in ``RESULTS_runs.csv``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fl_har.results.readers import load_run


def family(config: dict) -> str:
    client, server, model = config["client"], config.get("server", {}), config["model"]
    if client.get("privacy") == "dp_sgd":
        return "DP-SGD"
    if client.get("privacy") == "ldp":
        return "batch clip+noise (LDP, no ε)"
    if server.get("dp", "none") != "none":
        return "central DP"
    if client.get("sampler") == "diverse" or not model.get("head_bias", True) \
            or client.get("loss") == "class_weighted":
        return "paper's mitigation"
    return "none"


def epsilon(run) -> float:
    """The run's epsilon (inf: DP-SGD without noise; nan: no epsilon is defined)."""
    client, server = run.config["client"], run.config.get("server", {})
    if client.get("privacy") == "dp_sgd":
        if float(client.get("dp_noise_multiplier", 0)) == 0 and \
                float(client.get("dp_epsilon", 0)) == 0:
            return float("inf")
        return float(run.updates["epsilon"].max())
    if server.get("dp", "none") != "none" and "central_epsilon" in run.rounds:
        return float(run.rounds.sort_values("round")["central_epsilon"].iloc[-1])
    return float("nan")


def summarise(run_dir: Path, variant: str) -> dict:
    """One run's row: its cell, seed, epsilon, last-round utility and every attack's leakage."""
    run = load_run(run_dir)
    rounds = run.rounds.sort_values("round")
    last = rounds.iloc[-1]
    row = {
        "start": variant, "defence": run_dir.name, "family": family(run.config),
        "seed": int(run.config["run"]["seed"]), "epsilon": epsilon(run),
        "rounds": int(last["round"]), "macro_f1": float(last["eval_macro_f1"]),
        "accuracy": float(last["eval_accuracy"]),
    }
    class_acc = run.clients.groupby("attack")["class_acc"].mean()
    per_update = run.attacks.groupby("attack")[["ln_acc", "le_acc"]].mean()
    for attack in class_acc.index:
        row[f"{attack}_class_acc"] = float(class_acc[attack])
        row[f"{attack}_ln_acc"] = float(per_update.loc[attack, "ln_acc"])
        row[f"{attack}_le_acc"] = float(per_update.loc[attack, "le_acc"])
    return row


def pool_seeds(runs: pd.DataFrame, attacks: list[str]) -> pd.DataFrame:
    """One row per (start, defence): means over seeds, ``<column>_sd`` standard deviations
    (NaN with one seed), ``seeds``, and the best attack by mean ClassAcc."""
    reference = runs[runs["defence"] == "none"].set_index(["start", "seed"])["macro_f1"]
    runs = runs.assign(f1_change=runs["macro_f1"] - pd.Series(
        [reference.get((start, seed), np.nan) for start, seed in zip(runs["start"], runs["seed"],
                                                                      strict=True)],
        index=runs.index))
    numeric = [c for c in runs.columns
               if c not in ("seed", "rounds") and pd.api.types.is_numeric_dtype(runs[c])]
    grouped = runs.groupby(["start", "defence"], sort=False)
    means = grouped[numeric].mean()
    sds = grouped[numeric].std(ddof=1).add_suffix("_sd")
    table = pd.concat([means, sds], axis=1)
    table["family"] = grouped["family"].first()
    table["seeds"] = grouped.size()
    table["rounds"] = grouped["rounds"].first()
    table = table.reset_index()
    best_rows = []
    for _, row in table.iterrows():
        scores = {a: row[f"{a}_class_acc"] for a in attacks
                  if np.isfinite(row.get(f"{a}_class_acc", np.nan))}
        best = max(scores, key=scores.get)
        best_rows.append({"best_attack": best, **{
            f"best_{m}{sd}": row[f"{best}_{m}{sd}"]
            for m in ("class_acc", "ln_acc", "le_acc") for sd in ("", "_sd")}})
    return pd.concat([table, pd.DataFrame(best_rows)], axis=1)


def variant_of(sweep: Path) -> str:
    return "pre-trained" if "pretrained" in sweep.name else "untrained"


def fmt(value, digits: int = 2, sd: float = float("nan")) -> str:
    if isinstance(value, float):
        if np.isnan(value):
            return "–"
        if np.isinf(value):
            return "∞"
        text = f"{value:.{digits}f}"
        return text if np.isnan(sd) else f"{text} ± {sd:.{digits}f}"
    return str(value)


def markdown(table: pd.DataFrame, attacks: list[str]) -> str:
    head = ["defence", "family", "ε", "seeds", "macro-F1", "ΔF1 vs none",
            "best attack", "ClassAcc", "LnAcc", "LeAcc",
            *[f"{a} ClassAcc" for a in attacks]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, row in table.iterrows():
        cells = [row["defence"], row["family"], fmt(row["epsilon"], 1), str(row["seeds"]),
                 fmt(row["macro_f1"], 3, row["macro_f1_sd"]),
                 fmt(row["f1_change"], 3, row["f1_change_sd"]), row["best_attack"],
                 fmt(row["best_class_acc"], 2, row["best_class_acc_sd"]),
                 fmt(row["best_ln_acc"]), fmt(row["best_le_acc"]),
                 *[fmt(row.get(f"{a}_class_acc", float("nan"))) for a in attacks]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(table: pd.DataFrame, path: Path) -> None:
    """Best-attack ClassAcc against macro-F1, one panel per start, coloured by log10 epsilon."""
    variants = list(dict.fromkeys(table["start"]))
    fig, axes = plt.subplots(1, len(variants), figsize=(6.2 * len(variants), 4.6), squeeze=False)
    finite = table["epsilon"][np.isfinite(table["epsilon"])]
    norm = matplotlib.colors.LogNorm(vmin=max(finite.min(), 1e-2) if len(finite) else 0.1,
                                     vmax=finite.max() if len(finite) else 100)
    cmap = plt.get_cmap("viridis")
    for ax, variant in zip(axes[0], variants, strict=True):
        part = table[table["start"] == variant]
        for _, row in part.iterrows():
            eps = row["epsilon"]
            if np.isfinite(eps):
                style = {"color": cmap(norm(eps)), "marker": "o", "s": 60}
            elif np.isinf(eps):
                style = {"color": "black", "marker": "x", "s": 60}
            else:
                style = {"facecolor": "white", "edgecolor": "grey", "marker": "s", "s": 50}
            ax.scatter(row["macro_f1"], row["best_class_acc"], zorder=3, **style)
            if row["seeds"] > 1:  # one standard deviation over seeds
                ax.errorbar(row["macro_f1"], row["best_class_acc"], xerr=row["macro_f1_sd"],
                            yerr=row["best_class_acc_sd"], color="grey", lw=0.8, zorder=2)
            ax.annotate(row["defence"], (row["macro_f1"], row["best_class_acc"]), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
        ax.set_xlim(0, max(0.1, 1.15 * part["macro_f1"].max()))
        ax.set(title=f"{variant} start: leakage vs utility", xlabel="held-out macro-F1 (last round)",
               ylabel="best attack's ClassAcc (per client)", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes[0].tolist())
    bar.set_label("ε (DP-SGD per client, central DP per model); x: ε = ∞, □: no ε")
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", type=Path, nargs="+", help="frontier sweep folders")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments/privacy/RESULTS.md")
    args = parser.parse_args(argv)
    rows = []
    for sweep in args.sweeps:
        run_dirs = sorted(p.parent for p in sweep.rglob("meta.json"))
        if not run_dirs:
            parser.error(f"{sweep}: no run directories (meta.json) found")
        for run_dir in run_dirs:
            if load_run(run_dir).meta.get("status") != "finished":
                print(f"skipping {run_dir}: not finished", file=sys.stderr)
                continue
            rows.append(summarise(run_dir, variant_of(sweep)))
    runs = pd.DataFrame(rows)
    attacks = sorted({c.removesuffix("_class_acc") for c in runs.columns
                      if c.endswith("_class_acc")})
    table = pool_seeds(runs, attacks)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out.with_suffix(".csv"), index=False)
    runs_csv = args.out.with_name(args.out.stem + "_runs.csv")
    runs.sort_values(["start", "defence", "seed"]).to_csv(runs_csv, index=False)
    figure_path = args.out.with_name("leakage_vs_f1.png")
    figure(table, figure_path)
    sections = []
    for variant, part in table.groupby("start", sort=False):
        sections += [f"## {variant} start", "", markdown(part, attacks), ""]
    text = "\n".join([
        "# Privacy defences and their price on HAPT",
        "",
        (f"Generated by `python experiments/privacy/make_results.py "
        f"{' '.join(str(s) for s in args.sweeps)}` (configs: `frontier.toml`, "
        "`frontier_pretrained.toml`; tables: `RESULTS.csv`, one row per run "
        f"`{runs_csv.name}`)."),
        "",
        *sections,
        f"![leakage vs macro-F1, coloured by epsilon]({figure_path.name})",
        "",
        ("Columns: ε: DP-SGD's largest cumulative per-client ε over the run (δ = 1e-5, RDP), "
        "central DP's ε of the released model, ∞ for clipping without noise, – where no ε "
        "exists. macro-F1 on the held-out subjects 26-30 in the last round; ΔF1 against the "
        "sweep's `none` cell. ClassAcc per client over all its updates (mean over clients), "
        "LnAcc and LeAcc per update (mean), for the attack with the highest ClassAcc in the "
        "cell, then ClassAcc of every attack. With several seeds: mean ± sample standard "
        "deviation over seeds (seeds: how many); ΔF1 against `none` of the same seed. The "
        "figure's bars are one standard deviation."),
        "",
    ])
    args.out.write_text(text, encoding="utf-8")
    print(table[["start", "defence", "seeds", "epsilon", "macro_f1", "macro_f1_sd", "f1_change",
                 "best_attack", "best_class_acc", "best_class_acc_sd"]].round(3).to_string())
    print(f"wrote {args.out}, {args.out.with_suffix('.csv')} and {figure_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
