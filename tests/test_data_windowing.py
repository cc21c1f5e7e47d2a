"""Sliding windows: the last-sample label rule, stride from overlap, no window across recordings."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_data import ramp_recording, tiny_dataset

from fl_har.data import DataError, dataset_windows, sliding_windows, subject_windows
from fl_har.data.windowing import stride_for


def test_sliding_windows_values_and_last_sample_label():
    signals, labels = ramp_recording(130)
    x, y = sliding_windows(signals, labels, window=50, stride=25)
    # starts 0, 25, 50, 75 (75 + 50 = 125 <= 130); 100 would need 150 samples
    assert x.shape == (4, 50, 2) and y.shape == (4,)
    assert x.dtype == np.float32 and y.dtype == np.int64 and x.flags.c_contiguous
    for i, start in enumerate((0, 25, 50, 75)):
        np.testing.assert_array_equal(x[i], signals[start : start + 50])
        assert y[i] == labels[start + 49]


def test_window_label_is_last_not_majority():
    signals = np.zeros((10, 1), dtype=np.float32)
    labels = np.array([1] * 9 + [2])
    _, y = sliding_windows(signals, labels, window=10, stride=5)
    assert y.tolist() == [2]


def test_short_recording_gives_no_window():
    signals, labels = ramp_recording(49)
    x, y = sliding_windows(signals, labels, window=50, stride=25)
    assert x.shape == (0, 50, 2) and y.shape == (0,)
    x, y = sliding_windows(*ramp_recording(50), window=50, stride=25)
    assert len(y) == 1


def test_windows_are_copies():
    signals, labels = ramp_recording(60)
    x, _ = sliding_windows(signals, labels, window=20, stride=10)
    x[0, 0, 0] = -1.0
    assert signals[0, 0] == 0.0


@pytest.mark.parametrize(
    "window, overlap, stride",
    [(50, 0.5, 25), (50, 0.0, 50), (50, 0.9, 5), (10, 0.75, 2), (50, 0.99, 1)],
)
def test_stride_from_overlap(window, overlap, stride):
    assert stride_for(window, overlap) == stride


@pytest.mark.parametrize(
    "window, overlap", [(50, 1.0), (50, -0.1), (0, 0.5), (50, "half"), (2.5, 0.5)]
)
def test_bad_window_parameters(window, overlap):
    with pytest.raises(DataError):
        stride_for(window, overlap)


def test_bad_shapes():
    with pytest.raises(DataError, match="signals"):
        sliding_windows(np.zeros(10), np.zeros(10))
    with pytest.raises(DataError, match="labels"):
        sliding_windows(np.zeros((10, 2)), np.zeros(9))
    with pytest.raises(DataError, match="stride"):
        sliding_windows(np.zeros((10, 2)), np.zeros(10), window=5, stride=0)


def test_subject_windows_never_span_recordings():
    first, second = ramp_recording(80, offset=0.0), ramp_recording(60, offset=10_000.0)
    dataset = tiny_dataset({1: [first, second], 2: [ramp_recording(55)]})
    windows = subject_windows(dataset, 1, window=20, overlap=0.5)
    # recording 0: starts 0..60 step 10 -> 7 windows; recording 1: starts 0..40 -> 5 windows
    assert len(windows) == 12
    assert windows.recording.tolist() == [0] * 7 + [1] * 5
    for x, rec in zip(windows.x, windows.recording, strict=True):
        source = (first, second)[rec][0][:, 0]
        # every window is a contiguous run of ONE recording
        assert np.all(np.diff(x[:, 0]) == 1.0)
        assert x[0, 0] in source and x[-1, 0] in source
    assert windows.x[7, 0, 0] == 10_000.0  # recording 1 starts afresh at its sample 0
    np.testing.assert_array_equal(windows.y[:7], first[1][19:80:10])


def test_dataset_windows_and_unknown_subject():
    dataset = tiny_dataset({1: [ramp_recording(80)], 5: [ramp_recording(10)]})
    windows = dataset_windows(dataset, window=20, overlap=0.5)
    assert set(windows) == {1, 5}
    assert len(windows[5]) == 0 and windows[5].x.shape == (0, 20, 2)
    with pytest.raises(DataError, match="no subject 3"):
        subject_windows(dataset, 3)


def test_default_windows_are_50_with_stride_25():
    dataset = tiny_dataset({1: [ramp_recording(200)]})
    windows = subject_windows(dataset, 1)
    assert windows.x.shape == (7, 50, 2)
    assert windows.x[1, 0, 0] == 25.0
