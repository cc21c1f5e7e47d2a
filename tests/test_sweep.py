"""Sweep files: expansion into runs, fold splits, errors; and a tiny resumable sweep on Ray."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from fl_har.sweep import SweepError, folds_of, load_sweep

TINY = """
[sweep]
name = "tiny"
out = "{out}"
folds = 2
[sweep.pretrain]
epochs = 1

[base.run]
rounds = 1
[base.data]
dataset = "synthetic"
synthetic_subjects = 4
[base.client]
batch_size = 20
[base.attacks]
names = ["ebi", "llbg"]

[grid]
"client.sampler" = ["shuffle", "sequential"]
{extra}
"""


def write(tmp_path, extra="", text=None):
    path = tmp_path / "sweep.toml"
    path.write_text(text or TINY.format(out=tmp_path / "results", extra=extra))
    return path


def test_grid_expands_to_the_cartesian_product(tmp_path):
    sweep = load_sweep(write(tmp_path, '[grid.state]\nuntrained = { "model.init" = "untrained" }\n'
                                       'trained = { "model.init" = "pretrained" }'))
    ids = [run.run_id for run in sweep.runs]
    assert ids == [
        "shuffle-untrained", "shuffle-trained-fold1", "shuffle-trained-fold2",
        "sequential-untrained", "sequential-trained-fold1", "sequential-trained-fold2",
    ]
    fold1 = sweep.runs[1].config
    assert fold1.data.clients == (1, 2) and fold1.data.server_subjects == (3, 4)
    assert fold1.model.init.endswith(".pt") and "fold1of2" in fold1.model.init
    # both samplers' fold-1 runs share one pre-trained model
    assert sweep.runs[1].pretrain_key == sweep.runs[4].pretrain_key
    assert len(sweep.pretrain_jobs) == 2
    job = sweep.pretrain_jobs[sweep.runs[1].pretrain_key]
    assert job.train_subjects == (3, 4) and job.eval_subjects == (1, 2)
    assert sweep.runs[0].config.client.sampler == "shuffle"
    assert sweep.runs[3].axes == {"client.sampler": "sequential", "state": "untrained"}


def test_overrides_apply_to_every_cell(tmp_path):
    sweep = load_sweep(write(tmp_path), ["run.rounds=3"], name="other")
    assert {run.config.run.rounds for run in sweep.runs} == {3}
    assert sweep.out_dir.name == "other"


def test_folds_are_contiguous_and_cover_every_subject():
    assert folds_of(tuple(range(1, 31)), 5)[0] == (1, 2, 3, 4, 5, 6)
    assert sum(len(f) for f in folds_of((1, 2, 3, 4, 5, 6, 7), 3)) == 7
    with pytest.raises(SweepError, match="folds"):
        folds_of((1, 2), 3)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[grid.bad]\nx = "not a table"', "must be a table of config keys"),
        ('"client.batch_size" = [20, "many"]', "expected an integer"),
        ('"sampler" = ["a"]', "must be a config key"),
        ('"client.lr" = []', "has no values"),
    ],
)
def test_bad_sweep_files_name_the_problem(tmp_path, extra, message):
    with pytest.raises(SweepError, match=message):
        load_sweep(write(tmp_path, extra))


def test_unknown_tables_and_missing_files(tmp_path):
    with pytest.raises(SweepError, match="unknown table"):
        load_sweep(write(tmp_path, text="[sweeps]\nname = 'x'\n"))
    with pytest.raises(SweepError, match="does not exist"):
        load_sweep(tmp_path / "none.toml")


def fl_har(*args, cwd):
    return subprocess.run([sys.executable, "-m", "fl_har_app", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, check=False, env=dict(os.environ, COLUMNS="120"))


@pytest.mark.slow
def test_tiny_sweep_runs_once_and_resumes(tmp_path):
    path = write(tmp_path)
    first = fl_har("sweep", str(path), cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    sweep_dir = tmp_path / "results" / "tiny"
    manifest = json.loads((sweep_dir / "manifest.json").read_text())
    assert {c["status"] for c in manifest["cells"].values()} == {"finished"}
    assert {"startup_seconds", "runs_seconds", "sweep_wall_seconds"} <= set(manifest["timing"])
    finished_meta = (sweep_dir / "cells" / "shuffle" / "meta.json").read_text()

    again = fl_har("sweep", str(path), cwd=tmp_path)
    assert again.returncode == 0 and "every run is finished" in again.stdout
    # a run with nothing to do keeps the timing of the one that did the work
    assert json.loads((sweep_dir / "manifest.json").read_text())["timing"][
        "runs_seconds"] == manifest["timing"]["runs_seconds"]

    shutil.rmtree(sweep_dir / "cells" / "sequential")  # as if interrupted before it ran
    resumed = fl_har("sweep", str(path), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "1 already finished" in resumed.stdout
    assert (sweep_dir / "cells" / "shuffle" / "meta.json").read_text() == finished_meta
    assert json.loads((sweep_dir / "cells" / "sequential" / "meta.json").read_text())[
        "status"] == "finished"
