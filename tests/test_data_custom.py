"""The ``custom`` layout (bring your own data): loading CSV and Parquet, label maps, recordings and
gaps in time, every bad-input case, ``fl-har data check`` and the example converter."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fl_har.config import ConfigError, load_config
from fl_har.data import DataError, load_dataset
from fl_har.data.custom import check_custom_folder
from fl_har_app import main

ROOT = Path(__file__).resolve().parents[1]
LABELS_TOML = '''sampling_rate = 10
[classes]
-1 = "null"
7 = "walking"
3 = "cycling"
'''


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FL_HAR_CACHE", str(tmp_path_factory.mktemp("cache")))


def _frame(n: int, seed: int, **extra) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "ax": rng.normal(size=n).astype(np.float32),
        "ay": rng.normal(size=n).astype(np.float32),
        "label": rng.choice([-1, 3, 7], size=n),
        **extra,
    })


def _folder(tmp_path: Path, frames: dict[str, pd.DataFrame], labels: str = LABELS_TOML,
            label_file: str = "labels.toml") -> Path:
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    (folder / label_file).write_text(labels)
    for name, frame in frames.items():
        if name.endswith(".parquet"):
            frame.to_parquet(folder / name, index=False)
        else:
            frame.to_csv(folder / name, index=False)
    return folder


def test_csv_and_parquet_load_with_label_ids_mapped(tmp_path):
    a, b = _frame(120, 1), _frame(90, 2)
    folder = _folder(tmp_path, {"sbj_4.csv": a, "subject-09.parquet": b})
    dataset = load_dataset("custom", root=folder)
    # activities in ascending file id: 3 -> 1 (cycling), 7 -> 2 (walking); -1 is null -> 0
    assert dataset.class_names == ("null", "cycling", "walking")
    assert dataset.channel_names == ("ax", "ay")
    assert dataset.subjects == (4, 9)
    assert dataset.sampling_rate == 10.0
    expected = {-1: 0, 3: 1, 7: 2}
    for subject, frame in ((4, a), (9, b)):
        (rec,) = dataset.recordings[subject]
        np.testing.assert_array_equal(rec.signals, frame[["ax", "ay"]].to_numpy(np.float32))
        np.testing.assert_array_equal(rec.labels, [expected[v] for v in frame["label"]])


def test_labels_csv_and_channel_order_taken_from_the_first_file(tmp_path):
    a = _frame(60, 1)
    b = _frame(60, 2)[["label", "ay", "ax"]]  # other column order
    folder = _folder(tmp_path, {"s1.csv": a, "s2.csv": b},
                     labels="id,name\n-1,null\n3,cycling\n7,walking\n", label_file="labels.csv")
    dataset = load_dataset("custom", root=folder)
    assert dataset.channel_names == ("ax", "ay")
    assert dataset.sampling_rate == 50.0
    np.testing.assert_array_equal(dataset.recordings[2][0].signals,
                                  b[["ax", "ay"]].to_numpy(np.float32))


def test_recording_column_and_time_gaps_split_recordings(tmp_path):
    n = 100
    stamps = np.arange(n) / 10.0
    stamps[60:] += 5.0  # a 5 s pause at 10 Hz: a gap in time
    frame = _frame(n, 3, timestamp=stamps, recording=["a"] * 30 + ["b"] * 70)
    folder = _folder(tmp_path, {"sbj_1.csv": frame})
    dataset = load_dataset("custom", root=folder)
    assert [r.num_samples for r in dataset.recordings[1]] == [30, 30, 40]
    report = check_custom_folder(folder)
    assert report.valid
    assert report.files[0].time_gaps == 1
    assert any("line 62" in note for note in report.files[0].notes)  # header = line 1


def test_parquet_timestamps_as_timestamp_type(tmp_path):
    n = 40
    stamps = pd.to_datetime(np.arange(n) * 100, unit="ms")  # 10 Hz
    stamps = stamps.where(np.arange(n) < 20, stamps + pd.Timedelta(seconds=2))
    folder = _folder(tmp_path, {"sbj_1.parquet": _frame(n, 4, timestamp=stamps)})
    assert [r.num_samples for r in load_dataset("custom", root=folder).recordings[1]] == [20, 20]


def test_short_missing_runs_interpolated_long_runs_named(tmp_path):
    frame = _frame(50, 5)
    frame.loc[10:11, "ax"] = np.nan
    folder = _folder(tmp_path, {"sbj_1.csv": frame})
    rec = load_dataset("custom", root=folder).recordings[1][0]
    np.testing.assert_allclose(rec.signals[10:12, 0],
                               np.interp([10, 11], [9, 12], frame["ax"].to_numpy()[[9, 12]]),
                               rtol=1e-6)
    frame.loc[20:29, "ay"] = np.nan
    frame.to_csv(folder / "sbj_1.csv", index=False)
    with pytest.raises(DataError, match=r"sbj_1\.csv: column 'ay' misses 10 .* line 22 to line 31"):
        load_dataset("custom", root=folder)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda f: f.assign(label=f["label"].replace(7, 8)),
         r"line \d+, column 'label': label '8' is not an id of labels\.toml"),
        (lambda f: f.assign(subject=2), r"column 'subject': '2' differs from the subject id 1"),
        (lambda f: f.assign(timestamp=np.arange(len(f))[::-1] / 10),
         r"line 3: timestamp .* does not increase"),
        (lambda f: f.assign(recording=["a", "b", "a"] * (len(f) // 3)),
         r"line 4: recording 'a' continues after other rows"),
        (lambda f: f.assign(ax=f["ax"].astype(object).where(f.index != 4, "fast")),
         r"line 6, column 'ax': value 'fast' is not a number"),
        (lambda f: f.assign(ax=f["ax"].where(f.index != 4, np.inf)), r"line 6, column 'ax'.*inf"),
        (lambda f: f.drop(columns=["label"]), r"no 'label' column"),
        (lambda f: f[["label"]], r"no sensor channel columns"),
    ],
)
def test_bad_files_name_the_file_and_line(tmp_path, change, message):
    folder = _folder(tmp_path, {"sbj_1.csv": change(_frame(30, 6))})
    with pytest.raises(DataError, match=message) as info:
        load_dataset("custom", root=folder)
    assert "sbj_1.csv" in str(info.value)


def test_nan_in_parquet_beyond_max_gap_and_inf_are_data_errors(tmp_path):
    frame = _frame(30, 7)
    frame["ax"] = np.nan
    folder = _folder(tmp_path, {"sbj_1.parquet": frame})
    with pytest.raises(DataError, match=r"sbj_1\.parquet: column 'ax' misses 30 .* row 1 to row 30"):
        load_dataset("custom", root=folder)
    frame = _frame(30, 7)
    frame.loc[3, "ay"] = -np.inf
    frame.to_parquet(folder / "sbj_1.parquet")
    with pytest.raises(DataError, match=r"sbj_1\.parquet: row 4, column 'ay': value is infinite"):
        load_dataset("custom", root=folder)


def test_empty_label_needs_a_null_class(tmp_path):
    frame = _frame(20, 8).astype({"label": object})
    frame.loc[5, "label"] = ""
    labels = '[classes]\n3 = "cycling"\n7 = "walking"\n-1 = "other"\n'
    folder = _folder(tmp_path, {"sbj_1.csv": frame}, labels=labels)
    with pytest.raises(DataError, match=r"line 7: empty label, but labels\.toml has no null class"):
        load_dataset("custom", root=folder)
    (folder / "labels.toml").write_text(LABELS_TOML)
    rec = load_dataset("custom", root=folder).recordings[1][0]
    assert rec.labels[5] == 0


@pytest.mark.parametrize(
    "labels, message",
    [
        ("[classes]\n", r"non-empty \[classes\]"),
        ('[classes]\nx = "walking"\n', r"label id 'x' is not an integer"),
        ('[classes]\n1 = "a"\n2 = "a"\n', r"class name\(s\) \['a'\] used for more than one id"),
        ('[classes]\n0 = "null"\n', r"at least one activity"),
        ('sampling_rate = -3\n[classes]\n1 = "a"\n', r"sampling_rate must be a positive number"),
        ('speed = 3\n[classes]\n1 = "a"\n', r"unknown key\(s\) \['speed'\]"),
        ("[classes\n", r"invalid TOML"),
    ],
)
def test_bad_label_maps(tmp_path, labels, message):
    folder = _folder(tmp_path, {"sbj_1.csv": _frame(10, 9)}, labels=labels)
    with pytest.raises(DataError, match=message):
        load_dataset("custom", root=folder)


def test_folder_level_errors(tmp_path):
    with pytest.raises(DataError, match="needs root"):
        load_dataset("custom")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("custom", root=tmp_path / "nope")
    folder = _folder(tmp_path, {"sbj_1.csv": _frame(10, 1), "sbj_01.parquet": _frame(10, 2)})
    with pytest.raises(DataError, match="both subject 1"):
        load_dataset("custom", root=folder)
    (folder / "sbj_01.parquet").unlink()
    (folder / "notes.csv").write_text("a,b\n")
    with pytest.raises(DataError, match=r"cannot tell the subject of .*notes\.csv"):
        load_dataset("custom", root=folder)
    (folder / "notes.csv").unlink()
    (folder / "labels.csv").write_text("id,name\n1,a\n")
    with pytest.raises(DataError, match="both labels.toml and labels.csv"):
        load_dataset("custom", root=folder)
    (folder / "labels.csv").unlink()
    _frame(10, 3).drop(columns=["ay"]).to_csv(folder / "sbj_2.csv", index=False)
    with pytest.raises(DataError, match=r"sbj_2\.csv: channels \['ax'\] differ"):
        load_dataset("custom", root=folder)


def test_cache_depends_on_the_label_map(tmp_path):
    frame = _frame(40, 10)
    folder = _folder(tmp_path, {"sbj_1.csv": frame})
    first = load_dataset("custom", root=folder).recordings[1][0].labels
    # swap which file id is which activity: the cached arrays must not be reused
    (folder / "labels.toml").write_text('[classes]\n-1 = "null"\n7 = "a"\n3 = "b"\n8 = "c"\n')
    second = load_dataset("custom", root=folder).recordings[1][0].labels
    np.testing.assert_array_equal(second, np.select([first == 1, first == 2], [1, 2], 0))
    assert (first == 1).any()  # fixture has cycling (3) samples: still id 1 ("a" < "b" by id 3<7)


def test_config_needs_root_for_custom(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data]\ndataset = "custom"\n')
    with pytest.raises(ConfigError, match='data.dataset = "custom" needs data.root'):
        load_config(path)
    path.write_text(f'[data]\ndataset = "custom"\nroot = "{tmp_path}"\n')
    assert load_config(path).data.root == str(tmp_path)


def test_cli_check_valid_folder(tmp_path, capsys):
    stamps = np.arange(100) / 10.0
    stamps[50:] += 3.0
    frame = _frame(100, 11, timestamp=stamps)
    folder = _folder(tmp_path, {"sbj_1.csv": frame, "sbj_2.parquet": _frame(80, 12)})
    (folder / "README.txt").write_text("ignored")
    assert main(["data", "check", str(folder), "--window", "20", "--overlap", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "2 channels: ax, ay" in out and "valid" in out and "README.txt" in out
    assert "cycling" in out and "walking" in out
    # subject 1: two recordings of 50 samples -> 4 windows each (stride 10); subject 2: 7
    assert re.search(r"│\s+1 │ sbj_1\.csv\s+│\s+2 │\s+100 │\s+8 │", out)
    assert re.search(r"│\s+2 │ sbj_2\.\S*\s+│\s+1 │\s+80 │\s+7 │", out), out
    assert "gap in time of 3.1 s before line 52" in out


def test_cli_check_lists_every_problem(tmp_path, capsys):
    bad_label = _frame(30, 13).assign(label=5)
    bad_value = _frame(30, 14).astype({"ax": object})
    bad_value.loc[7, "ax"] = "oops"
    folder = _folder(tmp_path, {"sbj_1.csv": bad_label, "sbj_2.csv": bad_value,
                                "sbj_3.csv": _frame(30, 15)})
    assert main(["data", "check", str(folder), "--window", "20"]) == 1
    captured = capsys.readouterr()
    assert "not valid" in captured.out and "2 problem(s)" in captured.out
    # too short for one window is a problem too
    assert main(["data", "check", str(folder), "--window", "40"]) == 1
    captured = capsys.readouterr()
    assert "3 problem(s)" in captured.out
    assert "sbj_3.csv: subject 3 has no window of 40 samples" in captured.err
    assert "sbj_1.csv: line 2, column 'label': label '5'" in captured.err
    assert "sbj_2.csv: line 9, column 'ax': value 'oops'" in captured.err


def test_cli_check_missing_folder_and_help(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["data", "--help"])
    out = capsys.readouterr().out
    assert "check" in out and "custom" in out and "labels.toml" in out
    with pytest.raises(SystemExit):
        main(["data", "check", "--help"])
    out = capsys.readouterr().out
    assert "timestamp" in out and "Exit status 0" in out


def test_example_converter_on_generated_data(tmp_path):
    script = ROOT / "experiments" / "data" / "convert_example.py"
    done = subprocess.run([sys.executable, str(script), "--demo", str(tmp_path), "--format",
                           "parquet"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    dataset = load_dataset("custom", root=tmp_path / "custom")
    assert dataset.subjects == (3, 7, 11, 12)
    assert dataset.class_names == ("null", "jogging", "sitting", "walking")
    assert all(len(recs) == 2 for recs in dataset.recordings.values())  # two sessions each
    assert dataset.sampling_rate == 20.0


def test_a_run_config_loads_custom_data(tmp_path):
    from fl_har.federation import dataset_for, federation_plan, windows_for

    folder = _folder(tmp_path, {f"sbj_{s}.csv": _frame(200, s) for s in (1, 2, 5)})
    path = tmp_path / "run.toml"
    path.write_text(f'[data]\ndataset = "custom"\nroot = "{folder}"\nwindow = 20\n')
    config = load_config(path)
    dataset = dataset_for(config)
    assert dataset.name == "custom" and dataset.subjects == (1, 2, 5)
    plan = federation_plan(config, dataset)
    assert plan.clients == (1, 2, 5) and plan.num_classes == 3 and plan.num_channels == 2
    assert len(windows_for(config, 5)) == 19  # (200 - 20) / 10 + 1
