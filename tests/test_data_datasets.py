"""The dataset container, the registry (names, options) and the synthetic generator."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_data import ramp_recording, tiny_dataset

from fl_har.data import (
    DataError,
    HARDataset,
    Recording,
    available_datasets,
    load_dataset,
    subject_windows,
)


def test_available_datasets():
    names = available_datasets()
    assert set(names) == {"hapt", "wear", "wetlab", "custom", "synthetic"}
    assert all(isinstance(text, str) and text for text in names.values())


def test_unknown_dataset_name():
    with pytest.raises(
        DataError, match="unknown dataset 'mnist'; available: hapt, wear, wetlab, synthetic"
    ):
        load_dataset("mnist")


@pytest.mark.parametrize(
    "name, option", [("synthetic", "subjects"), ("hapt", "num_subjects"), ("wear", "channels")]
)
def test_unknown_option(name, option):
    with pytest.raises(DataError, match=f"unknown option\\(s\\) {option}; accepted: "):
        load_dataset(name, **{option: 1})


def test_synthetic_rejects_root(tmp_path):
    with pytest.raises(DataError, match="takes no root"):
        load_dataset("synthetic", root=tmp_path)


def test_synthetic_defaults_and_properties():
    dataset = load_dataset("synthetic")
    assert dataset.subjects == (1, 2, 3, 4)
    assert dataset.num_classes == 6 and dataset.class_names[0] == "null"
    assert dataset.num_channels == 3
    assert dataset.num_samples == 4 * 6000
    assert all(len(recs) == 2 for recs in dataset.recordings.values())
    counts = dataset.label_counts()
    assert counts[0] / counts.sum() > 0.45  # NULL majority
    assert counts[0] > counts[1:].max()
    activity = counts[1:]
    assert activity[0] > 2 * activity[-1]  # long tail: class 1 common, last class rare
    assert np.array_equal(
        dataset.label_counts(), sum(dataset.label_counts(s) for s in dataset.subjects)
    )


def test_synthetic_is_seeded_and_per_subject_stable():
    a = load_dataset("synthetic", seed=5, num_subjects=2, samples_per_subject=1000)
    b = load_dataset("synthetic", seed=5, num_subjects=3, samples_per_subject=1000)
    c = load_dataset("synthetic", seed=6, num_subjects=2, samples_per_subject=1000)
    np.testing.assert_array_equal(a.recordings[2][0].signals, b.recordings[2][0].signals)
    assert not np.array_equal(a.recordings[1][0].signals, c.recordings[1][0].signals)


def test_synthetic_signals_depend_on_class():
    dataset = load_dataset("synthetic", num_subjects=2, samples_per_subject=20_000, num_classes=4)
    windows = subject_windows(dataset, 1)
    means = np.array([windows.x[windows.y == k].mean(axis=(0, 1)) for k in range(4)])
    spread = np.array([windows.x[windows.y == k].std(axis=(0, 1)) for k in range(4)])
    # class means differ by more than the sampling noise of the means
    distances = np.linalg.norm(means[:, None] - means[None], axis=-1)
    assert distances[np.triu_indices(4, 1)].min() > 0.1
    assert spread[0].mean() < spread[1:].mean()  # NULL is near rest


@pytest.mark.parametrize(
    "options, field",
    [
        ({"num_classes": 1}, "num_classes"),
        ({"num_subjects": 0}, "num_subjects"),
        ({"seed": -1}, "seed"),
        ({"samples_per_subject": 1.5}, "samples_per_subject"),
        ({"num_channels": True}, "num_channels"),
    ],
)
def test_synthetic_bad_options(options, field):
    with pytest.raises(DataError, match=f"synthetic: {field} must be an integer"):
        load_dataset("synthetic", **options)


def test_recording_is_frozen_and_typed():
    signals, labels = ramp_recording(10)
    recording = Recording(signals.astype(np.float64), labels.astype(np.int32))
    assert recording.signals.dtype == np.float32 and recording.labels.dtype == np.int64
    with pytest.raises(ValueError):
        recording.signals[0, 0] = 1.0  # read-only: datasets are shared between clients
    with pytest.raises(DataError, match="labels must have shape"):
        Recording(signals, labels[:5])
    with pytest.raises(DataError, match="2-D"):
        Recording(signals[:, 0], labels)


def test_dataset_validation():
    good = ramp_recording(10)
    with pytest.raises(DataError, match="class_names\\[0\\] must be 'null'"):
        HARDataset("x", ("walk", "run"), ("a", "b"), 50.0, {1: (Recording(*good),)})
    with pytest.raises(DataError, match="subject 1, recording 0: 2 signal channels, expected 3"):
        HARDataset("x", ("null", "a", "b"), ("a", "b", "c"), 50.0, {1: (Recording(*good),)})
    with pytest.raises(DataError, match="label 2 outside 0..1"):
        HARDataset("x", ("null", "a"), ("a", "b"), 50.0, {1: (Recording(*good),)})


def test_dataset_accessors():
    dataset = tiny_dataset({3: [ramp_recording(10)], 1: [ramp_recording(5), ramp_recording(7)]})
    assert dataset.subjects == (1, 3)
    assert dataset.num_samples == 22
    assert dataset.label_counts(1).tolist() == [5, 4, 3]  # t % 3 over 5 and 7 samples
    with pytest.raises(TypeError):
        dataset.recordings[9] = ()  # the mapping is read-only
    assert {dataset: 1}[dataset] == 1  # identity-hashable: usable as a cache key
    assert dataset != tiny_dataset({3: [ramp_recording(10)]})
    with pytest.raises(DataError, match=r"no subject 2 \(subjects: 1, 3\)"):
        dataset.label_counts(2)
