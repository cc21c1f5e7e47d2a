"""Write experiments/beyond/RESULTS.md and its figures from finished runs of the beyond sweeps.

    python experiments/beyond/make_results.py --attacks results/beyond-attacks \
        --secure results/beyond-secure --timeline results/beyond-timeline

Each option takes run directories or folders containing them (repeatable):

- ``--attacks``: per-update leakage by attack and local training (S steps over N windows, or E
  local epochs), untrained vs trained model; ClassAcc per client as in the paper.
- ``--secure``: runs with ``server.secure_aggregation = true``. The cohort attacks (rows with
  partition -1) per cohort size K, then disaggregation of the per-round cohort histograms into
  per-client histograms with the public participation lists (``updates.parquet``) after R observed
  rounds. A client's recovered histogram is scored by ClassAcc and LnAcc against its true counts
  in the rounds it took part in; the server never records those in this mode, so they are redrawn
  here from the client's seeded sampler (the same indices it trained on).
- ``--timeline``: each client's per-round reconstructions strung into a timeline (greedy and
  Viterbi decoders of :mod:`attacks.timeline`), scored against the recording per sampler, next to
  the decoders fed the true batch counts; one figure per client of a sequential run.

All numbers come from the run directories; nothing here is typed in by hand.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from attacks.disaggregation import disaggregate
from attacks.timeline import greedy_timeline, transition_prior, viterbi_timeline
from fl_har import metrics
from fl_har.config import from_dict
from fl_har.federation import Participant, dataset_for, windows_for
from fl_har.report.style import attack_colour, new_figure, percent_axis, save
from fl_har.results.readers import load_run

HERE = Path(__file__).resolve().parent
#: Observed-round counts at which the disaggregation is scored (those a run has).
OBSERVED_ROUNDS = (10, 20, 25, 30, 40)
ORACLE = "true counts (oracle)"
DECODERS = {"greedy": greedy_timeline, "viterbi": viterbi_timeline}


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


def fmt(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(row) + " |" for row in rows] + [""])


# ---------------------------------------------------------------------------------- attacks


def subjects_label(subjects: list[int]) -> str:
    """``[21, 22, 23]`` -> ``"21-23"`` (runs of consecutive subjects joined)."""
    parts, ordered = [], sorted(int(s) for s in subjects)
    for subject in ordered:
        if parts and subject == parts[-1][1] + 1:
            parts[-1][1] = subject
        else:
            parts.append([subject, subject])
    return ",".join(f"{a}-{b}" if b > a else str(a) for a, b in parts) or "none"


def training_key(config: dict) -> tuple[int, int]:
    """(E, S) sort key of a run's local training: E = 0 for the paper's one-batch rounds."""
    client = config["client"]
    return int(client.get("local_epochs", 0)), int(client["local_steps"])


def client_class_acc(table: pd.DataFrame) -> pd.Series:
    """ClassAcc per (attack, subject) over the client's attacked updates."""
    return table.groupby(["attack", "subject"]).apply(
        lambda part: metrics.class_acc(np.stack(part["true_counts"].to_numpy()),
                                       np.stack(part["pred_counts"].to_numpy())))


