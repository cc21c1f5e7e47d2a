"""``fl-har report``: run directories in, Table 1, figures, findings and Markdown out.

Runs are made with :class:`fl_har.results.RunStore` and hand-made attack rows, so every expected
number is known exactly (3 classes; a client's true counts are [2, 2, 0] in every update unless
stated). One test drives a tiny real simulation (in-process grid, synthetic data) end to end.
"""

from __future__ import annotations

import argparse
import json
import math

import pandas as pd
import pytest

from fl_har.config import load_config, parse_subjects
from fl_har.metrics import le_acc, le_precision, le_recall, ln_acc
from fl_har.report import ReportError, build_report, collect_runs, paper_findings, table1
from fl_har.report.factors import attack_family, base_attack, ldp_setting, run_factors
from fl_har.report.figure_confusion import class_names, pool_confusions
from fl_har.report.paper import paper_table1
from fl_har.results import RunStore
from fl_har_app import report_cmd

PNG_HEADER = b"\x89PNG\r\n\x1a\n"
TRUE = (2, 2, 0)
# Predictions for TRUE and the client's ClassAcc they give (per-class recall, mean over the two
# present classes).
PERFECT, HALF, ZERO, THREE_QUARTERS = (2, 2, 0), (4, 0, 0), (0, 0, 4), (1, 3, 0)
NOISY = (3, 1, 0)  # LnAcc 0.75, LeAcc 1, ClassAcc 0.75


def attack_row(round_number, partition, attack, pred, true=TRUE, subject=None):
    return {
        "round": round_number, "partition": partition,
        "subject": partition + 1 if subject is None else subject,
        "attack": attack, "num_samples": sum(true), "local_steps": 1,
        "true_counts": list(true), "pred_counts": list(pred),
        "ln_acc": ln_acc(true, pred), "le_acc": le_acc(true, pred),
        "le_recall": le_recall(true, pred), "le_precision": le_precision(true, pred),
        "count_acc": 0.0, "attack_seconds": 0.01, "error": "",
    }


def make_run(root, name, predictions, *, sampler="shuffle", model="deepconvlstm",
             init="untrained", steps=1, noise=0.0, clip=0.0, rounds=1, finish="finished",
             seed=0, clients="1-4", round_seconds=2.0, extra=()):
    """A run whose attack ``a`` predicts ``predictions[a][partition]`` in every round."""
    attacks = ",".join(predictions)
    config = load_config(None, [
        f"run.name={name}", f"run.seed={seed}", f"run.rounds={rounds}", "data.dataset=synthetic",
        f"data.clients={clients}", f"model.name={model}", f"model.init={init}",
        f"client.sampler={sampler}", f"client.local_steps={steps}", f"client.ldp_noise={noise}",
        f"client.ldp_clip={clip}", f"attacks.names={attacks}", *extra,
    ])
    store = RunStore.create(root / name, config.to_dict(), seed=seed)
    subjects = parse_subjects(clients, "clients")
    for round_number in range(1, rounds + 1):
        rows = [attack_row(round_number, partition, attack, pred, subject=subjects[partition])
                for attack, preds in predictions.items() for partition, pred in enumerate(preds)]
        store.record_round(round_number, rows,
                           {"round": round_number, "round_seconds": round_seconds}, [], None)
    if finish:
        store.finish(finish)
    return root / name


def sampling_pair(root, *, sequential_leaks_more=True, prefix=""):
    """Two cells: sequential and shuffle, DeepConvLSTM, untrained, llg + ebi, two clients.

    With ``prefix="leakage_har."`` the reference-code attacks, with LDP scope "all" as the
    paper's code (a key that differs from the published runs of the same configuration).
    """
    strong = {f"{prefix}llg": [HALF, ZERO], f"{prefix}ebi": [PERFECT, THREE_QUARTERS]}
    weak = {f"{prefix}llg": [ZERO, ZERO], f"{prefix}ebi": [HALF, HALF]}
    extra = ["client.ldp_scope=all"] if prefix else []
    make_run(root, f"{prefix}seq", strong if sequential_leaks_more else weak,
             sampler="sequential", clients="1-2", extra=extra)
    make_run(root, f"{prefix}shuf", weak if sequential_leaks_more else strong, sampler="shuffle",
             clients="1-2", extra=extra)


def value(table, **where):
    rows = table
    for key, wanted in where.items():
        rows = rows[rows[key] == wanted]
    assert len(rows) == 1, where
    return rows.iloc[0]


