"""Results store: round-by-round atomic writes, crash consistency, resume, per-client ClassAcc."""

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from fl_har import results
from fl_har.config import ExperimentConfig
from fl_har.results import (
    RESUME_IGNORED_KEYS,
    ResultsError,
    RunStore,
    client_summary,
    export_csv,
    load_run,
    parse_count_list,
)
from fl_har.results.schemas import attack_frame
from fl_har.results.validation import validate_attack_row

NAN = math.nan
CONFIG = {
    "run": {"name": "unit", "seed": 7, "rounds": 3, "out": "results"},
    "client": {"batch_size": 6, "lr": 0.01, "ldp_noise": 0.0},
    "attacks": {"names": ("llg", "ebi")},
}
# record_round's write order: checkpoint first, meta.json (the commit) last.
WRITE_ORDER = [
    "checkpoint.prev.pt", "checkpoint.pt", "attacks.parquet", "rounds.parquet", "rounds.csv", "clients.parquet",
    "clients.csv", "failures.csv", "summary.md", "meta.json",
]


def attack_row(round_number, partition, attack, true_counts, pred_counts, *, error="", **metrics):
    """A row as the server builds it; metrics default to values derived from the inputs."""
    failed = bool(error)
    row = {
        "round": round_number, "partition": partition, "subject": 100 + partition,
        "attack": attack, "num_samples": sum(true_counts) if true_counts else 6,
        "local_steps": 1, "true_counts": true_counts, "pred_counts": pred_counts,
        "ln_acc": NAN if failed else 0.1 * round_number + 0.01 * partition,
        "le_acc": NAN if failed else 1.0 - 0.1 * partition,
        "le_recall": NAN if failed else 0.9,
        "le_precision": NAN if failed else 0.8,
        "count_acc": NAN if failed else 0.5,
        "attack_seconds": 0.25, "error": error,
    }
    row.update(metrics)
    return row


def round_inputs(round_number):
    """Deterministic inputs of one round: 2 clients x 2 attacks, one failure in round 2."""
    rng = np.random.default_rng(round_number)
    rows = []
    for partition in (0, 1):
        true = rng.multinomial(6, [0.5, 0.3, 0.2]).tolist()
        for attack in ("llg", "ebi"):  # deliberately unsorted: the store sorts
            pred = rng.multinomial(6, [0.4, 0.4, 0.2]).tolist()
            rows.append(attack_row(round_number, partition, attack, true, pred))
    round_row = {"round": round_number, "eval_accuracy": 0.5 + 0.1 * round_number,
                 "num_failures": int(round_number == 2), "round_seconds": 1.5}
    failures = ([{"partition": 2, "subject": 102, "node_id": 2**64 - 5,
                  "reason": "timeout, after 30 s"}] if round_number == 2 else [])
    state = {"layer.weight": torch.full((2, 3), float(round_number)),
             "layer.bias": torch.arange(2, dtype=torch.float64) + round_number}
    return rows, round_row, failures, state


def record(store, round_number):
    store.record_round(round_number, *round_inputs(round_number))


def run_rounds(run_dir, rounds):
    store = RunStore.create(run_dir, CONFIG, seed=7)
    for round_number in range(1, rounds + 1):
        record(store, round_number)
    return store


def assert_same_tables(actual, expected):
    for name in ("attacks", "rounds", "clients", "failures"):
        pd.testing.assert_frame_equal(getattr(actual, name), getattr(expected, name), obj=name)


def file_bytes(run_dir):
    return {path.name: path.read_bytes() for path in run_dir.iterdir()}


# ------------------------------------------------------------------------------------------------
# Create, record, read back
# ------------------------------------------------------------------------------------------------


