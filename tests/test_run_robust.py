"""No silent failure: bad input fails before Ray starts, faults are recorded with their cause,
Ctrl-C / SIGTERM stop a run within seconds and leave it resumable, nothing of Ray outlives it."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w
from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp.strategy import FedAvg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import protocol
from attacks.registry import available, resolve_options
from clients.har_client import app as client_app
from fl_har.config import (
    _SECTION_TYPES,
    ConfigError,
    ExperimentConfig,
    FaultsConfig,
    check_attacks,
    from_flat,
    load_config,
    to_flat,
)
from fl_har.faults import client_faults
from fl_har.federation import federation_plan, initial_model
from fl_har.results import RunStore
from fl_har.stopping import RunStopped, StopSignal
from fl_har.sweep import SweepError, load_sweep
from fl_har_app import reaper
from fl_har_app.launcher import ray_init_args, resolve_ray_address
from fl_har_app.main import main
from strategies.curious import CuriousStrategy
from strategies.leakage import LeakageObserver
from strategies.local_grid import LocalGrid
from strategies.recorder import RoundRecorder
from strategies.roster import client_roster
from strategies.server_app import make_context_factory, run_server

SMALL = ["data.dataset=synthetic", "data.synthetic_subjects=3", "client.batch_size=20",
         "attacks.names=llg,ebi"]


def cli(tmp_path, *args):
    sets = [item for s in SMALL for item in ("--set", s)]
    return main(["run", *sets, "--out", str(tmp_path), *args])


# -- 3. everything that can be checked is checked before Ray starts ----------------------------


def ray_is_running() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


@pytest.mark.parametrize(("override", "expected"), [
    ("client.lr=inf", "client.lr: expected a finite number"),
    ("client.lr=nan", "client.lr: expected a finite number"),
    ("attacks.llbg_confidence=5", "attacks.llbg_confidence: expected a value < 1"),
    ("attacks.llbg_confidence=1.0", "attacks.llbg_confidence: expected a value < 1"),
    ("attacks.no_such_option=1", "unknown attack option(s) no_such_option"),
    ("simulation.timeout=0", "simulation.timeout must be > 0"),
    ("simulation.timeout=-3", "simulation.timeout must be > 0"),
    ("run.seed=-1", "run.seed must be an integer >= 0"),
    ("model.init='/nonexistent/model.pt'", "checkpoint /nonexistent/model.pt does not exist"),
    ("data.dataset='wear'", "data folder /nonexistent-wear does not exist"),
    ("faults.dropout=1.5", "faults.dropout must be a probability"),
    ("faults.crash_round=1", "faults.crash_round (>= 1) and faults.crash_clients"),
])
def test_bad_input_fails_in_seconds_before_ray_and_leaves_no_run_directory(
        tmp_path, capsys, override, expected):
    extra = ["--set", "data.root=/nonexistent-wear"] if "wear" in override else []
    started = time.perf_counter()
    code = cli(tmp_path, "--set", override, *extra)
    elapsed = time.perf_counter() - started
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in " ".join(err.split())
    assert elapsed < 5
    assert not (tmp_path / "hapt-default").exists()
    assert not ray_is_running()


def test_valid_llbg_confidences_are_accepted():
    for value in (-1.0, 0.0, 0.5, 0.999):
        config = check_attacks(load_config(None, [f"attacks.llbg_confidence={value}"]),
                               available(), resolve_options)
        assert dict(config.attacks.options)["llbg_confidence"] == value


def test_resume_may_extend_a_finished_run(tmp_path):
    config = load_config(None, [*SMALL, "run.rounds=1"])
    store = RunStore.create(tmp_path / "r", config.to_dict(), seed=0)
    store.record_round(1, [], {"round": 1}, [], None)
    store.finish("finished")
    longer = config.replace(**{"run.rounds": 3})
    resumed = RunStore.resume(tmp_path / "r", longer.to_dict())
    assert resumed.last_finished_round == 1
    assert resumed.config["run"]["rounds"] == 3


# -- 6. messages name the flags that exist and advice that helps ----------------------------------


def test_existing_run_directory_names_the_overwrite_flag(tmp_path, capsys):
    (tmp_path / "hapt-default").mkdir()
    (tmp_path / "hapt-default" / "notes.txt").write_text("x")
    assert cli(tmp_path) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--overwrite" in err and "--resume" in err
    assert "overwrite=True" not in err


def finished_run(tmp_path, status, message=""):
    config = load_config(None, [*SMALL, "run.rounds=1", f"run.out='{tmp_path.as_posix()}'"])
    store = RunStore.create(tmp_path / "hapt-default", config.to_dict(), seed=0)
    failures = [{"partition": 1, "reason": "boom"}] if status == "failed" else []
    store.record_round(1, [], {"round": 1}, failures, None)
    store.finish(status, message)


def test_resuming_a_run_that_failed_after_all_rounds_says_what_to_do_instead(tmp_path, capsys):
    finished_run(tmp_path, "failed", "1 client update(s) failed (see failures.csv)")
    started = time.perf_counter()
    assert cli(tmp_path, "--set", "run.rounds=1", "--resume") == 2
    assert time.perf_counter() - started < 5
    err = " ".join(capsys.readouterr().err.split())
    assert "ran all 1 rounds and ended failed" in err
    assert "--overwrite" in err and "run.allow_client_failures" in err
    assert "continue with --resume" not in err
    assert not ray_is_running()


def test_resuming_a_finished_run_explains_how_to_extend_it(tmp_path, capsys):
    finished_run(tmp_path, "finished")
    assert cli(tmp_path, "--set", "run.rounds=1", "--resume") == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "already finished all 1 rounds" in out and "raise run.rounds" in out
    assert not ray_is_running()


# -- 4. config files and --set values: a valid config or a ConfigError naming the file -----------


def test_bom_is_named_with_the_file_and_the_fix(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_bytes(b"\xef\xbb\xbf[run]\nrounds = 2\n")
    with pytest.raises(ConfigError, match="byte-order mark") as info:
        load_config(path)
    assert str(path) in str(info.value) and "without BOM" in str(info.value)


def test_a_file_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[run]\nname = "caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8") as info:
        load_config(path)
    assert str(path) in str(info.value) and "line 2" in str(info.value)


def test_nul_bytes_are_refused_on_the_command_line_and_in_escapes(tmp_path):
    with pytest.raises(ConfigError, match="U\\+0000"):
        load_config(None, ["run.name=a\x00b"])
    path = tmp_path / "nul.toml"
    path.write_text('[run]\nname = "a\\u0000b"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="run.name.*U\\+0000") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_numbers_too_large_are_config_errors(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text(f"[client]\nlr = {'9' * 400}\n[run]\nseed = 5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="client.lr: expected a finite number"):
        load_config(path)
    with pytest.raises(ConfigError, match="64-bit"):
        load_config(None, [f"run.seed={2**64}"])
    with pytest.raises(ConfigError, match="more than"):
        load_config(None, ["data.clients='1-1000000000000'"])


def _expect_config_or_config_error(load):
    try:
        config = load()
    except ConfigError as exc:
        assert str(exc)
    else:
        assert isinstance(config, ExperimentConfig)


KNOWN_KEYS = {name: [f.name for f in dataclasses.fields(t)]
              for name, t in _SECTION_TYPES.items()}
scalars = st.one_of(
    st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
)
values = st.one_of(scalars, st.lists(scalars, max_size=4))
sections = st.sampled_from([*KNOWN_KEYS, "extra"])


@st.composite
def config_documents(draw):
    doc = {}
    for section in draw(st.lists(sections, max_size=4, unique=True)):
        keys = KNOWN_KEYS.get(section, ["x"])
        names = draw(st.lists(st.one_of(st.sampled_from(keys), st.text(min_size=1, max_size=8)),
                              max_size=4, unique=True))
        doc[section] = {name: draw(values) for name in names}
    return doc


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=config_documents())
def test_any_toml_config_gives_a_config_or_a_config_error(tmp_path, doc):
    path = tmp_path / "h.toml"
    path.write_text(tomli_w.dumps(doc), encoding="utf-8")
    _expect_config_or_config_error(lambda: load_config(path))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=200),
                      st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_any_file_bytes_give_a_config_or_a_config_error(tmp_path, data):
    path = tmp_path / "raw.toml"
    path.write_bytes(data)
    _expect_config_or_config_error(lambda: load_config(path))


@settings(max_examples=100, deadline=None)
@given(key=st.one_of(st.sampled_from([f"{s}.{k}" for s, ks in KNOWN_KEYS.items() for k in ks]),
                     st.text(max_size=15)),
       value=st.text(max_size=40))
def test_any_set_string_gives_a_config_or_a_config_error(key, value):
    _expect_config_or_config_error(lambda: load_config(None, [f"{key}={value}"]))


# -- 5. a sweep's name cannot leave `out` --------------------------------------------------------


@pytest.mark.parametrize("name", ["../../x", "/tmp/elsewhere", "..", "a/b", ""])
def test_sweep_names_that_are_paths_are_refused(tmp_path, name):
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps({"sweep": {"name": name, "out": str(tmp_path / "out")},
                                   "base": {"data": {"dataset": "synthetic"}}}))
    with pytest.raises(SweepError, match="plain folder name"):
        load_sweep(path)
    ok = tmp_path / "ok.toml"
    ok.write_text(tomli_w.dumps({"sweep": {"name": "fine", "out": str(tmp_path / "out")},
                                "base": {"data": {"dataset": "synthetic"}}}))
    with pytest.raises(SweepError, match="--name"):
        load_sweep(ok, name=name)
    assert load_sweep(ok).out_dir == tmp_path / "out" / "fine"


# -- 8. [faults]: validated, round-trips, seeded, recorded with the cause -------------------------


def test_faults_section_round_trips_through_flowers_flat_form():
    config = load_config(None, [*SMALL, "run.rounds=3", "faults.dropout=0.25",
                                "faults.straggler_probability=0.5", "faults.straggler_delay=2.5",
                                "faults.crash_round=2", "faults.crash_clients='1,3'"])
    assert config.faults == FaultsConfig(0.25, 0.5, 2.5, 2, (1, 3))
    assert from_flat(to_flat(config)) == config
    assert from_flat(to_flat(ExperimentConfig())) == ExperimentConfig()


@pytest.mark.parametrize(("overrides", "message"), [
    (["faults.straggler_probability=0.5"], "needs a faults.straggler_delay > 0"),
    (["faults.straggler_delay=-1"], "straggler_delay must be >= 0"),
    (["faults.crash_clients=[1]"], "together"),
    (["faults.crash_round=9", "faults.crash_clients=[1]"], "after the last round"),
    (["data.clients='1-2'", "faults.crash_round=1", "faults.crash_clients=[3]"],
     "not in data.clients"),
])
def test_faults_are_validated(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [*SMALL, "run.rounds=2", *overrides])


def test_fault_draws_are_seeded_per_round_and_partition_with_the_configured_rates():
    config = load_config(None, ["faults.dropout=0.3", "faults.straggler_probability=0.2",
                                "faults.straggler_delay=4"])
    draws = [client_faults(config, p, p + 1, r) for r in range(1, 101) for p in range(20)]
    assert draws == [client_faults(config, p, p + 1, r) for r in range(1, 101) for p in range(20)]
    dropout = np.mean([d.dropout for d in draws])
    slow = np.mean([d.delay == 4.0 for d in draws])
    assert abs(dropout - 0.3) < 0.04 and abs(slow - 0.2) < 0.04
    other_seed = config.replace(**{"run.seed": 1})
    assert draws != [client_faults(other_seed, p, p + 1, r) for r in range(1, 101)
                     for p in range(20)]
    # the dropout draw does not move when only the straggler probability changes
    more_slow = config.replace(**{"faults.straggler_probability": 0.9})
    assert [d.dropout for d in draws] == [client_faults(more_slow, p, p + 1, r).dropout
                                          for r in range(1, 101) for p in range(20)]


FAULTY = [*SMALL, "data.synthetic_subjects=4", "run.rounds=2", "faults.dropout=0.4",
          "faults.crash_round=1", "faults.crash_clients=[2]"]


def local_run(tmp_path, *overrides):
    config = load_config(None, [*FAULTY, *overrides])
    store = RunStore.create(tmp_path / "run", config.to_dict(), seed=config.run.seed)
    status = run_server(LocalGrid(client_app, 4, seed=1), config, store)
    return config, status, store


def test_faults_are_recorded_with_their_cause_and_do_not_abort_an_allowed_run(tmp_path):
    config, status, store = local_run(tmp_path, "run.allow_client_failures=true")
    assert status == "finished" and store.meta["status"] == "finished"
    updates = store.update_table()
    assert len(updates) == 2 * 4  # every addressed client, every round
    for row in updates.itertuples():
        faults = client_faults(config, row.partition, row.subject, row.round)
        expected = "dropout" if faults.dropout else "crash" if faults.crash else ""
        assert row.cause == expected, row
        assert row.status == ("failed" if expected else "ok")
    causes = set(updates["cause"])
    assert {"dropout", "crash"} <= causes  # the seed exercises both
    failures = store.failure_table()
    assert len(failures) == (updates["status"] == "failed").sum()
    attacked = store.attack_table()[["round", "subject"]].drop_duplicates()
    ok = updates[updates["status"] == "ok"][["round", "subject"]]
    assert sorted(map(tuple, attacked.values)) == sorted(map(tuple, ok.values))


def test_faults_fail_the_run_unless_allowed(tmp_path):
    _, status, store = local_run(tmp_path)
    assert status == "failed"
    assert "allow_client_failures" in store.meta["message"]
    assert store.last_finished_round == 2  # every round still ran and was kept


def test_missing_and_error_replies_are_failures_with_a_cause():
    config = load_config(None, [*SMALL, "data.synthetic_subjects=4", "faults.crash_round=1",
                                "faults.crash_clients=[1]"])
    grid = LocalGrid(client_app, 4, seed=2)
    config, plan, roster = client_roster(grid, config, federation_plan(config))
    recorder = RoundRecorder()
    strategy = CuriousStrategy(
        FedAvg(fraction_evaluate=0.0, min_train_nodes=1, min_available_nodes=1), roster=roster,
        observer=LeakageObserver(config, make_context_factory(config, plan)), recorder=recorder)
    arrays = ArrayRecord(initial_model(config, plan).state_dict())
    messages = list(strategy.configure_train(1, arrays, ConfigRecord(to_flat(config)), grid))
    replies = list(grid.send_and_receive(messages))
    crashed = [m for m in replies if m.has_error()]
    assert [m.error.code for m in crashed] == [protocol.CLIENT_CRASHED]
    silent = next(m for m in replies if not m.has_error())
    replies.remove(silent)
    strategy.aggregate_train(1, replies)
    rows = {row["subject"]: row for row in recorder.take(1).update_rows}
    assert rows[1]["cause"] == "crash"
    assert rows[roster.slot(silent.metadata.src_node_id).subject]["cause"] == "timeout"
    assert sum(row["status"] == "ok" for row in rows.values()) == len(roster) - 2


# -- 1. the stop handshake: nothing is committed after a stop request -------------------------


def test_a_stop_request_closes_the_store_and_refuses_later_commits(tmp_path):
    config = load_config(None, [*SMALL, "run.rounds=3"])
    store = RunStore.create(tmp_path / "r", config.to_dict(), seed=0)
    stop = StopSignal(resume_hint="continue with --resume")
    stop.attach(store)
    with stop.commit():
        store.record_round(1, [], {"round": 1}, [], None)
    assert stop.request("interrupted by SIGINT") is store
    assert store.meta["status"] == "failed"
    assert store.meta["message"] == "interrupted by SIGINT after round 1; continue with --resume"
    with pytest.raises(RunStopped), stop.commit():
        store.record_round(2, [], {"round": 2}, [], None)
    resumed = RunStore.resume(tmp_path / "r", config.to_dict())
    assert resumed.last_finished_round == 1


# -- 9. attaching to a Ray cluster ----------------------------------------------------------------


def test_ray_address_from_the_flag_or_the_environment(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert resolve_ray_address(None) is None
    assert resolve_ray_address("127.0.0.1:6379") == "127.0.0.1:6379"
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:7000")
    assert resolve_ray_address(None) == "127.0.0.1:7000"
    assert resolve_ray_address("127.0.0.1:6379") == "127.0.0.1:6379"
    attach = ray_init_args("127.0.0.1:7000")
    assert attach["address"] == "127.0.0.1:7000"
    assert not {"num_cpus", "num_gpus", "include_dashboard"} & set(attach)
    local = ray_init_args(None)
    assert local["include_dashboard"] is False and local["address"] == "local"


# -- slow: real Flower/Ray runs in a subprocess ---------------------------------------------------


def start_run(out: Path, *sets: str, extra: tuple[str, ...] = (),
              env: dict | None = None) -> subprocess.Popen:
    args = [sys.executable, "-m", "fl_har_app", "run", "--out", str(out), *extra]
    for item in [*SMALL, "model.name=tinyhar", "attacks.names=llg", *sets]:
        args += ["--set", item]
    env = dict(os.environ, COLUMNS="120", **(env or {}))
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def wait_for_round(proc: subprocess.Popen, meta: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if json.loads(meta.read_text())["last_finished_round"] >= 1:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail("no round was recorded")


@pytest.mark.slow
def test_ctrl_c_stops_within_seconds_keeps_rounds_and_resume_continues(tmp_path):
    proc = start_run(tmp_path, "run.rounds=500")
    meta = tmp_path / "hapt-default" / "meta.json"
    wait_for_round(proc, meta)
    ray_tree = reaper.descendants(proc.pid)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - sent < 20
    assert "interrupted" in err and "--resume" in err
    state = json.loads(meta.read_text())
    done = state["last_finished_round"]
    assert done >= 1 and state["status"] == "failed"
    assert "interrupted by SIGINT" in state["message"]
    deadline = time.monotonic() + 10  # killed processes (and the watchdog) take a moment
    while [pid for pid in ray_tree if reaper.alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in ray_tree if reaper.alive(pid)]
    rounds = pd.read_parquet(tmp_path / "hapt-default" / "rounds.parquet")
    assert list(rounds["round"]) == list(range(1, done + 1))

    resumed = subprocess.run(
        [sys.executable, "-m", "fl_har_app", "run", "--out", str(tmp_path), "--resume",
         *[x for s in [*SMALL, "model.name=tinyhar", "attacks.names=llg",
                       f"run.rounds={done + 1}"] for x in ("--set", s)]],
        capture_output=True, text=True, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    state = json.loads(meta.read_text())
    assert state["status"] == "finished" and state["last_finished_round"] == done + 1


def session_dirs(pids):
    """The Ray session folders named on the command lines of ``pids``."""
    dirs = set()
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        dirs.update(re.findall(r"--session[-_]dir=(\S*?/session_[^/\s\x00]+)", cmdline))
    return dirs


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_nothing_of_the_ray_session_outlives_a_terminated_or_killed_driver(tmp_path, sig):
    proc = start_run(tmp_path, "run.rounds=500")
    wait_for_round(proc, tmp_path / "hapt-default" / "meta.json")
    tree = reaper.descendants(proc.pid)
    sessions = session_dirs(tree)
    assert any(reaper.session_processes(session) for session in sessions)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode == (143 if sig == signal.SIGTERM else -signal.SIGKILL)
    deadline = time.monotonic() + 15
    def left() -> list[int]:
        return [p for p in tree if reaper.alive(p)] + [
            p for session in sessions for p in reaper.session_processes(session)]

    while time.monotonic() < deadline and left():
        time.sleep(0.25)
    assert not left(), sessions


@pytest.mark.slow
def test_stragglers_time_out_and_every_fault_is_recorded_on_ray(tmp_path):
    base = load_config(None, [*SMALL, "data.synthetic_subjects=4", "run.rounds=1",
                              "faults.dropout=0.3", "faults.straggler_probability=0.3",
                              "faults.straggler_delay=40"])
    # a seed whose round 1 has one straggler, one dropout and two clients on time
    for seed in range(200):
        config = base.replace(**{"run.seed": seed})
        faults = [client_faults(config, p, p + 1, 1) for p in range(4)]
        slow = [f.delay > 0 and not f.dropout for f in faults]
        dropped = [f.dropout for f in faults]
        if sum(slow) == 1 and sum(dropped) == 1:
            break
    proc = start_run(tmp_path, "data.synthetic_subjects=4", "run.rounds=1", f"run.seed={seed}",
                     "faults.dropout=0.3", "faults.straggler_probability=0.3",
                     "faults.straggler_delay=40", "simulation.timeout=20",
                     "run.allow_client_failures=true")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out + err
    updates = pd.read_parquet(tmp_path / "hapt-default" / "updates.parquet")
    causes = dict(zip(updates["partition"], updates["cause"], strict=True))
    assert causes == {p: "timeout" if slow[p] else "dropout" if dropped[p] else ""
                      for p in range(4)}


def raylet_of(pid: int) -> int | None:
    """The raylet (Ray node) a worker process runs under."""
    while pid > 1:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        if b"raylet/raylet" in cmdline.split(b"\0")[0]:
            return pid
        pid = int(stat[stat.rfind(")") + 2:].split()[1])
    return None


def client_actor_nodes(root: int) -> set[int]:
    nodes = set()
    for pid in reaper.descendants(root):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"ClientAppActor" in cmdline:
            node = raylet_of(pid)
            if node is not None:
                nodes.add(node)
    return nodes


@pytest.mark.slow
def test_attached_two_node_cluster_runs_clients_on_both_nodes_with_local_attack_rows(
        tmp_path, monkeypatch):
    import ray
    from ray.cluster_utils import Cluster

    # Cluster() records itself in /tmp/ray/ray_current_cluster, where any plain ray.init() on
    # this machine would find it: keep it private to this test.
    monkeypatch.setattr(ray._private.utils, "write_ray_address", lambda *a, **k: None)
    sets = ("run.rounds=2", "attacks.names=llg,ebi")
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False})
    nodes: set[int] = set()
    try:
        cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        cluster.wait_for_nodes()
        # Ray rewrites a 127.0.0.1 address to the host's network address (for multi-host
        # clusters), where this loopback-only cluster does not listen; this keeps it on loopback.
        proc = start_run(tmp_path / "cluster", *sets, extra=("--ray-address", cluster.address),
                         env={"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})
        while proc.poll() is None:
            nodes |= client_actor_nodes(os.getpid())
            time.sleep(0.3)
        out, err = proc.communicate()
        assert proc.returncode == 0, out + err
    finally:
        cluster.shutdown()
    assert len(nodes) == 2  # the two raylets of the cluster each ran a client actor
    local = start_run(tmp_path / "local", *sets)
    out, err = local.communicate(timeout=600)
    assert local.returncode == 0, out + err
    drop = ["attack_seconds"]
    on_cluster = pd.read_parquet(tmp_path / "cluster" / "hapt-default" / "attacks.parquet")
    on_one = pd.read_parquet(tmp_path / "local" / "hapt-default" / "attacks.parquet")
    assert len(on_cluster) == 2 * 3 * 2
    pd.testing.assert_frame_equal(on_cluster.drop(columns=drop), on_one.drop(columns=drop))


def test_a_sweep_with_a_missing_checkpoint_fails_before_writing_anything(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps({
        "sweep": {"name": "grid", "out": str(tmp_path / "out")},
        "base": {"data": {"dataset": "synthetic"}, "model": {"init": str(tmp_path / "no.pt")}},
        "grid": {"client.sampler": ["shuffle", "sequential"]},
    }))
    started = time.perf_counter()
    assert main(["sweep", str(path)]) == 2
    assert time.perf_counter() - started < 5
    assert "no.pt does not exist" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "out").exists()
    assert not ray_is_running()


def test_runs_made_before_a_config_key_existed_can_still_be_resumed(tmp_path):
    from fl_har.results import ResultsError
    from fl_har_app.run_cmd import resume_view

    config = load_config(None, [*SMALL, "run.rounds=2"])
    old = config.to_dict()
    del old["faults"]  # a run directory from before [faults]
    RunStore.create(tmp_path / "old", old, seed=0)
    with pytest.raises(ResultsError, match="faults.dropout: stored absent"):
        RunStore.resume(tmp_path / "old", config.to_dict())
    changed = config.replace(**{"faults.dropout": 0.5})
    with pytest.raises(ResultsError, match="faults.dropout: stored absent, given 0.5"):
        RunStore.resume(tmp_path / "old", resume_view(changed, tmp_path / "old"))
    store = RunStore.resume(tmp_path / "old", resume_view(config, tmp_path / "old"))
    assert store.last_finished_round == 0 and "faults" not in store.config
