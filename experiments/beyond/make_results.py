"""Write experiments/beyond/RESULTS.md from finished run directories of the beyond sweeps.

    python experiments/beyond/make_results.py RUN_OR_FOLDER [...] --out experiments/beyond/RESULTS.md

Every run is classified by its config.toml:
- ``server.secure_aggregation = true``: cohort attacks (rows with partition -1) per cohort size K,
  and disaggregation of the per-round cohort histograms into per-client label distributions with
  the public participation lists (``updates.parquet``);
- ``client.sampler = "sequential"``: activity timelines per client (attacks.timeline), scored
  against the recording, with the decoders fed the true counts as a reference;
- otherwise: per-update leakage metrics by attack and local steps S.
All numbers come from the run directories; nothing here is typed in by hand.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from attacks.disaggregation import disaggregate
from attacks.timeline import greedy_timeline, transition_prior, viterbi_timeline
from fl_har import metrics
from fl_har.config import from_dict
from fl_har.federation import windows_for
from fl_har.results.readers import load_run


def find_runs(paths: list[str]) -> list:
    runs = []
    for path in paths:
        for meta in sorted(Path(path).rglob("meta.json")):
            try:
                tables = load_run(meta.parent)
            except Exception as exc:  # noqa: BLE001 -- report and skip unreadable folders
                print(f"skipping {meta.parent}: {exc}", file=sys.stderr)
                continue
            if tables.meta.get("status") == "finished":
                runs.append(tables)
            else:
                print(f"skipping {meta.parent}: status {tables.meta.get('status')}",
                      file=sys.stderr)
    return runs


def model_label(config: dict) -> str:
    init = config["model"]["init"]
    return f"{config['model']['name']} ({'untrained' if init == 'untrained' else 'trained'})"


def fmt(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"


def attack_section(runs: list) -> list[str]:
    groups: dict[tuple, list[pd.DataFrame]] = defaultdict(list)
    for run in runs:
        c = run.config
        groups[(model_label(c), int(c["client"]["batch_size"]))].append(
            run.attacks.assign(S=int(c["client"]["local_steps"])))
    lines = ["## Attacks on individual updates (RLU vs LLBG vs iLRG vs EBI)", ""]
    if not groups:
        return lines + ["No finished run of this kind.", ""]
    for (model, batch), frames in sorted(groups.items()):
        table = pd.concat(frames)
        table = table[table["error"] == ""]
        steps = sorted(table["S"].unique())
        lines += [(f"{model}, N = {batch} windows per update; mean over updates "
                  f"(updates per cell: {int(table.groupby(['attack', 'S']).size().min())})."), ""]
        for metric in ("ln_acc", "count_acc", "le_acc"):
            label = metrics.METRIC_LABELS[metric]
            lines.append(f"| {label} | " + " | ".join(f"S = {s}" for s in steps) + " |")
            lines.append("|---|" + "---|" * len(steps))
            for attack, part in table.groupby("attack"):
                values = [part[part["S"] == s][metric].mean() for s in steps]
                lines.append(f"| {attack} | " + " | ".join(fmt(v) for v in values) + " |")
            lines.append("")
    return lines


def label_distribution(config, subject: int, num_classes: int) -> np.ndarray:
    y = windows_for(config, subject).y
    counts = np.bincount(y, minlength=num_classes).astype(float)
    return counts / counts.sum()


def secure_section(runs: list) -> list[str]:
    lines = ["## Secure aggregation: attacking cohort aggregates, then disaggregating", ""]
    if not runs:
        return lines + ["No finished run of this kind.", ""]
    cohort_rows, disagg_rows = [], []
    for run in runs:
        c = run.config
        config = from_dict(c)
        k = int(c["run"]["clients_per_round"]) or None
        model = model_label(c)
        table = run.attacks[(run.attacks["partition"] == -1) & (run.attacks["error"] == "")]
        for attack, part in table.groupby("attack"):
            cohort_rows.append({"model": model, "K": k, "attack": attack, "ln_acc": part["ln_acc"].mean(),
                                "count_acc": part["count_acc"].mean(), "updates": len(part)})
        updates = run.updates[run.updates["status"] == "ok"]
        partitions = sorted(updates["partition"].unique())
        subjects = dict(zip(updates["partition"], updates["subject"]))
        rounds = sorted(table["round"].unique())
        if not rounds:
            continue
        participation = np.zeros((len(rounds), len(partitions)))
        for i, r in enumerate(rounds):
            members = updates[updates["round"] == r]["partition"]
            participation[i, [partitions.index(p) for p in members]] = 1
        num_classes = len(table["true_counts"].iloc[0])
        truth = np.stack([label_distribution(config, int(subjects[p]), num_classes)
                          for p in partitions])
        sources = {"true cohort counts (oracle)": "true_counts"}
        sources.update({a: "pred_counts" for a in sorted(table["attack"].unique())})
        for source, column in sources.items():
            attack = table["attack"].iloc[0] if column == "true_counts" else source
            rows = table[table["attack"] == attack].set_index("round").loc[rounds]
            histograms = np.stack([np.asarray(v, dtype=float) for v in rows[column]])
            result = disaggregate(participation, histograms)
            ok = result.identifiable & (result.estimates.sum(axis=1) > 0)
            overlap = []
            for j in np.flatnonzero(ok):
                estimate = result.estimates[j] / result.estimates[j].sum()
                overlap.append(np.minimum(estimate, truth[j]).sum())
            disagg_rows.append({"model": model, "K": k, "source": source, "clients": len(partitions),
                                "rounds": len(rounds), "rank": result.rank,
                                "identifiable": int(result.identifiable.sum()),
                                "overlap": float(np.mean(overlap)) if overlap else float("nan")})
    frame = pd.DataFrame(cohort_rows)
    ks = sorted(frame["K"].dropna().unique())
    lines += ["Leakage of the cohort histogram (N = K x batch size), mean over rounds:", "",
              "| model | attack | " + " | ".join(f"K = {int(k)} LnAcc / exact" for k in ks)
              + " |", "|---|---|" + "---|" * len(ks)]
    for (model, attack), part in frame.groupby(["model", "attack"]):
        cells = []
        for k in ks:
            row = part[part["K"] == k]
            cells.append("n/a" if row.empty else
                         f"{fmt(row['ln_acc'].mean())} / {fmt(row['count_acc'].mean())}")
        lines.append(f"| {model} | {attack} | " + " | ".join(cells) + " |")
    lines += ["", ("Disaggregation (non-negative least squares per class over the rounds, public "
              "participation lists): overlap = mean over identifiable clients of "
              "sum_c min(p_hat[c], p[c]) between the recovered label distribution and the "
              "client's true label distribution over its whole recording (the per-round "
              "histograms vary around it: shuffled batches)."), "",
              "| model | K | source | clients | rounds | rank | identifiable | overlap |",
              "|---|---|---|---|---|---|---|---|"]
    for row in sorted(disagg_rows, key=lambda r: (r["model"], r["K"] or 0, r["source"])):
        lines.append(f"| {row['model']} | {row['K']} | {row['source']} | {row['clients']} | {row['rounds']} | "
                     f"{row['rank']} | {row['identifiable']} | {fmt(row['overlap'])} |")
    return lines + [""]


def timeline_section(runs: list) -> list[str]:
    lines = ["## Activity timelines under sequential sampling", ""]
    if not runs:
        return lines + ["No finished run of this kind.", ""]
    rows = []
    for run in runs:
        c = run.config
        config = from_dict(c)
        batch = int(c["client"]["batch_size"])
        model = model_label(c)
        table = run.attacks[(run.attacks["partition"] >= 0) & (run.attacks["error"] == "")]
        if table.empty:
            continue
        num_classes = len(table["true_counts"].iloc[0])
        server = [int(s) for s in c["data"]["server_subjects"]]
        prior = transition_prior([windows_for(config, s).y for s in server], num_classes) \
            if server else None
        for (subject, attack), part in table.groupby(["subject", "attack"]):
            part = part.sort_values("round")
            y = windows_for(config, int(subject)).y
            rounds = part["round"].to_numpy()
            if rounds.max() * batch > len(y) or not np.array_equal(rounds, np.arange(1, len(rounds) + 1)):
                continue  # wrapped around the recording or missing rounds
            truth = y[: len(rounds) * batch]
            true_counts = np.stack([np.asarray(v) for v in part["true_counts"]])
            if not np.array_equal(true_counts, np.stack([
                    np.bincount(truth[i * batch:(i + 1) * batch], minlength=num_classes)
                    for i in range(len(rounds))])):
                continue  # not the recording order (should not happen with "sequential")
            pred_counts = np.stack([np.asarray(v) for v in part["pred_counts"]])
            for source, counts in (("attack", pred_counts), ("true counts", true_counts)):
                if source == "true counts" and attack != min(table["attack"].unique()):
                    continue
                for decoder, decode in (("greedy", greedy_timeline),
                                        ("viterbi", lambda k, p=prior: viterbi_timeline(k, p))):
                    predicted = decode(counts)
                    rows.append({
                        "model": model, "N": batch, "counts": attack if source == "attack" else "true (oracle)",
                        "decoder": decoder,
                        "window_accuracy": metrics.window_accuracy(truth, predicted),
                        "segment_precision": metrics.segment_precision(truth, predicted),
                        "segment_recall": metrics.segment_recall(truth, predicted),
                        "edit_distance": metrics.edit_distance(truth, predicted)
                        / len(metrics.segments(truth)),
                    })
    if not rows:
        return lines + ["No usable client timeline.", ""]
    frame = pd.DataFrame(rows)
    lines += [("Mean over clients; edit distance divided by the number of true segments. The "
              "Viterbi prior is estimated from the server's own subjects' recordings."), "",
              ("| model | N | counts | decoder | window acc. | segment precision | "
               "segment recall | edit distance / segments |"), "|---|---|---|---|---|---|---|---|"]
    for (model, batch, counts, decoder), part in frame.groupby(["model", "N", "counts",
                                                                 "decoder"]):
        lines.append(f"| {model} | {batch} | {counts} | {decoder} | "
                     f"{fmt(part['window_accuracy'].mean())} | "
                     f"{fmt(part['segment_precision'].mean())} | "
                     f"{fmt(part['segment_recall'].mean())} | "
                     f"{fmt(part['edit_distance'].mean())} |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="run directories or folders containing them")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "beyond" / "RESULTS.md"))
    parser.add_argument("--note", default="", help="a sentence on how the runs were made")
    args = parser.parse_args()
    runs = find_runs(args.paths)
    secure = [r for r in runs if r.config.get("server", {}).get("secure_aggregation")]
    timeline = [r for r in runs if r not in secure
                and r.config["client"]["sampler"] == "sequential"]
    plain = [r for r in runs if r not in secure and r not in timeline]
    datasets = sorted({r.config["data"]["dataset"] for r in runs})
    lines = ["# Beyond the paper's attacks: results", "",
             ("Generated by `experiments/beyond/make_results.py` from "
             f"{len(runs)} finished run(s) (datasets: {', '.join(datasets) or 'none'})."), ""]
    if args.note:
        lines += [args.note, ""]
    lines += attack_section(plain) + secure_section(secure) + timeline_section(timeline)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
