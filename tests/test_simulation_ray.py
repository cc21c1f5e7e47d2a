"""End to end through the command line and Flower's real simulation engine (Ray)."""

import json
import os
import subprocess
import sys
import time

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

SMALL = [
    "--set", "data.dataset=synthetic",
    "--set", "data.synthetic_subjects=3",
    "--set", "client.batch_size=20",
    "--set", "run.rounds=2",
    "--set", "attacks.names=llg,ebi,llbg,ilrg",
]


def fl_har(*args, cwd):
    env = dict(os.environ, COLUMNS="120")
    return subprocess.run(
        [sys.executable, "-m", "fl_har_app", *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=600, check=False,
    )


def ray_processes():
    out = subprocess.run(["pgrep", "-f", "raylet|gcs_server|ray::"], capture_output=True, text=True, check=False)
    return [line for line in out.stdout.split() if line]


def test_run_on_ray_writes_results_and_prints_the_leakage_table(tmp_path):
    before = ray_processes()
    result = fl_har("run", *SMALL, "--out", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Leakage per attack" in result.stdout
    for attack in ("llg", "ebi", "llbg", "ilrg"):
        assert attack in result.stdout
    run_dir = tmp_path / "hapt-default"
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "finished"
    table = pd.read_parquet(run_dir / "attacks.parquet")
    assert len(table) == 2 * 3 * 4
    assert sorted(table["subject"].unique()) == [1, 2, 3]
    # nothing left running (Ray's daemons take a moment to exit after shutdown)
    deadline = time.monotonic() + 20
    while not set(ray_processes()) <= set(before) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert set(ray_processes()) <= set(before)


def test_failing_client_on_ray_exits_non_zero_and_keeps_finished_rounds(tmp_path):
    result = fl_har("run", *SMALL, "--out", str(tmp_path), "--inject-failure", "2:2", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "client update(s) failed" in result.stderr
    run_dir = tmp_path / "hapt-default"
    table = pd.read_parquet(run_dir / "attacks.parquet")
    assert len(table[table["round"] == 1]) == 3 * 4
    assert len(table[table["round"] == 2]) == 2 * 4
    failures = pd.read_csv(run_dir / "failures.csv")
    assert list(failures["partition"]) == [2]
