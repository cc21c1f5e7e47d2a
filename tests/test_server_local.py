"""The curious server and the HAR client, wired through an in-process grid (no Ray).

Synthetic data, a few clients and rounds, so each test takes seconds. The real Ray simulation is
exercised in ``test_simulation_ray.py``.
"""

import numpy as np
import pandas as pd
import pytest
import torch

from clients.har_client import app as client_app
from fl_har.config import load_config
from fl_har.results import RunStore
from strategies.local_grid import LocalGrid
from strategies.server_app import run_server

BASE = [
    "data.dataset=synthetic",
    "data.synthetic_subjects=4",
    "data.clients=1-3",
    "client.batch_size=20",
    "run.rounds=2",
    "attacks.names=llg,ebi,llbg,ilrg,idlg",
]


def make_config(*overrides):
    return load_config(None, [*BASE, *overrides])


def run(tmp_path, config, name="run", failure="", progress=None):
    store = RunStore.create(tmp_path / name, config.to_dict(), seed=config.run.seed)
    grid = LocalGrid(client_app, config.data.synthetic_subjects, seed=hash(name) % 1000)
    status = run_server(grid, config, store, failure_injection=failure, progress=progress)
    return status, store


def test_every_update_is_attacked_and_scored_in_partition_order(tmp_path):
    config = make_config()
    status, store = run(tmp_path, config)
    assert status == "finished"
    table = store.attack_table()
    assert len(table) == 2 * 3 * 5
    assert list(table["round"].unique()) == [1, 2]
    assert sorted(table["subject"].unique()) == [1, 2, 3]
    first = table[table["round"] == 1]
    assert list(first["partition"].drop_duplicates()) == [0, 1, 2]
    for _, row in table.iterrows():
        assert sum(row["true_counts"]) == 20 == row["num_samples"]
        if not row["error"]:
            assert sum(row["pred_counts"]) == 20
    clients = store.client_table()
    assert set(clients["attack"]) == {"llg", "ebi", "llbg", "ilrg", "idlg"}
    assert clients.loc[clients["attack"] == "ebi", "class_acc"].between(0, 1).all()


def test_an_attack_that_cannot_apply_is_reported_not_guessed(tmp_path):
    config = make_config("model.head_bias=false", "run.rounds=1", "attacks.names=llg,ebi")
    status, store = run(tmp_path, config)
    assert status == "finished"
    table = store.attack_table()
    ebi, llg = table[table["attack"] == "ebi"], table[table["attack"] == "llg"]
    assert ebi["error"].str.contains("bias").all() and ebi["ln_acc"].isna().all()
    assert (llg["error"] == "").all() and llg["ln_acc"].notna().all()


def test_same_seed_gives_identical_rows_and_weights(tmp_path):
    config = make_config("run.regime=train", "client.local_steps=2", "client.ldp_noise=0.01")
    _, a = run(tmp_path, config, "a")
    _, b = run(tmp_path, config, "b")
    cols = ["round", "partition", "attack", "true_counts", "pred_counts", "ln_acc", "le_acc"]
    pd.testing.assert_frame_equal(a.attack_table()[cols], b.attack_table()[cols])
    (ra, sa), (rb, sb) = a.load_checkpoint(), b.load_checkpoint()
    assert ra == rb == 2
    for key in sa:
        assert torch.equal(sa[key], sb[key])
    _, c = run(tmp_path, make_config("run.regime=train", "client.local_steps=2",
                                     "client.ldp_noise=0.01", "run.seed=1"), "c")
    assert not a.attack_table()["true_counts"].equals(c.attack_table()["true_counts"])


def test_frozen_keeps_the_model_train_changes_it(tmp_path):
    frozen = make_config("run.rounds=1")
    _, store = run(tmp_path, frozen, "frozen")
    from fl_har.federation import federation_plan, initial_model

    start = initial_model(frozen, federation_plan(frozen)).state_dict()
    _, state = store.load_checkpoint()
    assert all(torch.equal(start[k], state[k]) for k in start)
    trained = make_config("run.rounds=1", "run.regime=train")
    _, store = run(tmp_path, trained, "train")
    _, state = store.load_checkpoint()
    assert not all(torch.equal(start[k], state[k]) for k in start)
    # the aggregation rule's own time is recorded per round, inside the round's time
    rounds = store.round_table()
    assert (rounds["aggregate_seconds"] > 0).all()
    assert (rounds["aggregate_seconds"] < rounds["round_seconds"]).all()