def findings_by(findings, number, variant="published"):
    return next(f for f in findings if f.number == number and f.variant == variant)


# -- factors -------------------------------------------------------------------------------------


def test_factors_come_from_the_config_not_the_folder(tmp_path):
    path = make_run(tmp_path, "named-sequential-but-is-balanced", {"ebi": [PERFECT]},
                    sampler="balanced", init="pretrained.pt", steps=2, noise=0.1, clip=0.5)
    collection = collect_runs([path])
    factors = collection.runs[0].factors
    assert (factors.sampler, factors.state, factors.local_steps, factors.ldp) == (
        "balanced", "trained", 2, "noise+clip")
    assert [ldp_setting(0, 0), ldp_setting(0.1, 0), ldp_setting(0, 0.1)] == [
        "none", "noise", "clip"]
    assert base_attack("leakage_har.llbg") == "llbg"
    assert [attack_family(a) for a in ("llg_star", "llg_plus", "idlg", "llbg_trained")] == [
        "weight", "weight", "bias", "bias"]
    with pytest.raises(ReportError, match=r"client\.batch_size = 'many'"):
        run_factors({"client": {"batch_size": "many"}}, "x/config.toml")


# -- Table 1 -------------------------------------------------------------------------------------


def test_table1_values_from_known_rows(tmp_path):
    sampling_pair(tmp_path)
    table = table1(collect_runs([tmp_path]).clients)
    assert list(table.columns) == ["variant", "dataset", "state", "sampler", "family",
                                   "class_acc", "n_clients", "n_runs", "attacks", "models"]
    assert len(table) == 2 * 3  # two samplers x (weight, bias, avg)
    expected = {("sequential", "weight"): (0.5 + 0.0) / 2, ("sequential", "bias"): 0.875,
                ("sequential", "avg"): (0.25 + 0.875) / 2, ("shuffle", "weight"): 0.0,
                ("shuffle", "bias"): 0.5, ("shuffle", "avg"): 0.25}
    for (sampler, family), acc in expected.items():
        row = value(table, sampler=sampler, family=family)
        assert row["class_acc"] == pytest.approx(acc)
        assert (row["n_clients"], row["n_runs"], row["state"]) == (2, 1, "untrained")
    assert value(table, sampler="shuffle", family="avg")["attacks"] == "ebi;llg"


def test_table1_averages_models_equally_and_pools_folds(tmp_path):
    # DeepConvLSTM: two folds of a trained configuration, 1 + 3 clients -> pooled over 4 clients.
    make_run(tmp_path, "dcl-fold1", {"ebi": [PERFECT]}, init="fold1.pt", clients="1")
    make_run(tmp_path, "dcl-fold2", {"ebi": [ZERO, ZERO, ZERO]}, init="fold2.pt", clients="2-4")
    # TinyHAR: one run, one client at 0.5 (a model counts once, whatever its client count).
    make_run(tmp_path, "tiny", {"ebi": [HALF]}, model="tinyhar", init="t.pt", clients="1")
    table = table1(collect_runs([tmp_path]).clients)
    row = value(table, family="bias")
    assert row["class_acc"] == pytest.approx((0.25 + 0.5) / 2)
    assert (row["n_clients"], row["n_runs"], row["state"]) == (5, 3, "trained")
    assert row["models"] == "deepconvlstm;tinyhar"
    assert table[table["family"] == "avg"].empty  # no weight-based attack: no Avg.


def test_a_subject_in_replicate_runs_counts_once(tmp_path):
    make_run(tmp_path, "seed0", {"ebi": [PERFECT, ZERO]}, clients="1-2", seed=0)
    make_run(tmp_path, "seed1", {"ebi": [HALF]}, clients="1", seed=1)
    collection = collect_runs([tmp_path])
    row = value(table1(collection.clients), family="bias")
    # subject 1: mean(1.0, 0.5) = 0.75, subject 2: 0.0 -> 0.375 (not the row mean 0.5)
    assert row["class_acc"] == pytest.approx(0.375)
    assert (row["n_clients"], row["n_runs"]) == (2, 2)
    assert any("subject(s) 1 more than once" in w for w in collection.warnings)


