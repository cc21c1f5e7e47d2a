"""Clients as recordings or sessions of subjects (``data.client_unit``): a population larger than
the subjects, built from views of the same data."""

import numpy as np
import pandas as pd
import pytest
from fixtures_data import ramp_recording, tiny_dataset

from clients.har_client import app as client_app
from fl_har.adversary import adversary_subjects
from fl_har.config import ConfigError, load_config
from fl_har.data.errors import DataError
from fl_har.data.units import UNIT_ID_BASE, split_into_units
from fl_har.federation import (
    check_client_windows,
    dataset_for,
    federation_plan,
    participant_rows,
    windows_for,
)
from fl_har.results import RunStore
from strategies.local_grid import LocalGrid
from strategies.server_app import run_server


def two_subjects():
    # subject 1: recordings of 100 and 40 samples; subject 2: one of 250 (50 Hz)
    return tiny_dataset({1: [ramp_recording(100), ramp_recording(40, offset=0.5)],
                         2: [ramp_recording(250, offset=0.25)]})


def test_recordings_become_units_that_view_the_same_samples():
    dataset = two_subjects()
    units = split_into_units(dataset, "recording")
    assert units.dataset.subjects == (1001, 1002, 2001)
    (first,) = units.dataset.recordings[1002]
    original = dataset.recordings[1][1]
    assert np.shares_memory(first.signals, original.signals)  # a view: no sensor data copied
    np.testing.assert_array_equal(first.labels, original.labels)
    assert units.origin[1002].subject == 1 and units.origin[1002].recording == 1
    assert units.owner(2001) == 2
    assert units.units_of([1]) == (1001, 1002)
    assert units.dataset.num_samples == dataset.num_samples


def test_sessions_cut_each_recording_and_a_short_tail_joins_the_last_session():
    dataset = two_subjects()
    # 1 s sessions = 50 samples: 100 -> 2 sessions; 40 -> 1 (shorter than a session, alone);
    # 250 -> 5 sessions of 50 exactly.
    units = split_into_units(dataset, "session", session_minutes=1 / 60)
    spans = {u: (i.recording, i.start, i.stop) for u, i in units.origin.items()}
    assert spans == {1001: (0, 0, 50), 1002: (0, 50, 100), 1003: (1, 0, 40),
                     2001: (0, 0, 50), 2002: (0, 50, 100), 2003: (0, 100, 150),
                     2004: (0, 150, 200), 2005: (0, 200, 250)}
    # 0.8 s sessions = 40 samples: 250 -> 6 x 40 + a 10-sample tail (< 20) merged into the 6th
    units = split_into_units(dataset, "session", session_minutes=0.8 / 60)
    last = max(u for u in units.origin if units.owner(u) == 2)
    assert (units.origin[last].start, units.origin[last].stop) == (200, 250)
    # a 30-sample tail (>= half of 40) is its own session
    units = split_into_units(tiny_dataset({1: [ramp_recording(110)]}), "session",
                             session_minutes=0.8 / 60)
    assert [(i.start, i.stop) for i in units.origin.values()] == [(0, 40), (40, 80), (80, 110)]


def test_held_subjects_stay_whole_and_subject_units_leave_the_data_alone():
    dataset = two_subjects()
    units = split_into_units(dataset, "recording", keep_whole=[2])
    assert units.dataset.subjects == (2, 1001, 1002)
    assert units.dataset.recordings[2] == dataset.recordings[2]
    same = split_into_units(dataset, "subject")
    assert same.dataset is dataset and same.owner(1) == 1


def test_unit_ids_that_would_collide_or_overflow_are_refused():
    # subject 0's units are 1, 2, ...: they meet a whole subject 2
    data = tiny_dataset({0: [ramp_recording(60), ramp_recording(60)], 2: [ramp_recording(60)]})
    with pytest.raises(DataError, match="id 2"):
        split_into_units(data, "recording", keep_whole=[2])
    long = tiny_dataset({1: [ramp_recording(UNIT_ID_BASE * 2)]})
    with pytest.raises(DataError, match="at most 999"):
        split_into_units(long, "session", session_minutes=1 / 3000)  # one sample per session
    with pytest.raises(DataError, match="session_minutes > 0"):
        split_into_units(long, "session")
    with pytest.raises(DataError, match="expected one of"):
        split_into_units(long, "device")