def test_create_record_and_read_back(tmp_path):
    store = run_rounds(tmp_path / "run", 2)
    tables = load_run(tmp_path / "run")

    assert tables.meta["last_finished_round"] == store.last_finished_round == 2
    assert tables.meta["seed"] == 7 and tables.meta["status"] == "running"
    assert set(tables.meta["versions"]) >= {"fl_har", "flwr", "torch", "numpy", "python"}
    assert tables.config["attacks"]["names"] == ["llg", "ebi"]
    assert list(tables.attacks.columns) == list(results.ATTACK_COLUMNS)
    assert len(tables.attacks) == 8
    order = tables.attacks[["round", "partition", "attack"]].to_records(index=False).tolist()
    assert order == sorted(order)
    first = tables.attacks.iloc[0]
    expected_first = next(r for r in round_inputs(1)[0] if r["partition"] == 0
                          and r["attack"] == "ebi")
    assert first["true_counts"] == expected_first["true_counts"]
    assert first["pred_counts"] == expected_first["pred_counts"]
    assert all(isinstance(v, int) for v in first["true_counts"])
    assert list(tables.rounds.columns) == ["round", "eval_accuracy", "num_failures",
                                           "round_seconds"]
    assert tables.rounds["round"].tolist() == [1, 2]
    assert tables.rounds["num_failures"].dtype == np.int64
    assert tables.failures.to_dict("records") == [
        {"round": 2, "partition": 2, "subject": 102, "node_id": str(2**64 - 5),
         "reason": "timeout, after 30 s"}]
    assert list(tables.clients.columns) == list(results.CLIENT_COLUMNS)
    assert tables.clients["num_updates"].tolist() == [2, 2, 2, 2]
    assert_same_tables(tables, store_tables(store))


def store_tables(store):
    return results.RunTables(store.run_dir, store.config, store.meta, store.attack_table(),
                             store.round_table(), store.client_table(), store.failure_table())


def test_parquet_has_int64_list_columns_and_csvs_match(tmp_path):
    run_rounds(tmp_path / "run", 1)
    schema = pq.read_schema(tmp_path / "run" / "attacks.parquet")
    assert schema.field("true_counts").type == pa.list_(pa.int64())
    assert schema.field("pred_counts").type == pa.list_(pa.int64())
    for stem in ("rounds", "clients"):
        from_csv = pd.read_csv(tmp_path / "run" / f"{stem}.csv")
        from_parquet = pd.read_parquet(tmp_path / "run" / f"{stem}.parquet")
        assert from_csv.columns.tolist() == from_parquet.columns.tolist()
        np.testing.assert_allclose(from_csv.select_dtypes("number").to_numpy(float),
                                   from_parquet.select_dtypes("number").to_numpy(float))


def test_fresh_run_has_empty_tables(tmp_path):
    RunStore.create(tmp_path / "run", CONFIG, seed=7)
    tables = load_run(tmp_path / "run")
    assert tables.meta["last_finished_round"] == 0
    assert tables.attacks.empty and tables.rounds.empty and tables.clients.empty
    assert pq.read_schema(tmp_path / "run" / "attacks.parquet").field(
        "true_counts").type == pa.list_(pa.int64())


def test_create_refuses_a_non_empty_directory_unless_overwrite(tmp_path):
    run_rounds(tmp_path / "run", 1)
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(ResultsError, match="already exists and is not empty"):
        RunStore.create(tmp_path / "run", CONFIG, seed=7)

    store = RunStore.create(tmp_path / "run", CONFIG, seed=8, overwrite=True)
    assert store.last_finished_round == 0 and store.seed == 8
    assert load_run(tmp_path / "run").attacks.empty
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"  # not ours: left alone


def test_config_that_toml_cannot_store_is_refused(tmp_path):
    with pytest.raises(ResultsError, match=r"model\.init = None"):
        RunStore.create(tmp_path / "run", {"model": {"init": None}}, seed=0)


