"""WEAR and Wetlab from generated CSVs in the exact published layout, and every bad-input case."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_data import csv_text, make_subject_data, write_published_folder

from fl_har.data import DataError, load_dataset
from fl_har.data.gaps import GapTooLongError, fill_short_gaps, missing_runs
from fl_har.data.published import WEAR, WETLAB


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    # Parsed CSVs are cached: keep these tests' cache out of the user's ~/.cache.
    monkeypatch.setenv("FL_HAR_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.mark.parametrize("layout", [WEAR, WETLAB], ids=["wear", "wetlab"])
def test_loads_published_layout(layout, tmp_path):
    written = write_published_folder(tmp_path, layout, {0: 300, 1: 120, 12: 200})
    dataset = load_dataset(layout.name, root=tmp_path)
    assert dataset.subjects == (0, 1, 12)  # i from sbj_<i>.csv, numeric order
    assert dataset.class_names == ("null", *layout.activity_names)
    assert dataset.channel_names == layout.channel_names
    assert dataset.sampling_rate == 50.0
    for subject, (signals, labels) in written.items():
        (recording,) = dataset.recordings[subject]
        np.testing.assert_array_equal(recording.signals, signals)
        np.testing.assert_array_equal(recording.labels, labels)
    assert dataset.num_samples == 620


def test_wear_and_wetlab_definitions_match_data_md():
    assert len(WEAR.channel_names) == 12 and WEAR.channel_names[:3] == (
        "right_arm_acc_x",
        "right_arm_acc_y",
        "right_arm_acc_z",
    )
    assert WEAR.channel_names[3] == "right_leg_acc_x" and WEAR.channel_names[-1] == "left_arm_acc_z"
    assert len(WEAR.activity_names) == 18
    assert (
        WEAR.activity_names[1] == "jogging (rotating arms)"
        and WEAR.activity_names[-1] == "bench-dips"
    )
    assert WETLAB.channel_names == ("acc_x", "acc_y", "acc_z")
    assert WETLAB.activity_names == (
        "cutting",
        "inverting",
        "peeling",
        "pestling",
        "pipetting",
        "pouring",
        "stirring",
        "transfer",
    )


def test_default_location_from_environment(tmp_path, monkeypatch):
    write_published_folder(tmp_path / "wetlab", WETLAB, {3: 60})
    monkeypatch.setenv("FL_HAR_DATA", str(tmp_path))
    assert load_dataset("wetlab").subjects == (3,)


def test_missing_folder_says_where_and_where_from(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as info:
        load_dataset("wear", root=missing)
    message = str(info.value)
    assert str(missing) in message and "does not exist" in message
    assert "mariusbock.github.io/wear" in message and "FL_HAR_DATA" in message


def test_folder_without_subject_files(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / "subject_1.csv").write_text("x")
    with pytest.raises(DataError, match=r"no sbj_<i>.csv files in .*Scholl"):
        load_dataset("wetlab", root=tmp_path)


def test_duplicate_subject_ids(tmp_path):
    write_published_folder(tmp_path, WETLAB, {1: 40})
    (tmp_path / "sbj_01.csv").write_text((tmp_path / "sbj_1.csv").read_text())
    with pytest.raises(DataError, match="both subject 1"):
        load_dataset("wetlab", root=tmp_path)


# ---- bad input inside one file ---------------------------------------------------------------


def _write(tmp_path, text: str, name: str = "sbj_0.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _good_lines(num_samples: int = 40) -> list[str]:
    signals, labels = make_subject_data(WETLAB, num_samples, seed=1)
    return csv_text(WETLAB, 0, signals, labels).splitlines()


def _load_wetlab(tmp_path, lines: list[str], **options):
    _write(tmp_path, "\n".join(lines) + "\n")
    return load_dataset("wetlab", root=tmp_path, **options)


def test_empty_file(tmp_path):
    path = _write(tmp_path, "")
    with pytest.raises(DataError, match="empty file") as info:
        load_dataset("wetlab", root=tmp_path)
    assert str(path) in str(info.value)


def test_header_only(tmp_path):
    with pytest.raises(DataError, match="header only, no data lines"):
        _load_wetlab(tmp_path, ["sbj_id,acc_x,acc_y,acc_z,label"])


@pytest.mark.parametrize(
    "header, expected",
    [
        ("sbj_id,acc_x,acc_y,label", r"missing \['acc_z'\]"),
        ("sbj_id,acc_x,acc_y,acc_z,gyro_x,label", r"unexpected \['gyro_x'\]"),
        ("sbj_id,acc_y,acc_x,acc_z,label", "wrong order"),
    ],
)
def test_wrong_header(tmp_path, header, expected):
    lines = _good_lines()
    lines[0] = header
    with pytest.raises(DataError, match=expected) as info:
        _load_wetlab(tmp_path, lines)
    assert "sbj_id, acc_x, acc_y, acc_z, label" in str(info.value)


@pytest.mark.parametrize(
    "change, count", [(lambda line: line + ",1.0", 6), (lambda line: line.rsplit(",", 1)[0], 4)]
)
def test_wrong_field_count_names_the_line(tmp_path, change, count):
    lines = _good_lines()
    lines[7] = change(lines[7])  # file line 8
    with pytest.raises(DataError, match=f"line 8 has {count} fields, expected 5") as info:
        _load_wetlab(tmp_path, lines)
    assert "sbj_0.csv" in str(info.value)


def test_non_numeric_sensor_value(tmp_path):
    lines = _good_lines()
    fields = lines[5].split(",")
    fields[2] = "1.2.3"
    lines[5] = ",".join(fields)
    with pytest.raises(DataError, match=r"line 6, column 'acc_y': value '1.2.3' is not a number"):
        _load_wetlab(tmp_path, lines)


def test_infinite_sensor_value(tmp_path):
    lines = _good_lines()
    fields = lines[3].split(",")
    fields[1] = "inf"
    lines[3] = ",".join(fields)
    with pytest.raises(DataError, match=r"line 4, column 'acc_x'.*infinite"):
        _load_wetlab(tmp_path, lines)


def test_unknown_label(tmp_path):
    lines = _good_lines()
    lines[9] = lines[9].rsplit(",", 1)[0] + ",dancing"
    with pytest.raises(DataError, match=r"line 10: unknown wetlab label 'dancing'.*'cutting'"):
        _load_wetlab(tmp_path, lines)


def test_label_null_literal_and_empty_are_null(tmp_path):
    lines = _good_lines()
    lines[1] = lines[1].rsplit(",", 1)[0] + ",null"
    dataset = _load_wetlab(tmp_path, lines)
    assert dataset.recordings[0][0].labels[0] == 0


def test_bad_subject_column(tmp_path):
    lines = _good_lines()
    lines[4] = "7" + lines[4][1:]
    with pytest.raises(DataError, match=r"line 5: sbj_id '7' differs from '0' on line 2"):
        _load_wetlab(tmp_path, lines)
    lines = [lines[0]] + ["x" + line[1:] for line in _good_lines()[1:]]
    with pytest.raises(DataError, match="sbj_id 'x' is not an integer"):
        _load_wetlab(tmp_path, lines)


def test_short_gaps_are_interpolated(tmp_path):
    signals, labels = make_subject_data(WETLAB, 40, seed=2)
    signals = signals.astype(np.float64)
    expected = signals.copy()
    signals[10:13, 1] = np.nan  # 3 missing values in acc_y, lines 12-14
    signals[0:2, 2] = np.nan  # at the start: nearest valid value is held
    signals[-1, 0] = np.nan
    _write(tmp_path, csv_text(WETLAB, 0, signals, labels))
    recording = load_dataset("wetlab", root=tmp_path).recordings[0][0]
    left, right = expected[9, 1], expected[13, 1]
    np.testing.assert_allclose(
        recording.signals[10:13, 1], left + (right - left) * np.array([1, 2, 3]) / 4, rtol=1e-6
    )
    np.testing.assert_allclose(recording.signals[0:2, 2], expected[2, 2], rtol=1e-6)
    np.testing.assert_allclose(recording.signals[-1, 0], expected[-2, 0], rtol=1e-6)
    untouched = np.ones_like(expected, dtype=bool)
    untouched[10:13, 1] = untouched[0:2, 2] = untouched[-1, 0] = False
    np.testing.assert_allclose(recording.signals[untouched], expected[untouched], rtol=1e-6)


def test_nan_tokens_count_as_missing(tmp_path):
    lines = _good_lines()
    fields = lines[5].split(",")
    fields[1] = "NaN"
    lines[5] = ",".join(fields)
    recording = _load_wetlab(tmp_path, lines).recordings[0][0]
    assert np.isfinite(recording.signals).all()


def test_long_gap_is_an_error_naming_lines(tmp_path):
    signals, labels = make_subject_data(WETLAB, 40, seed=3)
    signals = signals.astype(np.float64)
    signals[20:26, 0] = np.nan  # 6 > default max_gap 5, lines 22..27
    _write(tmp_path, csv_text(WETLAB, 0, signals, labels))
    with pytest.raises(
        DataError, match=r"column 'acc_x' misses 6 consecutive values from line 22 to line 27"
    ):
        load_dataset("wetlab", root=tmp_path)
    repaired = load_dataset("wetlab", root=tmp_path, max_gap=6).recordings[0][0]
    assert np.isfinite(repaired.signals).all()
    assert np.isfinite(
        load_dataset("wetlab", root=tmp_path, max_gap=None).recordings[0][0].signals
    ).all()
    with pytest.raises(DataError, match="max_gap must be"):
        load_dataset("wetlab", root=tmp_path, max_gap=-1)


def test_fully_missing_channel_is_an_error(tmp_path):
    signals, labels = make_subject_data(WETLAB, 10, seed=4)
    signals = signals.astype(np.float64)
    signals[:, 2] = np.nan
    _write(tmp_path, csv_text(WETLAB, 0, signals, labels))
    with pytest.raises(DataError, match="column 'acc_z' misses 10 consecutive values"):
        load_dataset("wetlab", root=tmp_path, max_gap=None)


def test_not_utf8(tmp_path):
    (tmp_path / "sbj_0.csv").write_bytes(b"sbj_id,acc_x,acc_y,acc_z,label\n0,1,2,3,\xff\xfe\n")
    with pytest.raises(DataError, match="not UTF-8"):
        load_dataset("wetlab", root=tmp_path)


def test_blank_lines_are_skipped_and_line_numbers_stay_exact(tmp_path):
    lines = _good_lines()
    lines.insert(3, "")
    lines[10] = lines[10].rsplit(",", 1)[0] + ",dancing"  # file line 11 after the blank line
    with pytest.raises(DataError, match="line 11: unknown"):
        _load_wetlab(tmp_path, lines)


# ---- gap helpers ---------------------------------------------------------------------------


def test_missing_runs():
    runs = missing_runs(np.array([1, 1, 0, 0, 1, 0, 1, 1, 1], dtype=bool))
    assert [(g.start, g.length) for g in runs] == [(0, 2), (4, 1), (6, 3)]
    assert missing_runs(np.zeros(4, dtype=bool)) == []


def test_fill_short_gaps_limits():
    values = np.array([0.0, np.nan, np.nan, 3.0])
    np.testing.assert_allclose(fill_short_gaps(values, 2), [0, 1, 2, 3])
    with pytest.raises(GapTooLongError) as info:
        fill_short_gaps(values, 1)
    assert (info.value.gap.start, info.value.gap.length) == (1, 2)
    assert np.isnan(values[1])  # input untouched
