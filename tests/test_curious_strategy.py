"""The curious server as a wrapper around any Flower strategy (in-process grid, no Ray)."""

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp.strategy import FedAvg, FedMedian

import protocol
from clients.har_client import app as client_app
from fl_har.config import load_config, to_flat
from fl_har.federation import federation_plan, initial_model
from strategies.curious import CuriousStrategy
from strategies.leakage import LeakageObserver
from strategies.local_grid import LocalGrid
from strategies.recorder import RoundRecorder
from strategies.roster import client_roster
from strategies.server_app import make_context_factory

ATTACKS = ("llg", "ebi", "llbg")
BASE = [
    "data.dataset=synthetic", "data.synthetic_subjects=4", "data.clients=1-3",
    "client.batch_size=20", "run.regime=train", f"attacks.names={','.join(ATTACKS)}",
]


class Spy(FedAvg):
    """FedAvg that remembers the replies it was given."""

    def aggregate_train(self, server_round, replies):
        self.seen = list(replies)
        return super().aggregate_train(server_round, self.seen)


def setup(inner, *overrides, frozen=False):
    config = load_config(None, [*BASE, *overrides])
    grid = LocalGrid(client_app, config.data.synthetic_subjects, seed=3)
    config, plan, roster = client_roster(grid, config, federation_plan(config))
    recorder = RoundRecorder()
    strategy = CuriousStrategy(
        inner, roster=roster, observer=LeakageObserver(config, make_context_factory(config, plan)),
        recorder=recorder, frozen=frozen,
    )
    arrays = ArrayRecord(initial_model(config, plan).state_dict())
    return config, grid, roster, recorder, strategy, arrays


def one_round(grid, strategy, arrays, config):
    messages = strategy.configure_train(1, arrays, ConfigRecord(to_flat(config)), grid)
    replies = list(grid.send_and_receive(messages))
    returned = {m.metadata.src_node_id: m.content[protocol.ARRAYS_KEY].to_torch_state_dict()
                for m in replies if not m.has_error()}
    aggregate, _ = strategy.aggregate_train(1, replies)
    return replies, returned, aggregate


def test_wrapped_fedmedian_attacks_every_reply_and_applies_the_median():
    inner = FedMedian(fraction_evaluate=0.0, min_train_nodes=1, min_available_nodes=1)
    config, grid, roster, recorder, strategy, arrays = setup(inner)
    _, returned, aggregate = one_round(grid, strategy, arrays, config)
    record = recorder.take(1)
    assert len(record.attack_rows) == len(roster) * len(ATTACKS)
    assert [r["partition"] for r in record.attack_rows] == sorted(
        slot.partition for slot in roster for _ in ATTACKS)
    assert all(r["error"] == "" and 0 <= r["ln_acc"] <= 1 for r in record.attack_rows)
    state = aggregate.to_torch_state_dict()
    for key, value in state.items():
        stacked = np.stack([returned[node][key].numpy() for node in roster.node_ids])
        np.testing.assert_allclose(value.numpy(), np.median(stacked, axis=0), rtol=1e-6)
    # the median differs from the mean: the wrapper applied what FedMedian computed
    key = "head.weight"
    mean = np.mean([returned[n][key].numpy() for n in roster.node_ids], axis=0)
    assert not np.allclose(state[key].numpy(), mean)


def test_wrapped_strategy_gets_replies_in_partition_order_and_never_the_truth():
    spy = Spy(fraction_evaluate=0.0, min_train_nodes=1, min_available_nodes=1)
    config, grid, roster, recorder, strategy, arrays = setup(spy)
    one_round(grid, strategy, arrays, config)
    partitions = [roster.slot(m.metadata.src_node_id).partition for m in spy.seen]
    assert partitions == sorted(partitions) and len(partitions) == len(roster)
    assert all(protocol.TRUTH_KEY not in m.content for m in spy.seen)
    # the truth reached the scoring step: the rows carry the true histograms
    rows = recorder.take(1).attack_rows
    assert all(sum(r["true_counts"]) == 20 for r in rows)


def test_frozen_wrapper_computes_but_does_not_apply_the_aggregate():
    inner = FedAvg(fraction_evaluate=0.0, min_train_nodes=1, min_available_nodes=1)
    config, grid, _, _, strategy, arrays = setup(inner, frozen=True)
    sent = arrays.to_torch_state_dict()
    _, _, aggregate = one_round(grid, strategy, arrays, config)
    for key, value in aggregate.to_torch_state_dict().items():
        assert torch.equal(value, sent[key])


def test_a_node_that_does_not_reply_is_a_recorded_failure():
    inner = FedAvg(fraction_evaluate=0.0, min_train_nodes=1, min_available_nodes=1)
    config, grid, roster, recorder, strategy, arrays = setup(inner)
    messages = list(strategy.configure_train(1, arrays, ConfigRecord(to_flat(config)), grid))
    replies = list(grid.send_and_receive(messages))
    silent = replies.pop()  # as if it timed out
    strategy.aggregate_train(1, replies)
    record = recorder.take(1)
    assert record.num_replies == len(roster) - 1
    [failure] = record.failures
    assert failure["node_id"] == silent.metadata.src_node_id
    assert failure["subject"] == roster.slot(silent.metadata.src_node_id).subject
    assert "no reply" in failure["reason"]


def test_a_cohort_smaller_than_the_strategy_needs_is_a_clear_error():
    inner = FedAvg(fraction_evaluate=0.0, min_train_nodes=5, min_available_nodes=5)
    config, grid, _, _, strategy, arrays = setup(inner)
    with pytest.raises(ValueError, match="needs at least 5"):
        strategy.configure_train(1, arrays, ConfigRecord(to_flat(config)), grid)


def test_every_addressed_participant_has_an_update_row():
    inner = FedAvg(fraction_evaluate=0.0, min_train_nodes=1, min_available_nodes=1)
    config, grid, roster, recorder, strategy, arrays = setup(inner)
    messages = list(strategy.configure_train(1, arrays, ConfigRecord(to_flat(config)), grid))
    replies = list(grid.send_and_receive(messages))
    silent = replies.pop()
    strategy.aggregate_train(1, replies)
    rows = {row["partition"]: row for row in recorder.take(1).update_rows}
    assert sorted(rows) == sorted(slot.partition for slot in roster)
    failed = roster.slot(silent.metadata.src_node_id).partition
    assert rows[failed]["status"] == "failed"
    ok = [row for p, row in rows.items() if p != failed]
    assert all(row["status"] == "ok" and row["num_examples"] == 20 for row in ok)