def test_table1_excludes_multi_step_and_ldp_runs_and_splits_variants(tmp_path):
    sampling_pair(tmp_path)
    sampling_pair(tmp_path, prefix="leakage_har.", sequential_leaks_more=False)
    make_run(tmp_path, "multi", {"ebi": [ZERO, ZERO]}, sampler="shuffle", steps=2)
    make_run(tmp_path, "noisy", {"ebi": [ZERO, ZERO]}, sampler="shuffle", noise=0.1)
    collection = collect_runs([tmp_path])
    assert collection.warnings == []  # published and reference runs are not pooled together
    table = table1(collection.clients)
    assert value(table, variant="published", sampler="shuffle", family="bias")[
        "class_acc"] == pytest.approx(0.5)
    assert value(table, variant="reference", sampler="shuffle", family="bias")[
        "class_acc"] == pytest.approx(0.875)
    assert len(table) == 12


def test_paper_table1_is_complete_and_consistent():
    paper = paper_table1()
    assert len(paper) == 2 * 2 * 3 * 3
    wear_u_seq = paper[(paper["dataset"] == "wear") & (paper["state"] == "untrained")
                       & (paper["sampler"] == "sequential")].set_index("family")["class_acc"]
    assert wear_u_seq["bias"] == pytest.approx(0.985)
    inconsistent = []
    for key, group in paper.groupby(["dataset", "state", "sampler"]):
        values = group.set_index("family")["class_acc"]
        if abs(values["avg"] - (values["weight"] + values["bias"]) / 2) > 6e-5:
            inconsistent.append(key)
    # The paper's one printed Avg. that is not the mean of its rows (kept verbatim, documented).
    assert inconsistent == [("wetlab", "trained", "shuffle")]


# -- collecting ----------------------------------------------------------------------------------


def test_unfinished_broken_and_duplicate_runs_are_skipped_with_reasons(tmp_path):
    sampling_pair(tmp_path / "sweep" / "cells")
    make_run(tmp_path / "sweep" / "cells", "running", {"ebi": [PERFECT]}, finish=None)
    make_run(tmp_path / "sweep" / "cells", "crashed", {"ebi": [PERFECT]}, finish="failed")
    broken = tmp_path / "sweep" / "cells" / "broken"
    broken.mkdir()
    (broken / "meta.json").write_text("{not json")
    copy = make_run(tmp_path / "elsewhere", "copy", {"llg": [HALF, ZERO],
                                                      "ebi": [PERFECT, THREE_QUARTERS]},
                    sampler="sequential", clients="1-2")
    collection = collect_runs([tmp_path / "sweep", tmp_path / "elsewhere"])
    assert sorted(run.name for run in collection.runs) == ["seq", "shuf"]
    reasons = {path.name: reason for path, reason in
               ((s.path, s.reason) for s in collection.skipped)}
    assert "'running'" in reasons["running"] and "'failed'" in reasons["crashed"]
    assert "JSON" in reasons["broken"]
    assert "duplicate of" in reasons[copy.name] and "seq" in reasons[copy.name]


def test_pooled_runs_that_differ_in_other_keys_are_flagged(tmp_path):
    make_run(tmp_path, "a", {"ebi": [PERFECT]}, noise=0.1, clients="1")
    make_run(tmp_path, "b", {"ebi": [PERFECT]}, noise=0.5, clients="2")
    collection = collect_runs([tmp_path])
    assert len(collection.runs) == 2
    assert len(collection.warnings) == 1 and "client.ldp_noise" in collection.warnings[0]


def test_no_runs_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportError, match=r"no run directories.*empty"):
        collect_runs([tmp_path / "empty"])
    with pytest.raises(ReportError, match=r"missing.*does not exist"):
        collect_runs([tmp_path / "missing"])


# -- findings ------------------------------------------------------------------------------------


@pytest.mark.parametrize("sequential_leaks_more, verdict", [(True, "holds"),
                                                            (False, "does not hold")])
def test_finding_1_follows_the_data(tmp_path, sequential_leaks_more, verdict):
    sampling_pair(tmp_path, sequential_leaks_more=sequential_leaks_more)
    findings = paper_findings(collect_runs([tmp_path]).clients)
    first = findings_by(findings, 1)
    assert first.verdict == verdict
    expected = ("shuffle 25.00%, sequential 56.25%" if sequential_leaks_more
                else "shuffle 56.25%, sequential 25.00%")
    assert any(expected in line for line in first.evidence), first.evidence
    assert any("balanced sampling not measured" in line for line in first.evidence)
    assert findings_by(findings, 2).verdict == "holds"  # ebi beats llg either way
    assert findings_by(findings, 3).verdict.startswith("not measured (missing runs:")
    assert findings_by(findings, 1, "reference").verdict.startswith("not measured")
    assert findings_by(findings, 5, "published vs reference").verdict.startswith("not measured")


