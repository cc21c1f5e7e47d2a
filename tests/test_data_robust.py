"""Robust data loading: content-keyed caches of parsed CSVs, broken or crafted cache files (named
in a warning and rebuilt), non-finite signals caught at load time, and property-based tests that
any input to the CSV loaders gives a correct load or a DataError, never another exception."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fixtures_data import csv_text, make_subject_data, write_published_folder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fl_har.data import DataError, HARDataset, Recording, load_dataset
from fl_har.data import hapt as hapt_module
from fl_har.data import published as published_module
from fl_har.data.cache import RECORDINGS_CACHE_VERSION
from fl_har.data.custom import check_custom_folder, load_custom
from fl_har.data.published import WETLAB, load_published_csv

PROPERTY = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _no_parse(*args, **kwargs):
    raise AssertionError("the cache should have been used")


def _cache_files(cache: Path) -> list[Path]:
    return sorted((cache / "csv").glob("*.npz"))


# --- the content-keyed CSV cache ---------------------------------------------------------------


def test_second_load_reads_the_cache_and_equals_the_parse(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    written = write_published_folder(tmp_path / "wetlab", WETLAB, {1: 300, 2: 200})
    first = load_dataset("wetlab", root=tmp_path / "wetlab", cache_dir=cache)
    assert len(_cache_files(cache)) == 2
    monkeypatch.setattr(published_module, "read_subject_csv", _no_parse)
    again = load_dataset("wetlab", root=tmp_path / "wetlab", cache_dir=cache)
    for subject, (signals, labels) in written.items():
        np.testing.assert_array_equal(again.recordings[subject][0].signals, signals)
        np.testing.assert_array_equal(again.recordings[subject][0].labels, labels)
        np.testing.assert_array_equal(first.recordings[subject][0].signals, signals)
    # a copy elsewhere has the same content: same cache entries
    shutil.copytree(tmp_path / "wetlab", tmp_path / "copy")
    load_dataset("wetlab", root=tmp_path / "copy", cache_dir=cache)
    assert len(_cache_files(cache)) == 2
    assert not list((cache / "csv").glob("*.tmp"))


def test_changed_content_or_options_are_parsed_again(tmp_path):
    cache = tmp_path / "cache"
    folder = tmp_path / "wetlab"
    write_published_folder(folder, WETLAB, {1: 200})
    load_dataset("wetlab", root=folder, cache_dir=cache)
    signals, labels = make_subject_data(WETLAB, 200, seed=99)
    (folder / "sbj_1.csv").write_text(csv_text(WETLAB, 1, signals, labels))  # same size, new data
    loaded = load_dataset("wetlab", root=folder, cache_dir=cache)
    np.testing.assert_array_equal(loaded.recordings[1][0].signals, signals)
    load_dataset("wetlab", root=folder, cache_dir=cache, max_gap=7)
    assert len(_cache_files(cache)) == 3


def test_cache_off_and_unwritable_cache(tmp_path):
    folder = tmp_path / "wetlab"
    write_published_folder(folder, WETLAB, {1: 100})
    load_dataset("wetlab", root=folder, cache=False, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="cannot write the wetlab .*cache"):
        dataset = load_dataset("wetlab", root=folder, cache_dir=blocker)
    assert dataset.num_samples == 100
    with pytest.raises(DataError, match="cache must be true or false"):
        load_dataset("wetlab", root=folder, cache="yes")


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _recordings_cache(cache_file: Path, **changes) -> bytes:
    with np.load(cache_file) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del arrays[key]
    return _npz(**arrays)


BROKEN_CSV_CACHES = {
    "truncated": lambda good: good.read_bytes()[: len(good.read_bytes()) // 2],
    "not a zip": lambda good: b"definitely not an npz",
    "empty": lambda good: b"",
    "version is an array": lambda good: _recordings_cache(
        good, format_version=np.array([RECORDINGS_CACHE_VERSION, 2])
    ),
    "version is a string": lambda good: _recordings_cache(good, format_version=np.str_("1")),
    "key is a number": lambda good: _recordings_cache(good, key=np.int64(3)),
    "missing labels": lambda good: _recordings_cache(good, labels=None),
    "wrong dtype": lambda good: _recordings_cache(
        good, signals=np.load(good)["signals"].astype(np.float64)
    ),
    "nan signals": lambda good: _recordings_cache(
        good, signals=np.full_like(np.load(good)["signals"], np.nan)
    ),
    "labels out of range": lambda good: _recordings_cache(
        good, labels=np.full_like(np.load(good)["labels"], 99)
    ),
    "lengths do not add up": lambda good: _recordings_cache(
        good, recording_lengths=np.array([1], dtype=np.int64)
    ),
    "pickled object": lambda good: _recordings_cache(
        good, signals=np.array([{"evil": 1}], dtype=object)
    ),
    "an npy, not an npz": lambda good: _npy(np.zeros(3)),
    "absurd declared shape": lambda good: _with_raw_entry(good, "signals.npy", _huge_npy()),
}


def _huge_npy() -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**9)}
    )
    return buffer.getvalue() + bytes(16)


def _with_raw_entry(good: Path, name: str, data: bytes) -> bytes:
    """The cache ``good`` with the zip entry ``name`` replaced by raw ``data``."""
    out = io.BytesIO()
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(out, "w") as target:
        for entry in source.namelist():
            target.writestr(entry, data if entry == name else source.read(entry))
    return out.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize("breakage", list(BROKEN_CSV_CACHES))
def test_broken_csv_cache_is_named_in_a_warning_and_rebuilt(tmp_path, breakage, monkeypatch):
    cache = tmp_path / "cache"
    folder = tmp_path / "wetlab"
    written = write_published_folder(folder, WETLAB, {1: 120})
    load_dataset("wetlab", root=folder, cache_dir=cache)
    (good,) = _cache_files(cache)
    saved = tmp_path / "good.npz"
    shutil.copy(good, saved)
    good.write_bytes(BROKEN_CSV_CACHES[breakage](saved))
    with pytest.warns(UserWarning, match="rebuilding it") as caught:
        dataset = load_dataset("wetlab", root=folder, cache_dir=cache)
    assert str(good) in str(caught[0].message)
    np.testing.assert_array_equal(dataset.recordings[1][0].signals, written[1][0])
    # rebuilt: the next load uses the cache silently
    monkeypatch.setattr(published_module, "read_subject_csv", _no_parse)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset("wetlab", root=folder, cache_dir=cache)


# --- HAPT's cache: crafted files --------------------------------------------------------------


def _hapt_table(num_samples: int = 20) -> dict[str, np.ndarray]:
    return {
        "signals": np.zeros((num_samples, 6), np.float32),
        "labels": np.zeros(num_samples, np.int64),
        "recording_subjects": np.array([1], np.int64),
        "recording_lengths": np.array([num_samples], np.int64),
    }


CRAFTED_HAPT_CACHES = {
    "format_version is an array": {"format_version": np.array([1, 1]), "source_size": np.int64(5)},
    "format_version is a string": {"format_version": np.str_("one"), "source_size": np.int64(5)},
    "source_size is a float array": {"format_version": np.int64(1),
                                         "source_size": np.array([5.0])},
    "no header": {},
}


@pytest.mark.parametrize("craft", list(CRAFTED_HAPT_CACHES))
def test_crafted_hapt_cache_headers_are_warnings(tmp_path, craft):
    path = tmp_path / "hapt-v1.npz"
    path.write_bytes(_npz(**CRAFTED_HAPT_CACHES[craft], **_hapt_table()))
    with pytest.warns(UserWarning, match="HAPT cache .*hapt-v1.npz is unreadable"):
        assert hapt_module._read_cache(path, source_size=5) is None


@pytest.mark.parametrize(
    "change",
    [
        {"signals": np.full((20, 6), np.nan, np.float32)},
        {"labels": np.full(20, 40, np.int64)},
        {"recording_lengths": np.array([19], np.int64)},
        {"signals": np.zeros((20, 2), np.float32)},
        {"recording_subjects": np.array([1, 2], np.int64)},
    ],
    ids=["nan", "labels", "lengths", "channels", "subjects"],
)
def test_inconsistent_hapt_cache_tables_are_warnings(tmp_path, change):
    path = tmp_path / "hapt-v1.npz"
    table = {**_hapt_table(), **change}
    path.write_bytes(_npz(format_version=np.int64(1), source_size=np.int64(5), **table))
    with pytest.warns(UserWarning, match="rebuilding it"):
        assert hapt_module._read_cache(path, source_size=5) is None


def test_valid_and_stale_hapt_cache_tables(tmp_path):
    path = tmp_path / "hapt-v1.npz"
    path.write_bytes(_npz(format_version=np.int64(1), source_size=np.int64(5), **_hapt_table()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert hapt_module._read_cache(path, source_size=5)["labels"].shape == (20,)
        assert hapt_module._read_cache(path, source_size=6) is None  # stale: silent


def test_crafted_hapt_cache_is_rebuilt_end_to_end(tmp_path):
    path = tmp_path / f"hapt-v{hapt_module.CACHE_FORMAT_VERSION}.npz"
    path.write_bytes(_npz(format_version=np.array([1, 2, 3]), source_size=np.int64(0)))
    with pytest.warns(UserWarning, match=str(path)):
        dataset = load_dataset("hapt", cache_dir=tmp_path)
    assert dataset.num_samples == 1_122_772
    with np.load(path) as archive:
        assert archive["format_version"].shape == ()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


# --- non-finite signals --------------------------------------------------------------------------


def test_dataset_with_nan_or_inf_names_subject_and_channel():
    signals = np.zeros((10, 2), np.float32)
    signals[4, 1] = np.nan
    with pytest.raises(DataError, match=r"subject 7, recording 0: 1 non-finite .* sample 4, "
                                        r"channel 'b'"):
        HARDataset("x", ("null", "a"), ("a", "b"), 50.0,
                   {7: (Recording(signals, np.zeros(10, np.int64)),)})
    signals = signals.copy()  # the Recording above made its array read-only
    signals[4, 1] = np.inf
    with pytest.raises(DataError, match="subject 7"):
        HARDataset("x", ("null", "a"), ("a", "b"), 50.0,
                   {7: (Recording(signals, np.zeros(10, np.int64)),)})


def test_float32_overflow_in_csv_names_file_line_and_column(tmp_path):
    folder = tmp_path / "wetlab"
    write_published_folder(folder, WETLAB, {3: 50})
    lines = (folder / "sbj_3.csv").read_text().splitlines()
    fields = lines[5].split(",")
    fields[2] = "1e39"  # finite as a double, inf as float32: would poison training later
    lines[5] = ",".join(fields)
    (folder / "sbj_3.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"sbj_3\.csv: line 6, column 'acc_y': value overflows"):
        load_dataset("wetlab", root=folder, cache=False)


def test_non_finite_custom_values_name_the_file(tmp_path):
    (tmp_path / "labels.toml").write_text('[classes]\n0 = "null"\n1 = "a"\n')
    (tmp_path / "sbj_5.csv").write_text("x,label\n1,0\n-1e40,1\n2,1\n")
    with pytest.raises(DataError, match=r"sbj_5\.csv: line 3, column 'x': value overflows"):
        load_custom(tmp_path, cache=False)
    (tmp_path / "sbj_5.csv").write_text("x,label\n1,0\ninf,1\n2,1\n")
    with pytest.raises(DataError, match=r"sbj_5\.csv: line 3, column 'x': value 'inf' is infinite"):
        load_custom(tmp_path, cache=False)


# --- property-based: any input is a correct load or a DataError --------------------------------

TOKENS = ["", " ", "0", "1", "-2.5", "1e39", "-1e400", "nan", "NaN", "NA", "inf", "-inf", "abc",
          "1,2", '"', '"q"', "\x00", "é", "3", "0x10", "1_0", "cutting", "null", "pouring",
          "label", "sbj_id", "acc_x", "acc_y", "acc_z", "timestamp", "recording", "subject", "-1"]


# Valid cells per column (a row index goes into timestamps so they increase).
VALID = {
    "sbj_id": ["1"],
    "timestamp": ["{t}"], "recording": ["r1"], "subject": ["1"],
}
NUMBERS = ["0", "1", "-2.5", "3e3", "", "nan", ".5", " 7 "]


@st.composite
def csvish(draw, header_pool: list[str], labels: list[str]) -> bytes:
    """CSV-like bytes: maybe-valid headers, rows of mostly valid cells salted with hostile tokens
    (or fully hostile rows), odd line ends, BOMs and encodings."""
    header = draw(st.one_of(
        st.just(header_pool),
        st.lists(st.sampled_from(header_pool), min_size=1, max_size=len(header_pool),
                 unique=True),
        st.lists(st.sampled_from(header_pool + TOKENS), min_size=0, max_size=7),
    ))
    hostility = draw(st.sampled_from([0.0, 0.02, 0.2, 1.0]))
    rows = []
    for index in range(draw(st.integers(0, 14))):
        row = []
        for column in header:
            if draw(st.floats(0, 1)) < hostility:
                row.append(draw(st.sampled_from(TOKENS)))
            else:
                pool = labels if column == "label" else VALID.get(column, NUMBERS)
                row.append(draw(st.sampled_from(pool)).format(t=index * 0.02))
        if draw(st.floats(0, 1)) < hostility / 4:
            row = row[:-1] if draw(st.booleans()) else [*row, "x"]
        rows.append(row)
    lines = [",".join(header)] + [",".join(row) for row in rows]
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join(lines) + draw(st.sampled_from(["", newline]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "latin-1", "utf-16"]))
    return text.encode(encoding, errors="replace")


def _check_loaded(dataset: HARDataset) -> None:
    for recs in dataset.recordings.values():
        for rec in recs:
            assert np.isfinite(rec.signals).all()
            assert rec.labels.min() >= 0 and rec.labels.max() < dataset.num_classes


def _load_published_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "sbj_1.csv").write_bytes(data)
        try:
            dataset = load_published_csv("wetlab", folder, cache=False)
        except DataError:
            return
        _check_loaded(dataset)


def _load_custom_bytes(
    data: bytes, labels: bytes, suffix: str = ".csv", label_file: str = "labels.toml"
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, f"sbj_1{suffix}").write_bytes(data)
        Path(folder, label_file).write_bytes(labels)
        try:
            dataset = load_custom(folder, cache=False)
        except DataError:
            dataset = None
        report = check_custom_folder(folder)  # the checker agrees with the loader
        assert report.valid == (dataset is not None), report.problems
        if dataset is not None:
            _check_loaded(dataset)


@PROPERTY
@given(st.binary(max_size=300))
def test_published_loader_random_bytes(data):
    _load_published_bytes(data)


@PROPERTY
@given(csvish(["sbj_id", "acc_x", "acc_y", "acc_z", "label"], ["", "null", "cutting", "pouring"]))
def test_published_loader_csvish_text(data):
    _load_published_bytes(data)


LABELS = b'[classes]\n0 = "null"\n1 = "cutting"\n3 = "pouring"\n-1 = "other"\n'


@PROPERTY
@given(st.binary(max_size=300))
def test_custom_loader_random_bytes(data):
    _load_custom_bytes(data, LABELS)


@PROPERTY
@given(st.binary(max_size=300))
def test_custom_loader_random_bytes_as_parquet(data):
    _load_custom_bytes(data, LABELS, suffix=".parquet")


@PROPERTY
@given(csvish(["acc_x", "acc_y", "label", "timestamp", "recording", "subject"],
              ["", "0", "1", "3", "-1", " 3 "]))
def test_custom_loader_csvish_text(data):
    _load_custom_bytes(data, LABELS)


@PROPERTY
@given(st.one_of(
    st.binary(max_size=200),
    st.text(alphabet=st.sampled_from(list('[]="\n 01-3.abcnulsamping_rte#\'')), max_size=80)
    .map(str.encode),
))
def test_custom_label_map_random_text(labels):
    _load_custom_bytes(b"x,label\n1,0\n2,1\n", labels)


@PROPERTY
@given(st.one_of(
    st.binary(max_size=200),
    st.lists(st.lists(st.sampled_from(["id", "name", "0", "1", "-1", "null", "a", "", "x y", '"']),
                      max_size=3), max_size=5)
    .map(lambda rows: "\n".join(",".join(r) for r in [["id", "name"], *rows]).encode()),
))
def test_custom_labels_csv_random_text(labels):
    _load_custom_bytes(b"x,label\n1,0\n2,1\n", labels, label_file="labels.csv")


@PROPERTY
@given(
    st.integers(1, 40).flatmap(lambda n: st.tuples(
        st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=n * 2, max_size=n * 2),
        st.lists(st.sampled_from([0, 1, 3, -1]), min_size=n, max_size=n),
    )),
    st.booleans(),
)
def test_custom_round_trip_is_exact(columns, bom):
    values, labels = columns
    signals = np.asarray(values, np.float32).reshape(-1, 2)
    lines = ["a,b,label"] + [f"{x!r},{y!r},{lab}" for (x, y), lab in
                             zip(signals.astype(float).tolist(), labels, strict=True)]
    data = ("\ufeff" if bom else "") + "\n".join(lines) + "\n"
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "sbj_1.csv").write_text(data, encoding="utf-8")
        Path(folder, "labels.toml").write_bytes(LABELS)
        dataset = load_custom(folder, cache=False)
    (rec,) = dataset.recordings[1]
    np.testing.assert_array_equal(rec.signals, signals)
    expected = {0: 0, -1: 1, 1: 2, 3: 3}  # null, then other, cutting, pouring by ascending file id
    np.testing.assert_array_equal(rec.labels, [expected[v] for v in labels])