# ------------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda row: row.pop("le_recall"), r"attack_rows\[0\] lacks key\(s\) \['le_recall'\]"),
        (lambda row: row.update(surprise=1), r"unknown key\(s\) \['surprise'\]"),
        (lambda row: row.update(true_counts=[1, -1, 0]), "non-negative whole numbers"),
        (lambda row: row.update(true_counts=[1.5, 0, 0]), "non-negative whole numbers"),
        (lambda row: row.update(pred_counts=[1, 2]), "the same non-zero number"),
        (lambda row: row.update(num_samples="6"), r"\['num_samples'\] = '6': expected an int"),
        (lambda row: row.update(le_acc="high"), r"\['le_acc'\] = 'high': expected a number"),
        (lambda row: row.update(round=3), r"\['round'\] = 3: expected 1"),
    ],
)
def test_bad_attack_rows_are_refused_before_any_write(tmp_path, change, message):
    store = RunStore.create(tmp_path / "run", CONFIG, seed=7)
    rows, round_row, failures, state = round_inputs(1)
    change(rows[0])
    before = file_bytes(tmp_path / "run")
    with pytest.raises(ResultsError, match=message):
        store.record_round(1, rows, round_row, failures, state)
    assert file_bytes(tmp_path / "run") == before
    assert store.last_finished_round == 0


def test_duplicate_client_attack_and_class_count_change_are_refused(tmp_path):
    store = RunStore.create(tmp_path / "run", CONFIG, seed=7)
    rows, round_row, failures, state = round_inputs(1)
    with pytest.raises(ResultsError, match="partition 0 has two rows for attack 'llg'"):
        store.record_round(1, rows + [rows[0]], round_row, failures, state)
    record(store, 1)
    four_classes = [attack_row(2, 0, "llg", [1, 2, 3, 0], [1, 2, 3, 0])]
    with pytest.raises(ResultsError, match=r"count lists of \[3, 4\] classes"):
        store.record_round(2, four_classes, {"round": 2}, [], None)


def test_failures_may_omit_subject_and_node_id(tmp_path):
    store = RunStore.create(tmp_path / "run", CONFIG, seed=7)
    store.record_round(1, [], {"round": 1}, [{"round": 1, "partition": 4, "reason": "x"}], None)
    assert load_run(tmp_path / "run").failures.to_dict("records") == [
        {"round": 1, "partition": 4, "subject": -1, "node_id": "", "reason": "x"}]
    with pytest.raises(ResultsError, match=r"failures\[0\] lacks key\(s\) \['reason'\]"):
        store.record_round(2, [], {"round": 2}, [{"partition": 4}], None)
    assert RunStore.resume(tmp_path / "run", CONFIG).resumed_failures == 1
    assert store.resumed_failures == 0


def test_error_rows_are_stored_with_empty_counts(tmp_path):
    store = RunStore.create(tmp_path / "run", CONFIG, seed=7)
    rows = [attack_row(1, 0, "ilrg", [], [], error="AttackError: singular"),
            attack_row(1, 1, "ilrg", [4, 2], [], error="AttackError: singular")]  # truth kept
    store.record_round(1, rows, {"round": 1}, [], None)
    stored = load_run(tmp_path / "run").attacks
    assert stored["error"].tolist() == ["AttackError: singular"] * 2
    assert stored["true_counts"].tolist() == [[], [4, 2]]
    assert stored["pred_counts"].tolist() == [[], []] and stored["le_acc"].isna().all()
    assert load_run(tmp_path / "run").clients["attack_errors"].tolist() == [1, 1]


def test_rounds_must_be_recorded_in_order(tmp_path):
    store = RunStore.create(tmp_path / "run", CONFIG, seed=7)
    with pytest.raises(ResultsError, match="round 2 recorded out of order.*expected round 1"):
        record(store, 2)
    record(store, 1)
    with pytest.raises(ResultsError, match="round 1 recorded out of order"):
        record(store, 1)
    with pytest.raises(ResultsError, match=r"round_row\['round'\] = 3: expected 2"):
        store.record_round(2, [], {"round": 3}, [], None)


# ------------------------------------------------------------------------------------------------
# Crash consistency and resume
# ------------------------------------------------------------------------------------------------


class SimulatedCrash(RuntimeError):
    pass


