"""Realistic federated training: local epochs, sampled cohorts, a server learning rate."""

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord

from clients.har_client import app as client_app
from fl_har.config import ConfigError, load_config, to_flat
from fl_har.federation import Participant, federation_plan, initial_model
from fl_har.results import RunStore
from strategies.aggregators import build_aggregator
from strategies.curious import CuriousStrategy
from strategies.leakage import LeakageObserver
from strategies.local_grid import LocalGrid
from strategies.recorder import RoundRecorder
from strategies.roster import client_roster
from strategies.server_app import make_context_factory, run_server

BASE = ["data.dataset=synthetic", "data.synthetic_subjects=4", "data.clients=1-3",
        "data.eval_subjects=4", "client.batch_size=20", "run.regime=train",
        "attacks.names=ebi,llbg"]


def config_with(*overrides):
    return load_config(None, [*BASE, *overrides])


def test_local_epochs_pass_over_every_window_in_full_mini_batches():
    config = config_with("client.local_epochs=2")
    participant = Participant(config, 1)
    count = len(participant.windows.y)
    usable = count - count % 20
    _x, y = participant.batch(1)
    assert len(y) == 2 * usable
    first, second = y[:usable], y[usable:]
    # each epoch is an ordering of (almost) all windows: same histogram up to the dropped tail
    assert abs(np.bincount(first).sum() - usable) == 0
    assert not np.array_equal(first, second)  # shuffled anew every epoch
    _x2, y2 = participant.batch(1)
    np.testing.assert_array_equal(y, y2)  # deterministic
    assert not np.array_equal(y, participant.batch(2)[1])  # a new order every round
    update = participant.train_round(initial_model(config, federation_plan(config)).state_dict(), 1)
    assert update.label_counts.sum() == 2 * usable


def test_sequential_local_epochs_keep_recording_order():
    config = config_with("client.local_epochs=1", "client.sampler=sequential")
    participant = Participant(config, 2)
    _, y = participant.batch(1)
    usable = len(y)
    np.testing.assert_array_equal(y, participant.windows.y[:usable])


def test_the_server_attacks_epoch_updates_with_S_equal_to_the_steps_taken(tmp_path):
    config = config_with("client.local_epochs=1", "run.rounds=2")
    store = RunStore.create(tmp_path / "run", config.to_dict(), seed=0)
    status = run_server(LocalGrid(client_app, 4), config, store)
    assert status == "finished"
    attacks = store.attack_table()
    for _, row in attacks.iterrows():
        assert row["num_samples"] % 20 == 0
        assert row["local_steps"] == row["num_samples"] // 20 > 1
        assert sum(row["true_counts"]) == row["num_samples"]
    rounds = store.round_table()
    assert {"eval_macro_f1", "eval_macro_f1_no_null", "eval_accuracy"} <= set(rounds.columns)


def test_a_sampled_cohort_is_seeded_recorded_and_the_same_on_resume(tmp_path):
    config = config_with("run.clients_per_round=2", "run.rounds=4")
    store = RunStore.create(tmp_path / "a", config.to_dict(), seed=0)
    run_server(LocalGrid(client_app, 4), config, store)
    updates = store.update_table()
    cohorts = [tuple(group["subject"]) for _, group in updates.groupby("round")]
    assert len(cohorts) == 4 and all(len(c) == 2 for c in cohorts)
    assert len(set(cohorts)) > 1  # not the same two every round
    assert set(store.attack_table()["subject"]) <= {1, 2, 3}
    # the same seed draws the same cohorts; a run resumed after round 2 continues them
    short = config.replace(**{"run.rounds": 2})
    store_b = RunStore.create(tmp_path / "b", short.to_dict(), seed=0)
    run_server(LocalGrid(client_app, 4, seed=9), short, store_b)
    resumed = RunStore.resume(tmp_path / "b", config.to_dict())
    run_server(LocalGrid(client_app, 4, seed=5), config, resumed)
    again = [tuple(g["subject"]) for _, g in resumed.update_table().groupby("round")]
    assert again == cohorts


def test_server_learning_rate_moves_the_model_part_of_the_way():
    config = config_with("server.lr=0.5")
    grid = LocalGrid(client_app, 4, seed=1)
    config, plan, roster = client_roster(grid, config, federation_plan(config))
    recorder = RoundRecorder()
    strategy = CuriousStrategy(
        build_aggregator(config), roster=roster, recorder=recorder,
        observer=LeakageObserver(config, make_context_factory(config, plan)),
    )
    sent = initial_model(config, plan).state_dict()
    arrays = ArrayRecord(sent)
    messages = strategy.configure_train(1, arrays, ConfigRecord(to_flat(config)), grid)
    replies = list(grid.send_and_receive(messages))
    returned = [m.content["arrays"].to_torch_state_dict() for m in replies]
    counts = [m.content["metrics"]["num-examples"] for m in replies]
    aggregate, _ = strategy.aggregate_train(1, replies)
    state = aggregate.to_torch_state_dict()
    key = "head.weight"
    mean = sum(r[key] * c for r, c in zip(returned, counts, strict=True)) / sum(counts)
    expected = sent[key] + 0.5 * (mean - sent[key])
    torch.testing.assert_close(state[key], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("override", "message"), [
    (["client.local_epochs=1", "client.local_steps=2"], "leave local_steps at 1"),
    (["client.local_epochs=1", "client.sampler=balanced"], "cannot order local epochs"),
    (["client.local_epochs=-1"], "local_epochs must be >= 0"),
    (["run.regime=frozen", "server.lr=0.5"], "no effect in the frozen regime"),
    (["server.lr=0"], "server.lr must be > 0"),
    (["run.clients_per_round=2", "run.client_fraction=0.5"], "not both"),
    (["run.client_fraction=0"], "client_fraction must be in"),
    (["run.clients_per_round=-1"], "clients_per_round must be >= 0"),
])
def test_bad_training_settings_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        config_with(*override)
