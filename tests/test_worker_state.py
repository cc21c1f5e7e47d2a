"""What a worker process keeps between the clients it serves: one model, a bounded cache."""

import numpy as np
import pandas as pd
import pytest
import torch

from clients import har_client
from clients.har_client import app as client_app
from fl_har import federation
from fl_har.config import load_config
from fl_har.federation import Participant, federation_plan, initial_model
from fl_har.results import RunStore
from strategies.local_grid import LocalGrid
from strategies.server_app import run_server

BASE = ["data.dataset=synthetic", "data.synthetic_subjects=4", "data.clients=1-3",
        "data.eval_subjects=4", "client.batch_size=21", "client.local_steps=3",
        "run.regime=train", "attacks.names=ebi,llbg", "run.rounds=2"]


@pytest.mark.parametrize("model", ["deepconvlstm", "tinyhar"])
def test_participants_share_one_model_and_nothing_carries_over(model):
    config = load_config(None, [*BASE, f"model.name={model!r}", "client.privacy='ldp'",
                                "client.ldp_noise=0.01"])
    state = initial_model(config, federation_plan(config)).state_dict()
    federation._working_model.cache_clear()
    alone = Participant(config, 2).train_round(state, 1)
    federation._working_model.cache_clear()
    # subject 1 trains first in the same process: the shared model is left with its weights,
    # its TinyHAR BatchNorm statistics and whatever else a round leaves behind
    Participant(config, 1).train_round(state, 1)
    after_other = Participant(config, 2).train_round(state, 1)
    assert federation._working_model.cache_info().currsize == 1  # one model served both
    assert alone.state_dict.keys() == after_other.state_dict.keys()
    for name, value in alone.state_dict.items():
        assert torch.equal(value, after_other.state_dict[name]), name
    np.testing.assert_array_equal(alone.label_counts, after_other.label_counts)


def _attack_rows(tmp_path, name: str) -> pd.DataFrame:
    config = load_config(None, BASE)
    store = RunStore.create(tmp_path / name, config.to_dict(), seed=0)
    assert run_server(LocalGrid(client_app, 4), config, store) == "finished"
    return store.attack_table().sort_values(["round", "partition", "attack"], ignore_index=True)


def test_a_process_keeps_only_recent_participants_and_evicting_changes_nothing(
        tmp_path, monkeypatch):
    reference = _attack_rows(tmp_path, "cached")
    monkeypatch.setattr(har_client, "MAX_CACHED_PARTICIPANTS", 1)
    har_client._cache["config"] = None
    evicting = _attack_rows(tmp_path, "evicting")
    assert len(har_client._cache["participants"]) == 1  # 3 clients served, 1 kept
    pd.testing.assert_frame_equal(reference.drop(columns="attack_seconds"),
                                  evicting.drop(columns="attack_seconds"))
    assert len(reference) == 2 * 3 * 2  # rounds x clients x attacks
