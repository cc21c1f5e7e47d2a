"""Write experiments/backdoor/RESULTS.md and its figures from finished backdoor sweeps.

    python experiments/backdoor/make_results.py results/backdoor-hapt-grid \
        results/backdoor-hapt-variants results/backdoor-hapt-seeds \
        [--out experiments/backdoor/RESULTS.md]

Every run is described by its config (not by its folder name): trigger, mode, number of
attackers, poisoning rate, attack rounds. From ``rounds.parquet``: the attack success rate (ASR,
with and without NULL sources) and the clean macro-F1 on the held-out people, in the last round and
averaged over the attack rounds, and the price for the honest participants (macro-F1 against the
run without an attacker). From ``updates.parquet``: the attackers' update norm against the honest
ones and their cosine to the honest mean. Persistence: for runs whose attackers stop before the
end, the ASR in their last attack round, in the last round, and the rounds until it fell below
half of its peak. Stealth of each trigger (recomputed from the first attacker's own windows with
the trigger the run used, loading a trained generator from the run's cache): trigger norm
relative to the signal, spectral distance of the poisoned windows to clean windows of the same
class, and the AUROC of a small detector separating poisoned from clean windows
(:mod:`fl_har.metrics`). Nothing here is typed in by hand; the seed paper's claims are quoted for
comparison only. Settings run with several seeds (``hapt_seeds.toml``) get mean, spread and
range over the seeds; every other section shows the primary seed (the one all sweeps ran).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from attacks.backdoor import AttackerData, build_trigger
from fl_har import metrics
from fl_har.adversary import attacker_training_data, resolve_adversary
from fl_har.config import from_dict, parse_subjects
from fl_har.federation import federation_plan
from fl_har.report.style import new_figure, percent_axis, save
from fl_har.results.readers import load_run

HERE = Path(__file__).resolve().parent
#: IMU-DM-CLIP's headline (shared/papers/imu-dm-clip-backdoor-summary.txt).
SEED_CLAIM = "> 80 % ASR with 10 % poisoning, clean F1 down by about 0.02"
#: Windows of the attacker used for the stealth measurements (and poisoned at rate 1).
STEALTH_WINDOWS = 300
#: What makes two runs the same setting (their seeds aside).
SETTING = ["trigger", "mode", "attackers", "poison_rate"]


def attack_rounds(config: dict) -> list[int]:
    adversary = config.get("adversary", {})
    rounds = int(config["run"]["rounds"])
    spec = str(adversary.get("rounds", "all"))
    if spec.strip().lower() == "all":
        return list(range(1, rounds + 1))
    return sorted(r for r in parse_subjects(spec, "adversary.rounds") if r <= rounds)


def attackers(config: dict) -> int:
    return len(config.get("adversary", {}).get("clients", []) or [])


def summarise(run) -> dict:
    c = run.config
    adversary = c.get("adversary", {})
    rounds = run.rounds.sort_values("round").set_index("round")
    last = rounds.iloc[-1]
    row = {
        "run": run.run_dir.name, "seed": int(c["run"].get("seed", 0)),
        "trigger": adversary.get("trigger", "stamp"),
        # poison_once (a poisoned dataset made once) is its own setting of the mode
        "mode": adversary.get("mode", "poison") + (" once" if adversary.get("poison_once")
                                                   else ""),
        "attackers": attackers(c),
        "poison_rate": float(adversary.get("poison_rate", 0.1)), "rounds": len(rounds),
        "final_asr": float(last.get("asr", np.nan)),
        "final_asr_no_null": float(last.get("asr_no_null", np.nan)),
        # generated triggers: the same held-out windows with the physical burst instead of SDEdit
        "final_asr_physical": float(last.get("asr_physical", np.nan)),
        "final_macro_f1": float(last["eval_macro_f1"]),
        "final_macro_f1_no_null": float(last.get("eval_macro_f1_no_null", np.nan)),
    }
    if not row["attackers"]:
        return row
    active = [r for r in attack_rounds(c) if r in rounds.index]
    row["mean_asr_attack_rounds"] = float(rounds.loc[active, "asr"].mean())
    last_attack = max(active)
    if last_attack < rounds.index.max():
        asr = rounds["asr"]
        peak = float(asr.loc[:last_attack].max())
        after = asr.loc[last_attack + 1:]
        below = after[after < peak / 2]
        row.update({"last_attack_round": last_attack, "asr_at_last_attack": float(asr[last_attack]),
                    "peak_asr": peak, "rounds_to_half_peak":
                    float(below.index[0] - last_attack) if len(below) else np.nan})
    updates = run.updates[run.updates["status"] == "ok"]
    if "malicious" in updates:
        bad = updates["malicious"].fillna(0).astype(bool)
        row["malicious_updates"] = int(bad.sum())
        if bad.any() and (~bad).any():
            row["norm_ratio"] = float(updates.loc[bad, "update_norm"].mean()
                                      / updates.loc[~bad, "update_norm"].mean())
            row["attacker_cosine"] = float(updates.loc[bad, "cosine_to_benign_mean"].mean())
            row["honest_cosine"] = float(updates.loc[~bad, "cosine_to_benign_mean"].mean())
            # Local time per window (clients hold different amounts of data), the attacker's
            # poisoning (trigger generation) included.
            poisoning = updates.get("adv_poison_seconds", pd.Series(0.0, index=updates.index))
            per_window = (updates["train_seconds"] + poisoning.fillna(0.0)) \
                / updates["num_examples"]
            row["train_time_ratio"] = float(per_window[bad].mean() / per_window[~bad].mean())
            # An attacker acts only when sampled: the ASR right after a round that aggregated a
            # malicious update, and in the attack rounds without one (how fast it decays).
            sampled = set(updates.loc[bad, "round"])
            with_attacker = [r for r in active if r in sampled]
            without = [r for r in active if r not in sampled]
            row["asr_rounds_with_attacker"] = float(rounds.loc[with_attacker, "asr"].mean())
            row["asr_rounds_without"] = (float(rounds.loc[without, "asr"].mean()) if without
                                         else np.nan)
    return row


def stealth(run) -> dict:
    """Stealth of the run's trigger on its first attacker's windows (module docstring)."""
    config = from_dict(run.config)
    plan = resolve_adversary(config, federation_plan(config))
    subject = plan.subjects[0]
    data = AttackerData(**attacker_training_data(config, plan, subject))
    options = dict(plan.trigger_options)
    if plan.trigger == "diffusion":
        cache = Path(options["cache_dir"])
        if not cache.is_dir() or not any(cache.iterdir()):
            raise FileNotFoundError(f"{cache}: no trained generator (run the sweep first)")
    trigger = build_trigger(plan.trigger, options, data)
    rng = np.random.default_rng(0)
    keep = rng.choice(len(data.y), size=min(STEALTH_WINDOWS, len(data.y)), replace=False)
    x, y = data.x[keep], data.y[keep]
    triggered = trigger.apply(x, np.random.default_rng(1))
    poisoned, _ = trigger.poison(x, y, plan.target, 1.0, np.random.default_rng(2))
    classes = [k for k in np.unique(y) if (y == k).sum() >= 5]
    spectral = float(np.mean([metrics.spectral_distance(poisoned[y == k], x[y == k])
                              for k in classes]))
    return {"trigger": plan.trigger, "attacker": subject,
            "trigger_norm_ratio": metrics.trigger_norm_ratio(x, triggered),
            "spectral_distance_db": spectral,
            "detector_auroc_poisoned": metrics.detector_auroc(x, poisoned, seed=0),
            "detector_auroc_triggered": metrics.detector_auroc(x, triggered, seed=0)}


def fmt(value) -> str:
    if value is pd.NA:
        return ""
    if isinstance(value, float | np.floating):
        return "" if not np.isfinite(value) else f"{value:.3f}"
    return str(value)


def markdown(frame: pd.DataFrame) -> list[str]:
    header = [frame.index.name or "", *map(str, frame.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, *values in frame.itertuples(name=None):  # keeps each column's dtype
        label = " / ".join(map(str, index)) if isinstance(index, tuple) else str(index)
        lines.append("| " + " | ".join([label, *map(fmt, values)]) + " |")
    return lines + [""]


def rate_section(table: pd.DataFrame, figures: Path) -> list[str]:
    grid = table[(table["attackers"] > 0) & (table["trigger"] == "stamp")
                 & (table["mode"].isin(["poison", "boost"])) & table["last_attack_round"].isna()]
    if grid["poison_rate"].nunique() < 2:
        return []
    lines = ["## ASR against poisoning rate and number of attackers (stamp trigger)", ""]
    for column, title in (("mean_asr_attack_rounds", "ASR, mean over the attack rounds"),
                          ("final_asr", "ASR in the last round"),
                          ("f1_cost", "clean macro-F1 cost against the run without attacker")):
        pivot = grid.pivot_table(index=["mode", "attackers"], columns="poison_rate",
                                 values=column)
        pivot.columns = [f"{rate:.0%}" for rate in pivot.columns]
        pivot.index.name = "mode / attackers"
        lines += [f"**{title}**", "", *markdown(pivot)]
    modes = sorted(grid["mode"].unique())
    figure = new_figure(4.3 * len(modes), 3.4)
    axes = figure.subplots(1, len(modes), squeeze=False, sharey=True)[0]
    for axis, mode in zip(axes, modes, strict=True):
        for count, part in grid[grid["mode"] == mode].groupby("attackers"):
            part = part.sort_values("poison_rate")
            axis.plot(part["poison_rate"], part["mean_asr_attack_rounds"], marker="o",
                      label=f"{count} attacker{'s' if count > 1 else ''}")
        axis.set_xscale("log")
        rates = sorted(grid["poison_rate"].unique())
        axis.set_xticks(rates, [f"{r:.0%}" for r in rates])
        axis.set_xlabel("poisoning rate (share of the attacker's windows)")
        axis.set_title(f"mode = {mode}", fontsize="small")
        axis.set_ylim(0, 1)
        percent_axis(axis)
    axes[0].set_ylabel("ASR (mean over attack rounds)")
    axes[-1].legend(fontsize="small", frameon=False)
    path = save(figure, figures / "asr_vs_poison_rate.png")
    return lines + [f"![ASR against poisoning rate]({path.relative_to(figures.parent).as_posix()})",
                    ""]


def comparison_section(table: pd.DataFrame) -> list[str]:
    """Stamp vs diffusion and the three modes at 10 % poisoning, attacking to the end."""
    rows = table[(table["attackers"] > 0) & np.isclose(table["poison_rate"], 0.1)
                 & table["last_attack_round"].isna()]
    if rows.empty:
        return []
    shown = rows.set_index(["trigger", "mode", "attackers"]).sort_index()[
        ["mean_asr_attack_rounds", "asr_rounds_with_attacker", "asr_rounds_without",
         "final_asr", "final_asr_no_null", "final_asr_physical", "final_macro_f1",
         "f1_cost", "norm_ratio", "attacker_cosine", "honest_cosine", "train_time_ratio"]]
    shown.index.name = "trigger / mode / attackers"
    return ["## Triggers and modes at 10 % poisoning", "",
            ("`asr_rounds_with_attacker` / `asr_rounds_without`: mean ASR after the attack "
             "rounds whose aggregate included an attacker's update / after those that did not "
             "(an attacker acts only when sampled). `final_asr_physical`: generated triggers "
             "only, the held-out windows carrying the physical burst the generator was taught instead of the SDEdit rendering. "
             "`norm_ratio`: the attackers' mean update norm over the honest clients' mean; "
             "`attacker_cosine` / `honest_cosine`: mean cosine of an update to the mean honest "
             "update of its round (what a norm or direction based defence sees). "
             "`train_time_ratio`: an attacker's local training time per window over an honest "
             "client's (poisoning included; target of issue 9: at most 1.5 once a generated "
             "trigger is cached)."), "",
            *markdown(shown)]


def persistence_section(runs: dict, table: pd.DataFrame, figures: Path) -> list[str]:
    rows = table[table["last_attack_round"].notna()]
    if rows.empty:
        return []
    shown = rows.set_index("run")[["mode", "attackers", "poison_rate", "last_attack_round",
                                   "peak_asr", "asr_at_last_attack", "final_asr",
                                   "rounds_to_half_peak", "final_macro_f1"]]
    shown = shown.astype({"last_attack_round": "Int64", "rounds_to_half_peak": "Int64"})
    figure = new_figure(6.0, 3.4)
    axis = figure.subplots()
    for name in shown.index:
        rounds = runs[name].rounds.sort_values("round")
        axis.plot(rounds["round"], rounds["asr"], marker="o", markersize=3, label=name)
        axis.axvline(shown.loc[name, "last_attack_round"] + 0.5, color="grey", linestyle=":")
    axis.set_xlabel("round (dotted: the attackers' last round)")
    axis.set_ylabel("ASR (held-out people)")
    axis.set_ylim(0, 1)
    percent_axis(axis)
    axis.legend(fontsize="small", frameon=False)
    path = save(figure, figures / "persistence.png")
    return ["## Persistence after the attackers stop", "",
            ("`rounds_to_half_peak`: rounds after the last attack until the ASR first falls below "
             "half of its peak (empty: it never did within the run)."), "", *markdown(shown),
            f"![ASR after the attackers stop]({path.relative_to(figures.parent).as_posix()})", ""]


def over_rounds_figure(runs: dict, table: pd.DataFrame, figures: Path) -> list[str]:
    chosen = table[(table["attackers"] == 0) | np.isclose(table["poison_rate"], 0.1)]
    chosen = chosen[chosen["last_attack_round"].isna()]
    figure = new_figure(11.0, 3.6)
    ax_asr, ax_f1 = figure.subplots(1, 2, sharex=True)
    palette = colormaps["tab20"].colors
    for index, name in enumerate(chosen["run"]):
        rounds = runs[name].rounds.sort_values("round")
        style = {"marker": "o", "markersize": 3, "label": name,
                 "color": palette[index % len(palette)]}
        if "asr" in rounds and rounds["asr"].notna().any():
            ax_asr.plot(rounds["round"], rounds["asr"], **style)
        ax_f1.plot(rounds["round"], rounds["eval_macro_f1"], **style)
    ax_asr.set(title="attack success rate (held-out people)", xlabel="round", ylim=(0, 1))
    ax_f1.set(title="clean macro-F1 (held-out people)", xlabel="round", ylim=(0, 1))
    for axis in (ax_asr, ax_f1):
        percent_axis(axis)
    ax_f1.legend(fontsize="x-small", frameon=False, loc="center left", bbox_to_anchor=(1, 0.5))
    path = save(figure, figures / "asr_f1_over_rounds.png")
    return ["## Over rounds (10 % poisoning, and the run without attacker)", "",
            f"![ASR and macro-F1 over rounds]({path.relative_to(figures.parent).as_posix()})", ""]


def claim_section(table: pd.DataFrame, seeds: pd.DataFrame) -> list[str]:
    at10 = table[(table["attackers"] > 0) & np.isclose(table["poison_rate"], 0.1)
                 & table["last_attack_round"].isna()]
    if at10.empty:
        return []
    lines = ["## Against the seed paper's claim", "",
             (f"IMU-DM-CLIP reports {SEED_CLAIM}. Measured here at 10 % poisoning (ASR in the last "
             "round; macro-F1 cost against the run without attacker):"), ""]
    for _, row in at10.sort_values(["trigger", "mode", "attackers"]).iterrows():
        verdict = "meets" if row["final_asr"] > 0.8 else "misses"
        spread = ""
        same = seeds[(seeds[SETTING] == row[SETTING]).all(axis=1)] if len(seeds) else seeds
        if len(same) and same["seed"].nunique() > 1:
            spread = (f" (seeds {', '.join(map(str, sorted(same['seed'])))}: ASR "
                      f"{same['final_asr'].mean():.2f} +- {same['final_asr'].std():.2f}, F1 cost "
                      f"{same['f1_cost'].mean():.3f} +- {same['f1_cost'].std():.3f})")
        lines.append(f"- {row['trigger']}, {row['mode']}, {row['attackers']} attacker(s): ASR "
                     f"{row['final_asr']:.3f} ({verdict} > 0.8), F1 cost {fmt(row['f1_cost'])}"
                     + spread)
    return lines + [""]


def seeds_section(seeds: pd.DataFrame, primary: int, figures: Path) -> list[str]:
    """Settings run with several seeds: mean, standard deviation and range over the seeds."""
    if seeds.empty:
        return []
    columns = ["final_asr", "mean_asr_attack_rounds", "asr_rounds_with_attacker",
               "final_macro_f1", "f1_cost"]
    groups = seeds.groupby(SETTING, dropna=False)
    rows = []
    for key, part in groups:
        row = dict(zip(SETTING, key, strict=True))
        row["seeds"] = ", ".join(map(str, sorted(part["seed"])))
        for column in columns:
            values = part[column].dropna()
            row[column] = (f"{values.mean():.3f} +- {values.std():.3f} "
                           f"[{values.min():.3f}, {values.max():.3f}]" if len(values) else "")
        rows.append(row)
    frame = pd.DataFrame(rows).set_index(SETTING)
    frame.index.name = " / ".join(SETTING)
    figure = new_figure(8.5, 3.4)
    axis = figure.subplots()
    labels = []
    for position, (key, part) in enumerate(groups):
        setting = dict(zip(SETTING, key, strict=True))
        labels.append("no attacker" if not setting["attackers"] else
                      f"{setting['trigger']}, {setting['mode']}\n{setting['attackers']} "
                      f"attacker(s), {setting['poison_rate']:.0%}")
        first = position == 0
        at = np.full(len(part), position)
        axis.scatter(at - 0.08, part["final_asr"], color="tab:red", zorder=3,
                     label="ASR, last round" if first else None)
        axis.scatter(at + 0.08, part["asr_rounds_with_attacker"], facecolors="none",
                     edgecolors="tab:red", zorder=3,
                     label="ASR after rounds with an attacker (mean)" if first else None)
        axis.scatter(at, part["f1_cost"], marker="x", color="tab:blue",
                     label="macro-F1 cost" if first else None)
    axis.set_xticks(range(len(labels)), labels, fontsize="x-small")
    axis.axhline(0.8, color="grey", linestyle=":", label="seed paper's ASR (> 80 %)")
    axis.set_ylim(-0.1, 1)
    axis.set_ylabel("one point per seed")
    axis.legend(fontsize="x-small", frameon=False, loc="center left", bbox_to_anchor=(1, 0.5))
    path = save(figure, figures / "seeds.png")
    return ["## Seeds", "",
            ("Settings run with more than one seed (the seed fixes the clients of each round, the "
             "batches, the poisoned windows and a generated trigger's training; the starting "
             "checkpoint is the same). Mean +- standard deviation [min, max] over the seeds; "
             "every F1 cost is against the run without attacker of the same seed. The other "
             f"sections show seed {primary} only."), "", *markdown(frame),
            f"![ASR and F1 cost per seed]({path.relative_to(figures.parent).as_posix()})", ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", type=Path, nargs="+", help="sweep folders or run directories")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    runs = {}
    for folder in args.sweeps:
        for meta in sorted(folder.rglob("meta.json")):
            run = load_run(meta.parent)
            if run.meta.get("status") != "finished":
                print(f"skipping {meta.parent}: status {run.meta.get('status')}", file=sys.stderr)
                continue
            runs[meta.parent.name] = run
    if not runs:
        parser.error("no finished run found")
    table = pd.DataFrame([summarise(run) for run in runs.values()])
    for column in ("last_attack_round", "mean_asr_attack_rounds", "norm_ratio",
                   "attacker_cosine", "honest_cosine", "train_time_ratio",
                   "asr_rounds_with_attacker", "asr_rounds_without"):
        if column not in table:
            table[column] = np.nan
    # Every F1 cost is against the run without attacker of the same seed.
    clean_f1 = table[table["attackers"] == 0].groupby("seed")["final_macro_f1"].first()
    table["f1_cost"] = table["seed"].map(clean_f1) - table["final_macro_f1"]
    # The sections show the primary seed (the one every sweep ran); settings run with several
    # seeds get their own section.
    primary = int(table["seed"].mode().min())
    attacking_to_the_end = table["last_attack_round"].isna()
    several = table[attacking_to_the_end].groupby(SETTING, dropna=False)["seed"].transform(
        "nunique") > 1
    seeds = table[attacking_to_the_end][several]
    every_seed, table = table, table[table["seed"] == primary].copy()
    clean = table[table["attackers"] == 0]
    reference = float(clean["final_macro_f1"].iloc[0]) if len(clean) else np.nan
    figures = args.out.resolve().parent / "figures"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    every_seed.to_csv(args.out.with_suffix(".csv"), index=False)
    stealth_rows = []
    for trigger, part in table[table["attackers"] > 0].groupby("trigger"):
        try:
            stealth_rows.append(stealth(runs[part["run"].iloc[0]]))
        except (FileNotFoundError, ImportError) as exc:
            print(f"stealth of {trigger}: skipped ({exc})", file=sys.stderr)
    lines = ["# Backdoor poisoning of federated HAR: results", "",
             (f"Generated by `python experiments/backdoor/make_results.py "
              f"{' '.join(map(str, args.sweeps))}` from {len(runs)} finished runs (configs: "
              "`hapt_grid.toml`, `hapt_variants.toml`, `hapt_seeds.toml`; per-run numbers in "
              f"`RESULTS.csv`). Seed {primary} unless a section says otherwise."), ""]
    if len(clean):
        lines += [(f"Without an attacker the federation reaches macro-F1 {reference:.3f} in the "
                  "last round on the held-out people; every F1 cost below is against it."), ""]
    lines += claim_section(table, seeds)
    lines += seeds_section(seeds, primary, figures)
    lines += rate_section(table, figures)
    lines += comparison_section(table)
    lines += persistence_section(runs, table, figures)
    lines += over_rounds_figure(runs, table, figures)
    if stealth_rows:
        frame = pd.DataFrame(stealth_rows).set_index("trigger")
        lines += ["## Stealth of the poisoned windows", "",
                  (f"On {STEALTH_WINDOWS} windows of the first attacker: `trigger_norm_ratio` = "
                   "||apply(x) - x|| / ||x|| (test-time trigger); `spectral_distance_db`: mean "
                   "log-spectrum distance of poisoned windows to clean windows of the same source "
                   "class; `detector_auroc_*`: a logistic regression on log power spectra and "
                   "per-channel mean and std separating poisoned (training-time) or triggered "
                   "(test-time) windows from clean ones, on a held-out half (0.5 = invisible, "
                   "1 = trivially detected)."),
                  "", *markdown(frame)]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(table.round(3).to_string())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