def test_finding_1_needs_sequential_highest_not_only_shuffle_lowest(tmp_path):
    make_run(tmp_path, "shuf", {"ebi": [ZERO]}, sampler="shuffle", clients="1")
    make_run(tmp_path, "seq", {"ebi": [HALF]}, sampler="sequential", clients="1")
    make_run(tmp_path, "bal", {"ebi": [PERFECT]}, sampler="balanced", clients="1")
    first = findings_by(paper_findings(collect_runs([tmp_path]).clients), 1)
    assert first.verdict == "does not hold"
    assert "shuffle 0.00%, sequential 50.00%, balanced 100.00%" in first.evidence[0]


def test_finding_2_fails_when_weight_based_attacks_win(tmp_path):
    make_run(tmp_path, "a", {"llg": [PERFECT], "ebi": [ZERO]}, clients="1")
    findings = paper_findings(collect_runs([tmp_path]).clients)
    assert findings_by(findings, 2).verdict == "does not hold"
    assert "bias-based 0.00%, weight-based 100.00%" in findings_by(findings, 2).evidence[0]


@pytest.mark.parametrize("multi_pred, verdict", [(PERFECT, "holds"),
                                                 (THREE_QUARTERS, "does not hold")])
def test_finding_3_uses_the_change_from_single_step(tmp_path, multi_pred, verdict):
    make_run(tmp_path, "s1", {"ebi": [PERFECT], "llbg": [PERFECT]}, clients="1")
    make_run(tmp_path, "s2", {"ebi": [PERFECT], "llbg": [multi_pred]}, steps=2, clients="1")
    third = findings_by(paper_findings(collect_runs([tmp_path]).clients), 3)
    assert third.verdict == verdict
    assert "ebi S=2: ClassAcc change +0.00 pp" in third.evidence[0]
    assert any("ebi S=5: not measured" in line for line in third.evidence)


def test_finding_4_checks_each_ldp_claim(tmp_path):
    for sampler in ("shuffle", "sequential"):
        make_run(tmp_path, f"none-{sampler}", {"llbg": [PERFECT]}, sampler=sampler, clients="1")
        make_run(tmp_path, f"noise-{sampler}", {"llbg": [NOISY]}, sampler=sampler, noise=0.1,
                 clients="1")
        make_run(tmp_path, f"both-{sampler}", {"llbg": [ZERO]}, sampler=sampler, noise=0.1,
                 clip=0.1, clients="1")
    fourth = findings_by(paper_findings(collect_runs([tmp_path]).clients), 4)
    assert fourth.verdict == "holds", fourth.evidence
    text = "\n".join(fourth.evidence)
    assert ("LDP noise: LnAcc 75.00%, LeAcc 100.00% (LeRecall, the paper code's 'LeAcc': "
            "100.00%), ClassAcc 75.00%") in text
    assert "(c) ClassAcc with noise+clip 0.00%" in text
    # Without the noise+clip runs the last part cannot be checked.
    for sampler in ("shuffle", "sequential"):
        (tmp_path / f"both-{sampler}" / "meta.json").unlink()  # no longer a run directory
    partial = findings_by(paper_findings(collect_runs([tmp_path]).clients), 4)
    assert partial.verdict.startswith("not measured (missing runs:")
    assert "LDP noise+clip" in partial.verdict


def test_finding_5_compares_the_variants(tmp_path):
    sampling_pair(tmp_path)
    sampling_pair(tmp_path, prefix="leakage_har.", sequential_leaks_more=False)
    findings = paper_findings(collect_runs([tmp_path]).clients)
    assert findings_by(findings, 1, "reference").verdict == "does not hold"
    fifth = findings_by(findings, 5, "published vs reference")
    assert fifth.verdict == "does not hold"
    assert "llg +0.00 pp, ebi +0.00 pp" in fifth.evidence[0]  # same values, samplers swapped


# -- figures and the written report ---------------------------------------------------------------


def assert_png(path):
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_HEADER


