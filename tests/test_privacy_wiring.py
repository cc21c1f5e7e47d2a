"""Privacy defences wired into the config, the clients and the server (issue 11).

Config validation, DP-SGD rounds and their epsilon, the updates table's ``epsilon`` column, diverse
batches, Flower's central DP wrappers (seeded noise, clipping, central epsilon), and one Ray run.
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp.strategy import FedAvg
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM
from opacus.accountants import RDPAccountant

from clients.har_client import app as client_app
from clients.har_client import central_clipping_mod
from fl_har.config import ConfigError, load_config
from fl_har.data.diverse import classes_covered
from fl_har.federation import Participant, cohort_positions, federation_plan, initial_model
from fl_har.privacy import MechanismRecord, epsilon_spent
from fl_har.privacy.client_dp import check_client_privacy
from fl_har.results import RunStore
from fl_har.seeding import Stream, derive_seed
from strategies.central_dp import central_epsilon, wrap_central_dp
from strategies.local_grid import LocalGrid
from strategies.server_app import run_server

BASE = [
    "data.dataset=synthetic",
    "data.window=36",  # short windows: DP-SGD's per-example LSTM gradients are the slow part
    "data.synthetic_subjects=3",
    "client.batch_size=20",
    "run.rounds=2",
    "attacks.names=llg,ebi",
]
DP = ["client.privacy=dp_sgd", "client.dp_clip=1.0", "client.dp_noise_multiplier=1.1"]


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as the ClientApp uses (several threads only contend on a shared CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_config(*overrides):
    return load_config(None, [*BASE, *overrides])


def run(tmp_path, config, name="run"):
    store = RunStore.create(tmp_path / name, config.to_dict(), seed=config.run.seed)
    grid = LocalGrid(client_app, config.data.synthetic_subjects, seed=3)
    status = run_server(grid, config, store)
    return status, store


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["client.dp_epsilon=-1"], "dp_epsilon must be > 0"),
        (["client.dp_delta=0"], r"dp_delta must be in \(0, 1\)"),
        (["client.dp_delta=1.0"], r"dp_delta must be in \(0, 1\)"),
        (["client.dp_clip=0"], "noise without clipping"),
        (["client.dp_epsilon=2.0"], "both set"),
        (["client.dp_accountant=gdp"], "not one of rdp, prv"),
        (["client.sampler=balanced"], "no effect with DP-SGD's Poisson"),
        (["model.name=tinyhar", "data.window=50"], "cannot be trained with client.privacy = \"dp_sgd\".*BatchNorm"),
        (["client.ldp_noise=0.1"], "apply only with client.privacy = \"ldp\""),
    ],
)
def test_dp_sgd_config_errors_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        make_config(*DP, *overrides)


def test_privacy_key_combinations():
    # Configs written before the privacy key: ldp_* alone select the paper's perturbation.
    assert make_config("client.ldp_noise=0.1").client.privacy == "ldp"
    assert make_config().client.privacy == "none"
    with pytest.raises(ConfigError, match="needs client.ldp_clip > 0 or client.ldp_noise > 0"):
        make_config("client.privacy=ldp")
    with pytest.raises(ConfigError, match="apply only with client.privacy = \"dp_sgd\""):
        make_config("client.dp_clip=1.0")
    with pytest.raises(ConfigError, match="client.diverse_min_classes must be >= 0"):
        make_config("client.sampler=diverse", "client.diverse_min_classes=-1")
    with pytest.raises(ConfigError, match="frozen regime"):
        make_config("server.dp=central_fixed_server", "server.dp_clip=1.0")
    with pytest.raises(ConfigError, match="needs server.dp_clip > 0"):
        make_config("run.regime=train", "server.dp=central_fixed_client")
    with pytest.raises(ConfigError, match="apply only with server.dp"):
        make_config("server.dp_noise_multiplier=1.0")
    # central DP's noise assumes FedAvg's average: a robust rule would make the epsilon wrong
    with pytest.raises(ConfigError, match="calibrated for FedAvg's average; server.aggregator = 'median'"):
        make_config("run.regime=train", "server.dp=central_fixed_server", "server.dp_clip=1.0",
                    "server.aggregator=median")
    # round trip through the flat run-config form keeps the implied privacy
    config = make_config("client.ldp_clip=0.5")
    assert load_config(None, [*BASE, "client.privacy=ldp", "client.ldp_clip=0.5"]) == config


def test_delta_must_be_below_one_over_the_client_windows():
    config = make_config(*DP, "client.dp_delta=0.01")  # synthetic clients have > 100 windows
    with pytest.raises(ConfigError, match="subject 1: client.dp_delta: .* not below 1 / "):
        check_client_privacy(config)
    with pytest.raises(ConfigError, match="client.dp_delta"):
        Participant(config, 1)


def test_unreachable_target_epsilon_is_a_config_error():
    config = make_config("client.privacy=dp_sgd", "client.dp_clip=1.0", "client.dp_epsilon=1e-9")
    with pytest.raises(ConfigError, match="client.dp_epsilon"):
        check_client_privacy(config)


# ---------------------------------------------------------------------------------------------
# DP-SGD client rounds
# ---------------------------------------------------------------------------------------------


def _round(config, subject, run_round, state=None):
    plan = federation_plan(config)
    state = state or initial_model(config, plan).state_dict()
    return Participant(config, subject).train_round(state, run_round)


def test_dp_sgd_round_is_deterministic_and_epsilon_matches_the_accountants():
    config = make_config(*DP, "run.regime=train", "client.local_steps=2")
    first, again = _round(config, 2, 1), _round(config, 2, 1)
    for key in first.state_dict:
        assert torch.equal(first.state_dict[key], again.state_dict[key]), key
    other_round = _round(config, 2, 2)
    assert not all(torch.equal(first.state_dict[k], other_round.state_dict[k])
                   for k in first.state_dict)
    # The announced N is the public expected batch, not the Poisson draw.
    assert first.reported_examples == 20
    n = len(Participant(config, 2).windows.y)
    q = (20 / 2) / n
    for run_round, update in ((1, first), (2, other_round)):
        expected = epsilon_spent([MechanismRecord(1.1, q, 2)] * run_round, 1e-5, "rdp")
        assert update.metrics["epsilon"] == pytest.approx(expected, rel=1e-12)
        accountant = RDPAccountant()
        accountant.history = [(1.1, q, 2 * run_round)]
        assert update.metrics["epsilon"] == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-9)
    assert other_round.metrics["epsilon"] > first.metrics["epsilon"] > 0


def test_target_epsilon_is_spent_by_the_last_planned_round():
    config = make_config("client.privacy=dp_sgd", "client.dp_clip=1.0", "client.dp_epsilon=3.0",
                         "run.rounds=4", "data.clients=2")
    plans = check_client_privacy(config)
    for subject, client in plans.items():
        assert client.rounds == (1, 2, 3, 4)
        final = client.epsilon(4)
        assert 3.0 - 0.02 <= final <= 3.0, subject
        assert client.epsilon(2) < final


def test_cohort_sampling_counts_only_the_rounds_a_client_was_addressed_in():
    config = make_config(*DP, "run.clients_per_round=1", "run.rounds=5")
    plans = check_client_privacy(config)
    addressed = {r: cohort_positions(0, 3, 1, r) for r in range(1, 6)}
    for position, subject in enumerate((1, 2, 3)):
        mine = tuple(r for r in range(1, 6) if position in addressed[r])
        assert plans[subject].rounds == mine
        record = plans[subject].record
        assert plans[subject].epsilon(5) == pytest.approx(
            epsilon_spent([record] * len(mine), 1e-5) if mine else 0.0)
    assert sum(len(p.rounds) for p in plans.values()) == 5


def test_updates_table_gets_the_cumulative_epsilon(tmp_path):
    config = make_config(*DP, "run.regime=train", "client.loss=class_weighted",
                         "model.head_bias=false")
    status, store = run(tmp_path, config)
    assert status == "finished"
    updates = store.update_table()
    assert "epsilon" in updates.columns
    plans = check_client_privacy(config)
    for _, row in updates.iterrows():
        assert row["epsilon"] == pytest.approx(plans[row["subject"]].epsilon(row["round"]))
    by_subject = updates.pivot(index="subject", columns="round", values="epsilon")
    assert (by_subject[2] > by_subject[1]).all()
    reread = pd.read_parquet(store.run_dir / "updates.parquet")
    assert reread["epsilon"].dtype == np.float64


def test_clipping_only_reports_an_infinite_epsilon(tmp_path):
    config = make_config("client.privacy=dp_sgd", "client.dp_clip=1.0", "run.rounds=1",
                         "data.clients=1")
    status, store = run(tmp_path, config)
    assert status == "finished"
    assert store.update_table()["epsilon"].tolist() == [math.inf]


def test_no_epsilon_column_without_dp_sgd(tmp_path):
    status, store = run(tmp_path, make_config("run.rounds=1", "client.ldp_noise=0.1"))
    assert status == "finished"
    assert "epsilon" not in store.update_table().columns


# ---------------------------------------------------------------------------------------------
# Diverse batches
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("base", ["sequential", "shuffle"])
def test_diverse_batches_cover_at_least_k_classes(base):
    config = make_config("client.sampler=diverse", f"client.diverse_base={base}",
                         "client.diverse_min_classes=4")
    participant = Participant(config, 1)
    plain = Participant(make_config(f"client.sampler={base}"), 1)
    for run_round in range(1, 8):
        _, labels = participant.batch(run_round)
        assert len(labels) == 20 and classes_covered(labels) >= 4
    # sequential batches alone are label-poor: the wrapper is what makes them diverse
    if base == "sequential":
        assert min(classes_covered(plain.batch(r)[1]) for r in range(1, 8)) < 4


def test_diverse_default_k_is_every_class_the_subject_has():
    config = make_config("client.sampler=diverse")
    participant = Participant(config, 2)
    present = classes_covered(participant.windows.y)
    for run_round in (1, 2, 3):
        assert classes_covered(participant.batch(run_round)[1]) == min(present, 20)


@pytest.mark.parametrize("regime", ["frozen", "train"])
def test_defences_run_in_both_regimes(tmp_path, regime):
    config = make_config(f"run.regime={regime}", "client.sampler=diverse",
                         "client.diverse_min_classes=3", "client.loss=class_weighted",
                         "model.head_bias=false", "run.rounds=1", "attacks.names=ebi")
    status, store = run(tmp_path, config)
    assert status == "finished"
    for _, row in store.attack_table().iterrows():
        assert sum(1 for c in row["true_counts"] if c) >= 3


# ---------------------------------------------------------------------------------------------
# Central DP (Flower's wrappers)
# ---------------------------------------------------------------------------------------------


def _messages(updates, base):
    """Train replies whose arrays are base + update, equal num-examples."""
    LocalGrid(client_app, 1)  # sets Flower's task identity for message creation
    replies = []
    for node, delta in enumerate(updates, start=1):
        sent = Message(content=RecordDict(), dst_node_id=node, message_type=MessageType.TRAIN)
        content = RecordDict({
            "arrays": ArrayRecord({"w": base + delta}),
            "metrics": MetricRecord({"num-examples": 10}),
        })
        replies.append(Message(content=content, reply_to=sent))
    return replies


@pytest.mark.parametrize("sigma", [0.0, 0.8])
def test_server_side_wrapper_is_clipped_mean_plus_seeded_noise(sigma):
    config = make_config("run.regime=train", "server.dp=central_fixed_server",
                         "server.dp_clip=1.0", f"server.dp_noise_multiplier={sigma}")
    base = torch.tensor([0.5, -1.0, 2.0])
    updates = [torch.tensor([3.0, 4.0, 0.0]), torch.tensor([0.0, 0.3, 0.4])]  # norms 5 and 0.5
    strategy = wrap_central_dp(FedAvg(), config, cohort_size=2)
    strategy.current_arrays = ArrayRecord({"w": base})
    strategy._pending_events[7] = None
    arrays, _ = strategy.aggregate_train(7, _messages(updates, base))
    clipped = [torch.tensor([0.6, 0.8, 0.0]), updates[1]]
    expected = base.numpy() + (clipped[0] + clipped[1]).numpy() / 2
    if sigma:
        rng = np.random.RandomState(derive_seed(0, Stream.CENTRAL_DP, 7) % 2**32)
        expected = expected + rng.normal(0, sigma * 1.0 / 2, 3).astype(np.float32)
    np.testing.assert_allclose(arrays["w"].numpy(), expected, rtol=0, atol=1e-6)
    # the global numpy generator is left as it was
    state = np.random.get_state()
    strategy._pending_events[8] = None
    strategy.aggregate_train(8, _messages(updates, base))
    assert np.random.get_state()[1].tolist() == state[1].tolist()


def test_client_side_mod_clips_train_replies_and_passes_other_messages():
    LocalGrid(client_app, 1)
    base = np.array([1.0, 1.0], dtype=np.float32)
    sent = Message(
        content=RecordDict({"arrays": ArrayRecord({"w": torch.from_numpy(base)}),
                            "config": ConfigRecord({KEY_CLIPPING_NORM: 0.5})}),
        dst_node_id=1, message_type=MessageType.TRAIN,
    )

    def train(msg, context):
        trained = torch.from_numpy(base + np.float32([3.0, 4.0]))
        return Message(content=RecordDict({"arrays": ArrayRecord({"w": trained})}),
                       reply_to=msg)

    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    reply = central_clipping_mod(sent, context, train)
    np.testing.assert_allclose(reply.content["arrays"]["w"].numpy(), base + [0.3, 0.4], atol=1e-6)
    query = Message(content=RecordDict(), dst_node_id=1, message_type=MessageType.QUERY)
    passed = central_clipping_mod(query, context, lambda m, c: "untouched")
    assert passed == "untouched"


def test_central_epsilon_is_the_gaussian_mechanism_composed_over_rounds():
    config = make_config("run.regime=train", "server.dp=central_fixed_server",
                         "server.dp_clip=1.0", "server.dp_noise_multiplier=2.0")
    accountant = RDPAccountant()
    accountant.history = [(2.0, 1.0, 3)]
    assert central_epsilon(config, 3) == pytest.approx(accountant.get_epsilon(1e-5))
    # closed form of RDP for the Gaussian mechanism: eps(alpha) = r * alpha / (2 sigma^2)
    orders = np.array(RDPAccountant.DEFAULT_ALPHAS)
    bound = np.min(3 * orders / 8 + np.log(1 / 1e-5) / (orders - 1))
    assert central_epsilon(config, 3) <= bound + 1e-9
    assert central_epsilon(config, 1) < central_epsilon(config, 3)


@pytest.mark.parametrize("mode", ["central_fixed_server", "central_fixed_client"])
def test_central_dp_run_records_central_epsilon_and_is_reproducible(tmp_path, mode):
    overrides = ("run.regime=train", f"server.dp={mode}", "server.dp_clip=0.5",
                 "server.dp_noise_multiplier=1.0")
    config = make_config(*overrides)
    status, store = run(tmp_path, config, "a")
    assert status == "finished"
    rounds = store.round_table()
    expected = [central_epsilon(config, r) for r in (1, 2)]
    assert rounds["central_epsilon"].tolist() == pytest.approx(expected)
    _, again = run(tmp_path, config, "b")
    first, second = store.load_checkpoint()[1], again.load_checkpoint()[1]
    for key in first:
        assert torch.equal(first[key], second[key]), key


# ---------------------------------------------------------------------------------------------
# Ray
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_dp_sgd_on_ray_reports_growing_epsilon(tmp_path):
    args = ["run", "--out", str(tmp_path)]
    for item in [*BASE, *DP, "run.regime=train", "simulation.cpus_per_client=1"]:
        args += ["--set", item]
    result = subprocess.run(
        [sys.executable, "-m", "fl_har_app", *args], cwd=tmp_path, capture_output=True,
        text=True, timeout=600, check=False, env=dict(os.environ, COLUMNS="120"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = tmp_path / "hapt-default"
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "finished"
    updates = pd.read_parquet(run_dir / "updates.parquet")
    assert sorted(updates["subject"].unique()) == [1, 2, 3]
    by_subject = updates.pivot(index="subject", columns="round", values="epsilon")
    assert (by_subject[2] > by_subject[1]).all() and (by_subject[1] > 0).all()
    assert math.isfinite(by_subject[2].max())