def crash_when_writing(monkeypatch, file_name):
    real_write = results.store.write_bytes_atomic

    def write(path, data):
        if path.name == file_name:
            raise SimulatedCrash(file_name)
        real_write(path, data)

    monkeypatch.setattr(results.store, "write_bytes_atomic", write)


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory):
    """Uninterrupted runs of 1 and 3 rounds, shared by the tests that compare against them."""
    base = tmp_path_factory.mktemp("reference")
    return {rounds: load_run(run_rounds(base / f"rounds{rounds}", rounds).run_dir)
            for rounds in (1, 3)}


@pytest.mark.parametrize("crash_file", WRITE_ORDER)
def test_crash_during_a_round_keeps_the_previous_round(tmp_path, monkeypatch, crash_file,
                                                       reference_runs):
    run_dir = tmp_path / "run"
    store = run_rounds(run_dir, 1)
    before = file_bytes(run_dir)

    with monkeypatch.context() as patch:
        crash_when_writing(patch, crash_file)
        with pytest.raises(SimulatedCrash):
            record(store, 2)

    # Files after the crash point were not touched; meta.json still commits round 1.
    after = file_bytes(run_dir)
    for name in WRITE_ORDER[WRITE_ORDER.index(crash_file):]:
        if name in before:
            assert after[name] == before[name], name
    assert json.loads(after["meta.json"])["last_finished_round"] == 1
    assert not [name for name in after if name.endswith(".tmp")]
    # Raw tables hold round 1 intact (plus at most rows of the uncommitted round 2).
    raw_attacks = pd.read_parquet(run_dir / "attacks.parquet")
    assert set(raw_attacks["round"]) <= {1, 2}
    assert len(raw_attacks[raw_attacks["round"] == 1]) == 4
    # Readers see exactly the round-1 state, and the round-1 model.
    tables = load_run(run_dir)
    assert tables.rounds["round"].tolist() == [1]
    assert set(tables.attacks["round"]) == {1}
    assert_same_tables(tables, reference_runs[1])
    checkpoint_round, state = store.load_checkpoint()
    assert checkpoint_round == 1
    torch.testing.assert_close(state["layer.weight"], torch.full((2, 3), 1.0))

    # Resuming continues to the same result as a run that never crashed.
    resumed = RunStore.resume(run_dir, CONFIG)
    assert resumed.last_finished_round == 1
    assert_same_tables(load_run(run_dir), reference_runs[1])  # files rewritten on resume
    record(resumed, 2)
    record(resumed, 3)
    assert_same_tables(load_run(run_dir), reference_runs[3])
    assert resumed.load_checkpoint()[0] == 3


def test_a_failed_record_call_can_be_retried(tmp_path, monkeypatch, reference_runs):
    store = run_rounds(tmp_path / "run", 1)
    with monkeypatch.context() as patch:
        crash_when_writing(patch, "clients.parquet")
        with pytest.raises(SimulatedCrash):
            record(store, 2)
    assert store.last_finished_round == 1 and len(store.attack_table()) == 4
    record(store, 2)
    record(store, 3)
    assert_same_tables(load_run(tmp_path / "run"), reference_runs[3])


def test_a_retry_without_model_state_does_not_commit_the_failed_attempts_checkpoint(
        tmp_path, monkeypatch):
    store = run_rounds(tmp_path / "run", 1)
    with monkeypatch.context() as patch:
        crash_when_writing(patch, "attacks.parquet")  # after checkpoint.pt of round 2
        with pytest.raises(SimulatedCrash):
            record(store, 2)
    rows, round_row, failures, _ = round_inputs(2)
    store.record_round(2, rows, round_row, failures, None)
    assert store.load_checkpoint()[0] == 1