def test_a_failing_client_is_recorded_and_fails_the_run(tmp_path):
    config = make_config()
    status, store = run(tmp_path, config, failure="1:2")
    assert status == "failed"
    assert "1 client update(s) failed" in store.meta["message"]
    table = store.attack_table()
    assert len(table[table["round"] == 1]) == 3 * 5  # round 1 kept whole
    assert sorted(table.loc[table["round"] == 2, "partition"].unique()) == [0, 2]
    failures = pd.read_csv(store.run_dir / "failures.csv")
    assert failures.loc[0, "partition"] == 1 and failures.loc[0, "round"] == 2
    assert "injected failure" in failures.loc[0, "reason"]
    assert failures.loc[0, "subject"] == 2
    # a client failing in round 1 is still named (error replies carry no records)
    status, store = run(tmp_path, config, "first", failure="0:1")
    failures = pd.read_csv(store.run_dir / "failures.csv")
    assert (failures.loc[0, "partition"], failures.loc[0, "subject"]) == (0, 1)
    allowed = make_config("run.allow_client_failures=true")
    status, _ = run(tmp_path, allowed, "allowed", failure="1:2")
    assert status == "finished"


class Interrupt(Exception):
    pass


def test_resume_continues_with_identical_results(tmp_path):
    config = make_config("run.rounds=3", "run.regime=train")
    _, full = run(tmp_path, config, "full")

    def stop_after_first(run_round, rounds, row):
        if run_round == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        run(tmp_path, config, "cut", progress=stop_after_first)
    store = RunStore.resume(tmp_path / "cut", config.to_dict())
    assert store.last_finished_round == 1
    grid = LocalGrid(client_app, 4, seed=5)
    assert run_server(grid, config, store) == "finished"
    cols = ["round", "partition", "attack", "true_counts", "pred_counts", "ln_acc"]
    pd.testing.assert_frame_equal(full.attack_table()[cols], store.attack_table()[cols])
    (_, a), (_, b) = full.load_checkpoint(), store.load_checkpoint()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_attacks_see_only_the_update(tmp_path):
    """Sequential single-class batches: bias attacks find the class; under huge noise they don't."""
    base = ["client.sampler=sequential", "client.batch_size=10", "run.rounds=4",
            "attacks.names=ebi,llbg"]
    _, clean = run(tmp_path, make_config(*base), "clean")
    _, noisy = run(tmp_path, make_config(*base, "client.ldp_noise=100"), "noisy")

    def single_class_hits(table):
        rows = table[table["true_counts"].map(lambda c: int(np.count_nonzero(c)) == 1)]
        assert len(rows) >= 4
        return rows["le_acc"].mean(), rows["ln_acc"].mean()

    clean_le, clean_ln = single_class_hits(clean.attack_table())
    _, noisy_ln = single_class_hits(noisy.attack_table())
    assert clean_ln > 0.95 and clean_le > 0.95
    assert noisy_ln < 0.6


def test_pretrained_checkpoint_run_with_held_out_evaluation(tmp_path, capsys):
    from fl_har_app import main

    checkpoint = tmp_path / "model.pt"
    data = ["--set", "data.dataset=synthetic", "--set", "data.synthetic_subjects=4",
            "--set", "data.server_subjects=2-3", "--set", "data.eval_subjects=4"]
    assert main(["pretrain", *data, "--epochs", "2", "-o", str(checkpoint)]) == 0
    assert "held-out macro-F1" in capsys.readouterr().out
    config = load_config(None, [
        *BASE, "data.clients=1", "data.server_subjects=2-3", "data.eval_subjects=4",
        f"model.init='{checkpoint}'", "attacks.names=ebi,llbg_trained,llg_plus", "run.rounds=1",
    ])
    status, store = run(tmp_path, config)
    assert status == "finished"
    from fl_har.pretrain import load_checkpoint

    # the server evaluates exactly the pre-trained model (frozen regime)
    meta = load_checkpoint(checkpoint).meta
    expected = meta["eval_macro_f1"]
    assert meta["untrained_eval_macro_f1"] < expected  # the baseline a reader compares with
    assert store.round_table().loc[0, "eval_macro_f1"] == pytest.approx(expected)
    table = store.attack_table()
    assert (table["error"] == "").all() and len(table) == 1 * 3


def test_pretrain_needs_server_subjects(capsys):
    from fl_har_app import main

    assert main(["pretrain", "--set", "data.dataset=synthetic", "-o", "x.pt"]) == 2
    assert "data.server_subjects" in capsys.readouterr().err


def test_checkpoint_for_another_shape_is_refused(tmp_path):
    from fl_har_app import main

    checkpoint = tmp_path / "model.pt"
    assert main(["pretrain", "--set", "data.dataset=synthetic", "--set", "data.server_subjects=3",
                 "--epochs", "1", "-o", str(checkpoint)]) == 0
    config = make_config(f"model.init='{checkpoint}'", "model.name=tinyhar")
    store = RunStore.create(tmp_path / "r", config.to_dict(), seed=0)
    with pytest.raises(ValueError, match="model"):
        run_server(LocalGrid(client_app, 4), config, store)
    assert store.meta["status"] == "failed"


def test_held_out_evaluation_with_local_standardisation(tmp_path):
    """Without server subjects, held-out windows are standardised with their own statistics."""
    config = make_config("data.clients=1-3", "data.eval_subjects=4", "run.rounds=1",
                         "data.normalization=standardize")
    status, store = run(tmp_path, config)
    assert status == "finished"
    assert 0 <= store.round_table().loc[0, "eval_macro_f1"] <= 1