@pytest.mark.parametrize(("overrides", "message"), [
    (["data.client_unit='session'"], "needs data.session_minutes > 0"),
    (["data.session_minutes=2.0"], "applies only to data.client_unit"),
    (["data.client_unit='person'"], "data.client_unit"),
    (["data.client_unit='session'", "data.session_minutes=-1.0"], "needs data.session_minutes"),
])
def test_bad_unit_settings_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, ["data.dataset=synthetic", *overrides])


SYNTHETIC = ["data.dataset=synthetic", "data.synthetic_subjects=4", "data.server_subjects=4",
             "run.regime=train"]


def test_plan_clients_are_the_units_of_the_named_subjects():
    config = load_config(None, [*SYNTHETIC, "data.clients=1-2", "data.client_unit='session'",
                                "data.session_minutes=0.5"])
    plan = federation_plan(config)
    # synthetic subjects: 2 recordings of 3000 samples (60 s) -> 2 sessions of 30 s each
    assert plan.clients == (1001, 1002, 1003, 1004, 2001, 2002, 2003, 2004)
    assert 4 in plan.subjects and 3001 in plan.subjects  # server stays whole; unused 3 is split
    assert plan.owner(2003) == 2 and plan.owner(4) == 4
    assert len(windows_for(config, 1001).y) == (1500 - 50) // 25 + 1
    rows = pd.DataFrame(participant_rows(config, plan)).set_index("participant")
    assert rows.loc[4, "role"] == "server" and rows.loc[3001, "role"] == "unused"
    assert rows.loc[1002, ["subject", "recording", "start_s", "end_s"]].tolist() == [1, 0, 30, 60]
    # the adversary names subjects: all their units are malicious; a unit id names one unit
    attack = load_config(None, [*SYNTHETIC, "data.clients=1-2", "data.client_unit='session'",
                                "data.session_minutes=0.5", "adversary.clients=2",
                                "adversary.target=1"])
    assert adversary_subjects(attack, plan.clients, plan.owners) == (2001, 2002, 2003, 2004)
    one = load_config(None, [*SYNTHETIC, "data.client_unit='session'", "data.session_minutes=0.5",
                             "adversary.clients=1003", "adversary.target=1"])
    assert adversary_subjects(one, plan.clients, plan.owners) == (1003,)
    with pytest.raises(ConfigError, match=r"subjects \[3\] are not clients"):
        adversary_subjects(load_config(None, [*SYNTHETIC, "adversary.clients=3",
                                              "adversary.target=1"]), plan.clients, plan.owners)


def test_a_session_with_fewer_windows_than_a_batch_is_named_before_the_run():
    config = load_config(None, [*SYNTHETIC, "data.client_unit='session'",
                                "data.session_minutes=0.25", "client.batch_size=100"])
    with pytest.raises(ConfigError, match=r"client 1001 \(subject 1, session\) has 29 windows.*"
                                          "longer data.session_minutes"):
        check_client_windows(config, federation_plan(config))


def test_a_run_with_session_clients_attacks_every_unit_and_records_who_it_is(tmp_path):
    config = load_config(None, [*SYNTHETIC, "data.clients=1-2", "data.client_unit='recording'",
                                "client.batch_size=20", "run.rounds=2", "run.clients_per_round=3",
                                "attacks.names=llg,ebi"])
    store = RunStore.create(tmp_path / "run", config.to_dict(), seed=config.run.seed)
    grid = LocalGrid(client_app, len(dataset_for(config).subjects), seed=3)
    assert run_server(grid, config, store) == "finished"
    table = store.attack_table()
    assert set(table["subject"]) <= {1001, 1002, 2001, 2002}
    assert table.groupby("round")["subject"].nunique().tolist() == [3, 3]  # the cohort: 3 of 4
    participants = pd.read_csv(tmp_path / "run" / "participants.csv")
    clients = participants[participants["role"] == "client"]
    assert clients["participant"].tolist() == [1001, 1002, 2001, 2002]
    assert clients["subject"].tolist() == [1, 1, 2, 2]