def test_report_writes_tables_figures_and_markdown(tmp_path):
    runs = tmp_path / "runs"
    sampling_pair(runs)
    make_run(runs, "seq-s2", {"llg": [HALF, ZERO], "ebi": [PERFECT, HALF]},
             sampler="sequential", steps=2, rounds=2)
    make_run(runs, "seq-noise", {"llbg": [NOISY, PERFECT]}, sampler="sequential", noise=0.1)
    make_run(runs, "seq-plain", {"llbg": [PERFECT, PERFECT]}, sampler="sequential")
    make_run(runs, "unfinished", {"ebi": [PERFECT]}, finish=None)
    notes = tmp_path / "notes.md"
    notes.write_text("Sequential batches are label-exclusive more often.\n")
    results_md = tmp_path / "experiments" / "RESULTS.md"
    report = build_report([runs], tmp_path / "out", results_md=results_md, notes=notes,
                          command="fl-har report runs --results-md RESULTS.md")
    out = tmp_path / "out"
    for kind in ("figure2", "figure3", "figure4", "spread", "rounds"):
        written = [f.path for f in report.figures if f.kind == kind]
        assert written, kind
        for path in written:
            assert_png(path)
    assert_png(out / "runs" / "seq-s2" / "leakage_over_rounds.png")
    assert not (out / "runs" / "seq" / "leakage_over_rounds.png").exists()  # one round only
    csv = pd.read_csv(out / "table1.csv")
    assert len(csv) == 6 and value(csv, sampler="sequential", family="bias")[
        "class_acc"] == pytest.approx((0.875 + 1.0) / 2)  # ebi and llbg, one model
    text = (out / "report.md").read_text()
    for expected in ("## Table 1", "paper: WEAR (U)", "19.95%", "## Comparison with the paper",
                     "unfinished", "status 'running'", "](figures/figure2_published_synthetic",
                     "Sequential batches are label-exclusive more often.",
                     "(`round_seconds`: local training and attacks): 12.0 s"):  # 6 rounds x 2 s
        assert expected in text, expected
    results = results_md.read_text()
    assert "fl-har report runs --results-md RESULTS.md" in results
    assert "](../out/figures/figure2_published_synthetic_untrained.png)" in results
    table_section = text[text.index("## Table 1"):text.index("## Figures")]
    assert table_section in results


def test_report_links_resolve_from_both_files(tmp_path):
    sampling_pair(tmp_path / "runs")
    results_md = tmp_path / "elsewhere" / "RESULTS.md"
    report = build_report([tmp_path / "runs"], results_md=results_md, run_views_enabled=False)
    assert report.out == tmp_path / "runs" / "report"
    for markdown in (report.report_md, results_md):
        text = markdown.read_text()
        links = [part.split(")")[0] for part in text.split("](")[1:]]
        assert links
        for link in links:
            assert (markdown.parent / link).exists(), (markdown, link)


def test_confusion_pools_sorted_pairs_over_updates(tmp_path):
    make_run(tmp_path, "a", {"llbg": [HALF, PERFECT]}, clients="1-2", rounds=2)
    collection = collect_runs([tmp_path])
    pooled = pool_confusions(collection.runs, "llbg", 4)
    assert pooled == {}  # N = 4 is not the runs' batch size (100 in the config)
    pooled = pool_confusions(collection.runs, "llbg", 100)
    cell = pooled[("published", "synthetic", "deepconvlstm", "untrained")][("shuffle", "none")]
    # HALF pairs (0,0,1,1) with (0,0,0,0); PERFECT pairs with itself; 2 rounds each.
    assert cell.counts.tolist() == [[8, 0, 0], [4, 4, 0], [0, 0, 0]]
    assert (cell.updates, len(cell.clients)) == (4, 2)
    assert cell.normalised()[1].tolist() == [0.5, 0.5, 0.0]
    assert class_names("hapt", 13)[:2] == ["null", "walking"]
    assert class_names("synthetic", 3) == ["null", "1", "2"]