def test_resume_discards_uncommitted_files(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    store = run_rounds(run_dir, 1)
    with monkeypatch.context() as patch:
        crash_when_writing(patch, "meta.json")
        with pytest.raises(SimulatedCrash):
            record(store, 2)
    (run_dir / "attacks.parquet.tmp").write_bytes(b"half a file")  # a kill -9 mid-write
    assert set(pd.read_parquet(run_dir / "attacks.parquet")["round"]) == {1, 2}

    resumed = RunStore.resume(run_dir, CONFIG)
    assert not (run_dir / "attacks.parquet.tmp").exists()
    assert set(pd.read_parquet(run_dir / "attacks.parquet")["round"]) == {1}
    assert "2 |" not in (run_dir / "failures.csv").read_text()
    assert resumed.load_checkpoint()[0] == 1
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["round"] == 1
    assert json.loads((run_dir / "meta.json").read_text())["resumed_at"]


def test_resume_continues_like_an_uninterrupted_run(tmp_path, reference_runs):
    run_rounds(tmp_path / "run", 2)
    resumed = RunStore.resume(tmp_path / "run", CONFIG)
    assert resumed.last_finished_round == 2 and resumed.seed == 7
    record(resumed, 3)
    assert_same_tables(load_run(tmp_path / "run"), reference_runs[3])


def test_resume_refuses_a_changed_config(tmp_path):
    run_rounds(tmp_path / "run", 1)
    changed = {**CONFIG, "client": {**CONFIG["client"], "lr": 0.1},
               "model": {"name": "tinyhar"}}
    with pytest.raises(ResultsError) as refused:
        RunStore.resume(tmp_path / "run", changed)
    message = str(refused.value)
    assert "client.lr: stored 0.01, given 0.1" in message
    assert "model.name: stored absent, given 'tinyhar'" in message
    assert "run.name" not in message
    with pytest.raises(ResultsError, match=r"client\.ldp_noise: stored 0\.0, given False"):
        RunStore.resume(tmp_path / "run", {**CONFIG, "client": {**CONFIG["client"],
                                                               "ldp_noise": False}})


def test_resume_accepts_an_identical_config_and_ignored_keys(tmp_path):
    run_rounds(tmp_path / "run", 1)
    assert RESUME_IGNORED_KEYS == ("run.out", "run.resume")
    same = {**CONFIG, "run": {**CONFIG["run"], "out": "elsewhere", "resume": True},
            "client": {**CONFIG["client"], "ldp_noise": 0},  # 0 == 0.0
            "attacks": {"names": ["llg", "ebi"]}}  # list == the stored tuple
    assert RunStore.resume(tmp_path / "run", same).last_finished_round == 1


def test_resume_with_a_real_experiment_config(tmp_path):
    config = ExperimentConfig().to_dict()
    RunStore.create(tmp_path / "run", config, seed=0)
    assert RunStore.resume(tmp_path / "run", ExperimentConfig().to_dict()).last_finished_round == 0


def test_resume_and_load_report_missing_or_corrupt_runs(tmp_path):
    with pytest.raises(ResultsError, match="does not exist"):
        RunStore.resume(tmp_path / "nothing", CONFIG)
    run_rounds(tmp_path / "run", 1)
    (tmp_path / "run" / "attacks.parquet").write_bytes(b"not parquet")
    with pytest.raises(ResultsError, match=r"attacks\.parquet is not a readable Parquet file"):
        load_run(tmp_path / "run")
    (tmp_path / "run" / "meta.json").write_text("{")
    with pytest.raises(ResultsError, match=r"meta\.json is not readable JSON"):
        load_run(tmp_path / "run")


# ------------------------------------------------------------------------------------------------
# Per-client summary, ClassAcc, summary.md, CSV encoding
# ------------------------------------------------------------------------------------------------


def test_client_class_acc_on_a_hand_computed_example():
    rows = [
        # Client 0 never has class 2 (absent: not in the mean, even though it is predicted).
        attack_row(1, 0, "llg", [3, 1, 0], [2, 1, 1], ln_acc=0.2),
        attack_row(2, 0, "llg", [1, 3, 0], [1, 1, 2], ln_acc=0.4),
        attack_row(3, 0, "llg", [], [], error="AttackError: no gradient"),
        attack_row(1, 1, "llg", [2, 2, 2], [2, 2, 2], ln_acc=1.0),
    ]
    attacks = attack_frame([validate_attack_row(r, "row", r["round"]) for r in rows])
    clients = client_summary(attacks).set_index("partition")
    # Class 0: (min(3,2) + min(1,1)) / (3 + 1) = 3/4; class 1: (1 + 1) / (1 + 3) = 1/2.
    assert clients.loc[0, "class_acc"] == pytest.approx((3 / 4 + 1 / 2) / 2)
    assert clients.loc[1, "class_acc"] == pytest.approx(1.0)
    assert clients.loc[0, "num_updates"] == 3 and clients.loc[0, "attack_errors"] == 1
    assert clients.loc[0, "ln_acc"] == pytest.approx(0.3)  # error row excluded
    assert clients.loc[0, "subject"] == 100


def test_summary_contains_the_per_attack_numbers(tmp_path):
    store = RunStore.create(tmp_path / "run", CONFIG, seed=7)
    rows = [
        attack_row(1, 0, "ebi", [2, 1], [2, 1], ln_acc=0.6, le_acc=1.0, le_recall=1.0),
        attack_row(1, 1, "ebi", [2, 1], [1, 2], ln_acc=0.2, le_acc=0.5, le_recall=0.5),
        attack_row(1, 0, "llg", [2, 1], [], error="AttackError: x"),
    ]
    store.record_round(1, rows, {"round": 1, "eval_accuracy": 0.75}, [], None)
    store.finish("failed", "stopped by user")
    text = (tmp_path / "run" / "summary.md").read_text()
    # ebi over 2 clients: LnAcc 0.4 +- 0.2, LeAcc 0.75 +- 0.25, LeRecall 0.75 +- 0.25,
    # ClassAcc client 0: 1.0, client 1: (1/2 + 1) / 2 = 0.75 -> 0.875 +- 0.125.
    assert ("| ebi | 2 | 2 | 0 | 0.400 ± 0.200 | 0.750 ± 0.250 | 0.750 ± 0.250 "
            "| 0.875 ± 0.125 |") in text
    assert "| llg | 1 | 1 | 1 | n/a | n/a | n/a | n/a |" in text
    assert "status: failed (stopped by user)" in text
    assert "rounds finished: 1 of 3" in text and "eval_accuracy = 0.75" in text
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["status"] == "failed" and meta["message"] == "stopped by user"
    assert meta["ended_at"]


def test_finish_rules(tmp_path):
    store = run_rounds(tmp_path / "run", 1)
    with pytest.raises(ResultsError, match="status = 'done'"):
        store.finish("done")
    store.finish("finished")
    with pytest.raises(ResultsError, match="is finished: resume it"):
        record(store, 2)
    resumed = RunStore.resume(tmp_path / "run", CONFIG)
    assert resumed.meta["status"] == "running"
    record(resumed, 2)


def test_csv_list_encoding(tmp_path):
    store = run_rounds(tmp_path / "run", 1)
    store.record_round(2, [attack_row(2, 0, "llg", [], [], error="AttackError: x")],
                       {"round": 2}, [], None)
    attacks = store.attack_table()
    export_csv(attacks, tmp_path / "attacks.csv")
    text = pd.read_csv(tmp_path / "attacks.csv", keep_default_na=False, dtype=str)
    first = attacks.iloc[0]
    assert text.loc[0, "true_counts"] == " ".join(str(v) for v in first["true_counts"])
    assert text.loc[len(text) - 1, "true_counts"] == ""
    decoded = [parse_count_list(cell) for cell in text["pred_counts"]]
    assert decoded == attacks["pred_counts"].tolist()
    assert parse_count_list("3 0 12") == [3, 0, 12]
    with pytest.raises(ResultsError, match="expected integers separated by spaces"):
        parse_count_list("3,0")


# ------------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------------


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    store = RunStore.create(tmp_path / "run", CONFIG, seed=7)
    assert store.load_checkpoint() is None
    record(store, 1)
    raw = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert raw["round"] == 1 and set(raw["state_dict"]) == {"layer.weight", "layer.bias"}

    rows, round_row, failures, _ = round_inputs(2)
    store.record_round(2, rows, round_row, failures, None)  # model unchanged this round
    round_number, state = store.load_checkpoint()
    assert round_number == 1
    expected = round_inputs(1)[3]
    for name, tensor in expected.items():
        torch.testing.assert_close(state[name], tensor)
        assert state[name].dtype == tensor.dtype

    record(store, 3)
    assert store.load_checkpoint()[0] == 3
    assert torch.load(tmp_path / "run" / "checkpoint.prev.pt", weights_only=True)["round"] == 1


def test_model_state_must_hold_tensors(tmp_path):
    store = RunStore.create(tmp_path / "run", CONFIG, seed=7)
    rows, round_row, failures, _ = round_inputs(1)
    with pytest.raises(ResultsError, match=r"model_state\['w'\] = list: expected a tensor"):
        store.record_round(1, rows, round_row, failures, {"w": [1.0]})


def test_update_rows_are_stored_and_survive_a_resume(tmp_path):
    store = RunStore.create(tmp_path / "run", {"run": {"name": "x"}}, seed=0)
    rows = [
        {"round": 1, "partition": 1, "subject": 2, "status": "ok", "num_examples": 20,
         "train_loss": 1.5, "decision": "selected"},
        {"round": 1, "partition": 0, "subject": 1, "status": "failed"},
    ]
    store.record_round(1, [], {"round": 1}, [], None, update_rows=rows)
    table = store.update_table()
    assert list(table["partition"]) == [0, 1]  # sorted by partition
    assert list(table["status"]) == ["failed", "ok"]
    assert np.isnan(table.loc[0, "train_loss"]) and table.loc[1, "train_loss"] == 1.5
    assert table.loc[1, "decision"] == "selected"
    reopened = RunStore.resume(tmp_path / "run", {"run": {"name": "x"}})
    pd.testing.assert_frame_equal(reopened.update_table(), table)
    assert (tmp_path / "run" / "updates.csv").read_text().startswith(
        "round,partition,subject,status")


@pytest.mark.parametrize(("row", "message"), [
    ({"round": 1, "partition": 0, "subject": 1}, "lacks key"),
    ({"round": 1, "partition": 0, "subject": 1, "status": "maybe"}, "expected one of"),
    ({"round": 2, "partition": 0, "subject": 1, "status": "ok"}, "expected 1"),
    ({"round": 1, "partition": 0, "subject": 1, "status": "ok", "norm": [1]}, "expected a number"),
])
def test_bad_update_rows_are_refused(tmp_path, row, message):
    store = RunStore.create(tmp_path / "run", {"run": {"name": "x"}}, seed=0)
    with pytest.raises(ResultsError, match=message):
        store.record_round(1, [], {"round": 1}, [], None, update_rows=[row])
    with pytest.raises(ResultsError, match="twice"):
        ok = {"round": 1, "partition": 0, "subject": 1, "status": "ok"}
        store.record_round(1, [], {"round": 1}, [], None, update_rows=[ok, ok])


def test_a_finished_run_can_be_extended_with_more_rounds(tmp_path):
    config = {"run": {"name": "x", "rounds": 1}}
    store = RunStore.create(tmp_path / "run", config, seed=0)
    store.record_round(1, [], {"round": 1}, [], None)
    store.finish("finished")
    longer = {"run": {"name": "x", "rounds": 3}}
    extended = RunStore.resume(tmp_path / "run", longer)
    assert extended.last_finished_round == 1
    assert extended.config["run"]["rounds"] == 3
    assert extended.meta["extended"] == [{"from_rounds": 1, "to_rounds": 3}]
    extended.record_round(2, [], {"round": 2}, [], None)
    with pytest.raises(ResultsError, match="already finished 2 rounds"):
        RunStore.resume(tmp_path / "run", {"run": {"name": "x", "rounds": 1}})
    with pytest.raises(ResultsError, match="run.name"):
        RunStore.resume(tmp_path / "run", {"run": {"name": "y", "rounds": 3}})
