"""Secure-aggregation run mode: the curious observer sees only the cohort aggregate."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp.strategy import FedAvg, FedMedian

import protocol
from clients.har_client import app as client_app
from fl_har.config import ConfigError, load_config, to_flat
from fl_har.federation import federation_plan, initial_model
from strategies.curious import CuriousStrategy
from strategies.leakage import LeakageObserver
from strategies.local_grid import LocalGrid
from strategies.recorder import RoundRecorder
from strategies.roster import client_roster
from strategies.server_app import make_context_factory

ATTACKS = ("llbg", "ilrg")
BASE = [
    "data.dataset=synthetic", "data.synthetic_subjects=4", "data.clients=1-3",
    "client.batch_size=20", "client.local_steps=2", "run.regime=train",
    f"attacks.names={','.join(ATTACKS)}", "server.secure_aggregation=true",
]


class SpyObserver(LeakageObserver):
    """Records every state handed to the observer."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def observe(self, partition, subject, returned_state, num_examples, true_counts):
        self.calls.append((partition, subject, returned_state, num_examples, true_counts))
        return super().observe(partition, subject, returned_state, num_examples, true_counts)


def test_observer_receives_only_the_weighted_aggregate_and_the_summed_truth():
    config = load_config(None, BASE)
    grid = LocalGrid(client_app, config.data.synthetic_subjects, seed=3)
    config, plan, roster = client_roster(grid, config, federation_plan(config))
    recorder = RoundRecorder()
    observer = SpyObserver(config, make_context_factory(config, plan))
    inner = FedAvg(fraction_evaluate=0.0, min_train_nodes=1, min_available_nodes=1)
    strategy = CuriousStrategy(inner, roster=roster, observer=observer, recorder=recorder,
                               secure_aggregation=True)
    arrays = ArrayRecord(initial_model(config, plan).state_dict())
    messages = strategy.configure_train(1, arrays, ConfigRecord(to_flat(config)), grid)
    replies = list(grid.send_and_receive(messages))
    individual = [m.content[protocol.ARRAYS_KEY].to_torch_state_dict() for m in replies]
    truth_sum = np.sum([np.asarray(m.content[protocol.TRUTH_KEY]["label-counts"])
                        for m in replies], axis=0)
    aggregate, _ = strategy.aggregate_train(1, replies)

    [(partition, subject, state, num_examples, true_counts)] = observer.calls
    assert (partition, subject) == (-1, -1) and num_examples == 3 * 20
    # the observed state is the FedAvg aggregate (equal weights here), not any client's state
    for key in ("head.weight", "head.bias"):
        mean = np.mean([s[key].numpy().astype(np.float64) for s in individual], axis=0)
        np.testing.assert_allclose(state[key].numpy(), mean, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(aggregate.to_torch_state_dict()[key].numpy(), mean,
                                   rtol=1e-5, atol=1e-6)
        for single in individual:
            assert not np.allclose(state[key].numpy(), single[key].numpy())
    record = recorder.take(1)
    # one row per attack for the cohort, scored against the sum of the true histograms
    assert [r["attack"] for r in record.attack_rows] == list(ATTACKS)
    np.testing.assert_array_equal(true_counts, truth_sum)
    assert all(r["partition"] == -1 and sum(r["true_counts"]) == 60 for r in record.attack_rows)
    assert all(r["true_counts"] == [int(c) for c in truth_sum] for r in record.attack_rows)
    assert all(sum(r["pred_counts"]) == 60 and r["error"] == "" for r in record.attack_rows)
    # every client's update is still recorded (status, N), without attack rows
    assert sorted(r["partition"] for r in record.update_rows) == sorted(s.partition for s in roster)


def test_secure_aggregation_rejects_aggregators_that_need_individual_updates():
    config = load_config(None, BASE)
    with pytest.raises(ValueError, match="individual updates"):
        CuriousStrategy(FedMedian(), roster=None, observer=None, recorder=None,
                        secure_aggregation=True)
    assert config.server.secure_aggregation


def test_secure_aggregation_with_local_epochs_is_a_config_error():
    with pytest.raises(ConfigError, match="secure_aggregation"):
        load_config(None, [*BASE, "client.local_steps=1", "client.local_epochs=1"])


@pytest.mark.parametrize(("overrides", "message"), [
    (["server.aggregator=median"], "hides the individual updates that server.aggregator = 'median'"),
    (["run.regime=train", "server.dp=central_fixed_server", "server.dp_clip=1.0"],
     "use \"central_fixed_client\""),
])
def test_secure_aggregation_refuses_server_steps_that_read_single_updates(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [*BASE, *overrides])
    if "server.dp=central_fixed_server" in overrides:  # the client-side clipping variant is fine
        load_config(None, [*BASE, "run.regime=train", "server.dp=central_fixed_client",
                           "server.dp_clip=1.0"])


@pytest.mark.slow
def test_secure_aggregation_run_on_ray(tmp_path):
    """4 synthetic clients, 2 rounds on Ray: one cohort row per attack and round."""
    args = ["--set", "data.dataset=synthetic", "--set", "data.synthetic_subjects=4",
            "--set", "client.batch_size=20", "--set", "run.rounds=2",
            "--set", "run.regime=train", "--set", "attacks.names=llbg,ilrg",
            "--set", "server.secure_aggregation=true"]
    env = dict(os.environ, COLUMNS="120")
    result = subprocess.run([sys.executable, "-m", "fl_har_app", "run", *args, "--out",
                             str(tmp_path)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = tmp_path / "hapt-default"
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "finished"
    table = pd.read_parquet(run_dir / "attacks.parquet")
    assert len(table) == 2 * 2  # one cohort row per attack and round
    assert set(table["partition"]) == {-1}
    assert all(sum(t) == 4 * 20 for t in table["true_counts"])
    assert (table["error"] == "").all()
    updates = pd.read_parquet(run_dir / "updates.parquet")
    assert len(updates) == 2 * 4