def attack_section(runs: list, figures: Path) -> list[str]:
    lines = ["## Attacks on individual updates (RLU vs LLBG vs iLRG vs EBI)", ""]
    if not runs:
        return lines + ["No finished run of this kind.", ""]
    groups: dict[str, dict[tuple[int, int], pd.DataFrame]] = defaultdict(dict)
    auxiliary = {subjects_label(run.config["data"]["server_subjects"]) for run in runs}
    for run in runs:
        table = run.attacks[(run.attacks["error"] == "") & (run.attacks["partition"] >= 0)]
        group = model_label(run.config)
        if len(auxiliary) > 1:  # runs that differ in the server's auxiliary data
            group += f", server holds subjects {subjects_label(run.config['data']['server_subjects'])}"
        if training_key(run.config) in groups[group]:
            raise SystemExit(f"--attacks: two runs of {group} with the same local training")
        groups[group][training_key(run.config)] = table
    lines += [("N = 100 windows per update in S local SGD steps (B = N / S), or E local epochs over "
               "all the client's windows in mini-batches of 100 (S and N then vary by client: the "
               "column shows the mean S). Leakage per update averaged over updates; ClassAcc per "
               "client (pooled over its updates) averaged over clients."), ""]
    panels = []
    for model, cells in sorted(groups.items(), key=lambda g: ("(trained)" in g[0], g[0])):
        keys = sorted(cells)
        labels = []
        for epochs, steps in keys:
            if epochs:
                mean_steps = cells[(epochs, steps)]["local_steps"].mean()
                labels.append(f"E = {epochs} (S ~ {mean_steps:.0f})")
            else:
                labels.append(f"S = {steps}")
        updates = min(len(part) for cell in cells.values() for _, part in cell.groupby("attack"))
        lines += [f"**{model}** (at least {updates} updates per cell):", ""]
        per_metric: dict[str, dict[str, list[float]]] = {}
        for metric in ("ln_acc", "count_acc", "le_acc", "class_acc"):
            values: dict[str, list[float]] = defaultdict(list)
            for key in keys:
                table = cells[key]
                if metric == "class_acc":
                    by_attack = client_class_acc(table).groupby(level="attack").mean()
                else:
                    by_attack = table.groupby("attack")[metric].mean()
                for attack in sorted(table["attack"].unique()):
                    values[attack].append(float(by_attack.get(attack, np.nan)))
            per_metric[metric] = values
            label = metrics.METRIC_LABELS.get(metric, "ClassAcc")
            lines += markdown_table([label, *labels],
                                    [[attack, *map(fmt, vals)] for attack, vals in values.items()])
        panels.append((model, labels, per_metric))
    columns = min(len(panels), 2)
    figure = new_figure(5.0 * columns, 3.6 * -(-len(panels) // columns))
    figure.set_layout_engine("constrained")
    axes = figure.subplots(-(-len(panels) // columns), columns, squeeze=False).ravel()
    for axis in axes[len(panels):]:
        axis.set_visible(False)
    for axis, (model, labels, per_metric) in zip(axes, panels, strict=False):
        for attack, values in per_metric["class_acc"].items():
            axis.plot(labels, values, marker="o", color=attack_colour(attack), label=attack)
        axis.set_title(model, fontsize="small")
        axis.set_ylabel("ClassAcc (mean over clients)")
        axis.set_ylim(0, 1.02)
        percent_axis(axis)
        axis.tick_params(axis="x", labelrotation=20)
    axes[0].legend(fontsize="small", frameon=False)
    path = save(figure, figures / "attacks_class_acc.png")
    lines += [f"![ClassAcc by attack and local training]({path.relative_to(figures.parent).as_posix()})", ""]
    return lines


# ----------------------------------------------------------------------- secure aggregation


def true_round_counts(config, subject: int, rounds: list[int], num_classes: int) -> np.ndarray:
    """[len(rounds), C] the client's true label counts of those rounds (its seeded sampler)."""
    participant = Participant(config, subject)
    return np.stack([np.bincount(participant.windows.y[participant.batch_index(r)],
                                 minlength=num_classes) for r in rounds])


def disaggregation_rows(run) -> list[dict]:
    """Disaggregate the cohort histograms of the first R rounds, for every source and R."""
    c = run.config
    config = from_dict(c)
    model, k = model_label(c), int(c["run"]["clients_per_round"])
    table = run.attacks[(run.attacks["partition"] == -1) & (run.attacks["error"] == "")]
    updates = run.updates[run.updates["status"] == "ok"]
    partitions = sorted(updates["partition"].unique())
    subjects = dict(zip(updates["partition"], updates["subject"], strict=False))
    rounds = sorted(set(table["round"]) & set(updates["round"]))
    if not rounds:
        return []
    participation = np.zeros((len(rounds), len(partitions)))
    for i, r in enumerate(rounds):
        members = updates[updates["round"] == r]["partition"]
        participation[i, [partitions.index(p) for p in members]] = 1
    num_classes = len(table["true_counts"].iloc[0])
    truth = {p: true_round_counts(config, int(subjects[p]), rounds, num_classes)
             for p in partitions}
    sources = {ORACLE: None, **{a: a for a in sorted(table["attack"].unique())}}
    rows = []
    for source, attack in sources.items():
        chosen = table[table["attack"] == (attack or table["attack"].iloc[0])]
        chosen = chosen.set_index("round").loc[rounds]
        column = "true_counts" if attack is None else "pred_counts"
        histograms = np.stack([np.asarray(v, dtype=float) for v in chosen[column]])
        for observed in [r for r in OBSERVED_ROUNDS if r <= len(rounds)]:
            seen = participation[:observed]
            result = disaggregate(seen, histograms[:observed])
            class_accs, ln_accs = [], []
            for j, partition in enumerate(partitions):
                joined = np.flatnonzero(seen[:, j])
                if not result.identifiable[j] or joined.size == 0:
                    continue
                true = truth[partition][joined]
                predicted = np.tile(np.round(result.estimates[j]).astype(np.int64),
                                    (joined.size, 1))
                class_accs.append(metrics.class_acc(true, predicted))
                ln_accs.append(np.minimum(true, predicted).sum() / true.sum())
            rows.append({"model": model, "K": k, "source": source, "R": observed,
                         "clients": len(partitions), "rank": result.rank,
                         "identifiable": int(result.identifiable.sum()),
                         "class_acc": float(np.mean(class_accs)) if class_accs else np.nan,
                         "ln_acc": float(np.mean(ln_accs)) if ln_accs else np.nan})
    return rows


def secure_section(runs: list, figures: Path) -> list[str]:
    lines = ["## Secure aggregation: attacking cohort aggregates, then disaggregating", ""]
    if not runs:
        return lines + ["No finished run of this kind.", ""]
    cohort_rows, disagg_rows = [], []
    for run in runs:
        c = run.config
        k = int(c["run"]["clients_per_round"])
        table = run.attacks[(run.attacks["partition"] == -1) & (run.attacks["error"] == "")]
        for attack, part in table.groupby("attack"):
            cohort_rows.append({"model": model_label(c), "K": k, "attack": attack,
                                "ln_acc": part["ln_acc"].mean(),
                                "count_acc": part["count_acc"].mean()})
        disagg_rows += disaggregation_rows(run)
    cohort = pd.DataFrame(cohort_rows)
    ks = sorted(cohort["K"].unique())
    lines += [("Leakage of each round's cohort histogram (N = K x 100 windows; the server sees only "
              "the cohort's summed update), mean over rounds: LnAcc / exact-count accuracy."), ""]
    rows = []
    for (model, attack), part in cohort.groupby(["model", "attack"]):
        cells = []
        for k in ks:
            row = part[part["K"] == k]
            cells.append("n/a" if row.empty else
                         f"{fmt(row['ln_acc'].mean())} / {fmt(row['count_acc'].mean())}")
        rows.append([model, attack, *cells])
    lines += markdown_table(["model", "attack", *(f"K = {k}" for k in ks)], rows)
    frame = pd.DataFrame(disagg_rows)
    if frame.empty:
        return lines
    lines += [("Disaggregation (Lam et al. 2021): non-negative least squares per class over the "
               "first R rounds, with the public participation lists. Per identifiable client, "
               "ClassAcc and LnAcc of its recovered per-round histogram against its true counts in "
               "the rounds it joined (its batches differ from round to round: shuffled sampling, "
               "so even exact cohort counts do not give 1.0); mean over identifiable clients."), ""]
    observed = sorted(frame["R"].unique())
    rows = []
    for (model, k, source), part in frame.groupby(["model", "K", "source"]):
        part = part.set_index("R")
        rows.append([model, str(k), source, *(
            f"{fmt(part.loc[r, 'class_acc'])} / {fmt(part.loc[r, 'ln_acc'])}"
            if r in part.index else "" for r in observed)])
    lines += markdown_table(["model", "K", "cohort counts from",
                             *(f"R = {r}: ClassAcc / LnAcc" for r in observed)], rows)
    identifiable = frame.groupby(["K", "R"])["identifiable"].first().unstack("R")
    clients = int(frame["clients"].max())
    lines += [f"Identifiable clients (of {clients}) after R rounds: " + "; ".join(
        f"K = {k}: " + ", ".join(f"{int(identifiable.loc[k, r])} (R = {r})" for r in observed
                                 if r in identifiable.columns)
        for k in identifiable.index) + ". With fewer rounds than clients the participation "
        "matrix cannot have full column rank, so nobody is identifiable.", ""]
    models = sorted(frame["model"].unique())
    figure = new_figure(4.2 * len(ks), 3.3 * len(models))
    figure.set_layout_engine("constrained")
    axes = figure.subplots(len(models), len(ks), squeeze=False, sharey=True)
    for i, model in enumerate(models):
        for j, k in enumerate(ks):
            axis = axes[i][j]
            part = frame[(frame["model"] == model) & (frame["K"] == k)]
            for source, series in part.groupby("source"):
                oracle = source == ORACLE
                axis.plot(series["R"], series["class_acc"], marker="o",
                          color="black" if oracle else attack_colour(source),
                          linestyle="--" if oracle else "-", label=source)
            axis.set_title(f"{model}, K = {k}", fontsize="small")
            if i == len(models) - 1:
                axis.set_xlabel("rounds observed")
            axis.set_ylim(0, 1.02)
            percent_axis(axis)
        axes[i][0].set_ylabel("per-client ClassAcc")
    axes[0][-1].legend(fontsize="x-small", frameon=False)
    path = save(figure, figures / "disaggregation.png")
    lines += [(f"![Disaggregated per-client ClassAcc against rounds observed]"
              f"({path.relative_to(figures.parent).as_posix()})"), ""]
    return lines


# ------------------------------------------------------------------------------- timelines


def timeline_rows(run) -> tuple[list[dict], dict[int, list[tuple[str, np.ndarray]]]]:
    """Scores of every client's decoded timelines, and the strips of its figure
    (``{subject: [(label, labels per window), ...]}``, the Viterbi decodings)."""
    c = run.config
    config = from_dict(c)
    batch, sampler, model = int(c["client"]["batch_size"]), c["client"]["sampler"], model_label(c)
    table = run.attacks[(run.attacks["partition"] >= 0) & (run.attacks["error"] == "")]
    if table.empty:
        return [], {}
    num_classes = dataset_for(config).num_classes
    server = [int(s) for s in c["data"]["server_subjects"]]
    prior = transition_prior([windows_for(config, s).y for s in server], num_classes) \
        if server else None
    decoders = {"greedy": greedy_timeline,
                "viterbi": lambda counts: viterbi_timeline(counts, prior)}
    rows, strips = [], {}
    for subject, part in table.groupby("subject"):
        y = windows_for(config, int(subject)).y
        first = part[part["attack"] == part["attack"].iloc[0]].sort_values("round")
        rounds = first["round"].to_numpy()
        if rounds.max() * batch > len(y) or not np.array_equal(rounds,
                                                               np.arange(1, len(rounds) + 1)):
            continue  # wrapped around the recording or missing rounds
        truth = y[: len(rounds) * batch]
        sources = {ORACLE: np.stack([np.asarray(v) for v in first["true_counts"]])}
        for attack, rows_of in part.groupby("attack"):
            rows_of = rows_of.sort_values("round")
            sources[attack] = np.stack([np.asarray(v) for v in rows_of["pred_counts"]])
        strips[int(subject)] = [("recording", truth)]
        for source, counts in sources.items():
            for name, decode in decoders.items():
                predicted = decode(counts)
                if name == "viterbi":
                    strips[int(subject)].append((f"N = {batch}: {source}", predicted))
                rows.append({
                    "model": model, "sampler": sampler, "N": batch, "counts": source,
                    "decoder": name, "subject": int(subject),
                    "window_accuracy": metrics.window_accuracy(truth, predicted),
                    "segment_precision": metrics.segment_precision(truth, predicted),
                    "segment_recall": metrics.segment_recall(truth, predicted),
                    "edit_distance": metrics.edit_distance(truth, predicted)
                    / len(metrics.segments(truth)),
                })
    return rows, strips


def draw_timeline(path: Path, title: str, strips: list[tuple[str, np.ndarray]],
                  class_names: tuple[str, ...]) -> Path:
    """One client's recording and its Viterbi reconstructions, one coloured strip each."""
    # NULL (class 0) in light grey, the activities in tab20's colours.
    colours = ListedColormap([(0.85, 0.85, 0.85),
                              *colormaps["tab20"].colors[:len(class_names) - 1]])
    figure = new_figure(9.0, 0.32 * len(strips) + 1.0)
    axis = figure.subplots()
    image = np.stack([labels for _, labels in strips])
    axis.imshow(image, aspect="auto", interpolation="nearest", cmap=colours,
                vmin=-0.5, vmax=len(class_names) - 0.5)
    axis.set_yticks(range(len(strips)), [name for name, _ in strips], fontsize="x-small")
    axis.set_xlabel("window, in recording order")
    axis.set_title(title, fontsize="small")
    present = sorted(set(np.unique(image).tolist()))
    figure.legend([Patch(color=colours(k)) for k in present], [class_names[k] for k in present],
                  loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="x-small",
                  frameon=False)
    return save(figure, path)


def timeline_section(runs: list, figures: Path) -> list[str]:
    lines = ["## Activity timelines", ""]
    if not runs:
        return lines + ["No finished run of this kind.", ""]
    rows, strips = [], defaultdict(dict)
    for run in runs:
        run_rows, run_strips = timeline_rows(run)
        rows += run_rows
        if run.config["client"]["sampler"] == "sequential":
            for subject, subject_strips in run_strips.items():
                strips[model_label(run.config)].setdefault(subject, []).append(subject_strips)
    if not rows:
        return lines + ["No usable client timeline.", ""]
    frame = pd.DataFrame(rows)
    lines += [("Each client's per-round reconstructions strung into one label per window and "
               "scored against the first R x N windows of its recording (mean over the 20 clients; "
               "edit distance divided by the number of true segments). Under sequential sampling "
               "a round's batch is the next N windows; under shuffle and balanced sampling it is "
               "not a time slice, so even the true batch counts give no timeline. The Viterbi "
               "prior is estimated from the server's own subjects' recordings."), ""]
    for model, part in frame.groupby("model"):
        table = []
        for (sampler, batch, counts), cell in part.groupby(["sampler", "N", "counts"]):
            greedy, viterbi = (cell[cell["decoder"] == d] for d in ("greedy", "viterbi"))
            table.append([sampler, str(batch), counts, fmt(greedy["window_accuracy"].mean()),
                          fmt(viterbi["window_accuracy"].mean()),
                          fmt(viterbi["segment_precision"].mean()),
                          fmt(viterbi["segment_recall"].mean()),
                          fmt(viterbi["edit_distance"].mean())])
        lines += [f"**{model}**", ""] + markdown_table(
            ["sampler", "N", "counts from", "window acc. (greedy)", "window acc. (Viterbi)",
             "segment precision", "segment recall", "edit distance / segments"], table)
    viterbi = frame[frame["decoder"] == "viterbi"]
    models = sorted(viterbi["model"].unique(), key=lambda m: m.endswith("(trained)"))
    samplers = ["sequential", "shuffle", "balanced"]
    sources = sorted(viterbi["counts"].unique(), key=lambda s: (s == ORACLE, s))
    figure = new_figure(4.5 * len(models), 3.4)
    figure.set_layout_engine("constrained")
    axes = figure.subplots(1, len(models), squeeze=False, sharey=True)[0]
    for axis, model in zip(axes, models, strict=True):
        part = viterbi[viterbi["model"] == model]
        width = 0.8 / len(sources)
        for i, source in enumerate(sources):
            values = [part[(part["sampler"] == s) & (part["counts"] == source)]
                      ["window_accuracy"].mean() for s in samplers]
            axis.bar(np.arange(len(samplers)) - 0.4 + width * (i + 0.5), values, width,
                     color="black" if source == ORACLE else attack_colour(source), label=source)
        axis.set_xticks(range(len(samplers)), samplers)
        axis.set_title(f"{model} (Viterbi, N = 50 and 100)", fontsize="small")
        axis.set_ylabel("per-window timeline accuracy")
        axis.set_ylim(0, 1)
        percent_axis(axis)
    axes[-1].legend(fontsize="x-small", frameon=False)
    path = save(figure, figures / "timeline_by_sampler.png")
    lines += [f"![Timeline accuracy per sampler]({path.relative_to(figures.parent).as_posix()})", ""]
    # One figure per client, of the trained model when there is one (on the untrained model
    # every attack is exact and its strips repeat the oracle's).
    shown_model = models[-1] if strips else None
    if shown_model in strips:
        class_names = dataset_for(from_dict(runs[0].config)).class_names
        paths = []
        for subject, per_run in sorted(strips[shown_model].items()):
            merged = [per_run[0][0]] + [s for run_strips in per_run for s in run_strips[1:]]
            title = f"HAPT subject {subject}: {shown_model}, sequential sampling (Viterbi)"
            paths.append(draw_timeline(figures / "timelines" / f"subject{subject:02d}.png",
                                       title, merged, class_names))
        folder = paths[0].parent.relative_to(figures.parent).as_posix()
        lines += [(f"True and reconstructed timelines of every client ({shown_model}, all in "
                   f"[{folder}/]({folder}/)); two of them:"), ""]
        lines += [f"![{p.stem}]({p.relative_to(figures.parent).as_posix()})" for p in paths[:2]]
        lines += [""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attacks", nargs="*", default=[], help="runs of attacks.toml")
    parser.add_argument("--secure", nargs="*", default=[], help="runs of secure.toml")
    parser.add_argument("--timeline", nargs="*", default=[], help="runs of timeline.toml")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--note", default="", help="a sentence on how the runs were made")
    args = parser.parse_args()
    if not (args.attacks or args.secure or args.timeline):
        parser.error("give at least one of --attacks, --secure, --timeline")
    figures = Path(args.out).resolve().parent / "figures"
    attack_runs, secure_runs = find_runs(args.attacks), find_runs(args.secure)
    timeline_runs = find_runs(args.timeline)
    for run in secure_runs:
        if not run.config.get("server", {}).get("secure_aggregation"):
            raise SystemExit(f"--secure: {run.run_dir} was not run with server.secure_aggregation")
    runs = attack_runs + secure_runs + timeline_runs
    datasets = sorted({r.config["data"]["dataset"] for r in runs})
    lines = ["# Beyond the paper's attacks: results", "",
             ("Generated by `experiments/beyond/make_results.py` from "
              f"{len(runs)} finished run(s) (datasets: {', '.join(datasets) or 'none'})."), ""]
    if args.note:
        lines += [args.note, ""]
    lines += (attack_section(attack_runs, figures) + secure_section(secure_runs, figures)
              + timeline_section(timeline_runs, figures))
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