def test_trained_models_and_sweep_timing_are_reported(tmp_path):
    from fl_har.data import load_dataset
    from fl_har.pretrain import PretrainConfig, pretrain, save_checkpoint

    dataset = load_dataset("synthetic", num_subjects=3, samples_per_subject=1500)
    result = pretrain(dataset, (2, 3), (1,), PretrainConfig(model="tinyhar", epochs=1,
                                                            batch_size=50))
    checkpoint = tmp_path / "pretrained" / "fold1.pt"
    save_checkpoint(checkpoint, result)
    sweep = tmp_path / "sweep"
    for fold, init in ((1, checkpoint), (2, tmp_path / "gone.pt")):
        make_run(sweep / "cells", f"fold{fold}", {"ebi": [PERFECT]}, init=str(init),
                 clients=str(fold), model="tinyhar")
    (sweep / "manifest.json").write_text(json.dumps(
        {"timing": {"pretraining_seconds": 125.0, "runs_seconds": 30.5}}))
    report = build_report([sweep], run_views_enabled=False)
    text = report.report_md.read_text()
    f1 = f"{result.meta['eval_macro_f1']:.3f}"
    assert "## Trained models" in text
    assert f"| fold1.pt | synthetic | tinyhar | 1 | 2 | 1 | {f1} |" in text
    assert "gone.pt" in text and "does not exist" in text
    assert "pretraining seconds: 2 min 05 s" in text and "runs seconds: 30.5 s" in text
    csv = pd.read_csv(report.out / "pretrained.csv")
    assert csv.loc[csv["checkpoint"] == str(checkpoint), "eval_macro_f1"].item() == pytest.approx(
        result.meta["eval_macro_f1"])


# -- command line --------------------------------------------------------------------------------


def run_cli(argv):
    parser = argparse.ArgumentParser(prog="fl-har")
    report_cmd.add_parser(parser.add_subparsers(dest="command"))
    return report_cmd.report(parser.parse_args(["report", *argv]))


def test_cli_writes_results_md_with_the_command_line(tmp_path, monkeypatch, capsys):
    sampling_pair(tmp_path / "runs")
    results_md = tmp_path / "RESULTS.md"
    argv = ["/venv/bin/fl-har", "report", str(tmp_path / "runs"), "--results-md",
            str(results_md), "--no-run-views"]
    monkeypatch.setattr("sys.argv", argv)
    assert run_cli(argv[2:]) == 0
    assert f"fl-har report {tmp_path / 'runs'} --results-md {results_md} --no-run-views" in (
        results_md.read_text())
    out = capsys.readouterr().out
    assert "Table 1 equivalent" in out and "holds" in out


def test_cli_errors_name_the_directories_and_exit_2(tmp_path, capsys):
    (tmp_path / "nothing-here").mkdir()
    assert run_cli([str(tmp_path / "nothing-here"), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no run directories" in err and "nothing-here" in err and "Traceback" not in err
    make_run(tmp_path / "r", "only-running", {"ebi": [PERFECT]}, finish=None)
    assert run_cli([str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "no finished run" in err and "running" in err
    sampling_pair(tmp_path / "ok")
    assert run_cli([str(tmp_path / "ok"), "--notes", str(tmp_path / "absent.md")]) == 2
    assert "absent.md" in capsys.readouterr().err


# -- a real (tiny) simulation ---------------------------------------------------------------------


def test_report_on_a_real_synthetic_run(tmp_path):
    from clients.har_client import app as client_app
    from strategies.local_grid import LocalGrid
    from strategies.server_app import run_server

    for sampler in ("sequential", "shuffle"):
        config = load_config(None, [
            f"run.name={sampler}", "data.dataset=synthetic", "data.synthetic_subjects=3",
            "client.batch_size=20", "run.rounds=2", f"client.sampler={sampler}",
            "attacks.names=llg,ebi,llbg,leakage_har.llbg"])
        store = RunStore.create(tmp_path / "sweep" / sampler, config.to_dict(), seed=0)
        grid = LocalGrid(client_app, 3, seed=0)
        assert run_server(grid, config, store) == "finished"
    report = build_report([tmp_path / "sweep"], batch_size=20)
    table = report.table1
    assert set(table["variant"]) == {"published", "reference"}
    assert set(table["sampler"]) == {"sequential", "shuffle"}
    published = table[table["variant"] == "published"]
    assert len(published) == 6 and published["class_acc"].between(0, 1).all()
    assert (published["n_clients"] == 3).all()
    clients = report.collection.clients
    ebi_seq = clients[(clients["attack_name"] == "ebi") & (clients["sampler"] == "sequential")]
    assert value(published, sampler="sequential", family="bias")["class_acc"] == pytest.approx(
        (ebi_seq["class_acc"].mean() + clients[
            (clients["attack_name"] == "llbg") & (clients["sampler"] == "sequential")
        ]["class_acc"].mean()) / 2)
    meta = json.loads((tmp_path / "sweep" / "shuffle" / "meta.json").read_text())
    assert meta["status"] == "finished"
    assert any(f.kind == "rounds" for f in report.figures)
    assert not math.isnan(report.collection.clients["ln_acc"].mean())
