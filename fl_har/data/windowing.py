"""Sliding windows over continuous recordings (Bock et al.: 1 s windows, 50 % overlap, at 50 Hz).

A window never spans two recordings, and its label is the label of its **last** sample (the rule
of the label-leakage paper's code). ``overlap`` is converted to a stride of
``window - round(window * overlap)`` samples (50 samples, overlap 0.5 -> stride 25); a recording
shorter than one window yields no window. Windows start at sample 0 of each recording; trailing
samples that do not fill a whole step are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from fl_har.data.dataset import HARDataset
from fl_har.data.errors import DataError

DEFAULT_WINDOW = 50
DEFAULT_OVERLAP = 0.5


@dataclass(frozen=True, eq=False)
class Windows:
    """All windows of one subject, in recording order.

    ``x`` float32 ``[n, window, channels]``, ``y`` int64 ``[n]`` (label of each window's last
    sample), ``recording`` int64 ``[n]`` (index of the recording, in the subject's order).
    """

    x: np.ndarray
    y: np.ndarray
    recording: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise DataError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def stride_for(window: int, overlap: float) -> int:
    """Step between window starts for a fractional ``overlap`` in [0, 1)."""
    window = _check_positive_int("window", window)
    if (
        isinstance(overlap, bool)
        or not isinstance(overlap, int | float)
        or not 0.0 <= overlap < 1.0
    ):
        raise DataError(f"overlap must be a number in [0, 1), got {overlap!r}")
    return max(1, window - round(window * overlap))


def sliding_windows(
    signals: np.ndarray,
    labels: np.ndarray,
    window: int = DEFAULT_WINDOW,
    stride: int = DEFAULT_WINDOW // 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Windows of ONE recording: ``x`` float32 ``[n, window, channels]`` (a contiguous copy)
    and ``y`` int64 ``[n]`` = ``labels[start + window - 1]``, for starts ``0, stride, ...``."""
    window = _check_positive_int("window", window)
    stride = _check_positive_int("stride", stride)
    signals = np.asarray(signals)
    labels = np.asarray(labels)
    if signals.ndim != 2 or labels.shape != (signals.shape[0],):
        raise DataError(
            "sliding_windows needs signals [T, channels] and labels [T], "
            f"got {signals.shape} and {labels.shape}"
        )
    length, channels = signals.shape
    if length < window:
        return np.empty((0, window, channels), dtype=np.float32), np.empty(0, dtype=np.int64)
    # view: [T - window + 1, channels, window] -> every stride-th start -> [n, window, channels]
    view = sliding_window_view(signals, window, axis=0)[::stride]
    x = np.ascontiguousarray(view.transpose(0, 2, 1), dtype=np.float32)
    y = labels[window - 1 :: stride][: x.shape[0]].astype(np.int64)
    return x, y


def subject_windows(
    dataset: HARDataset,
    subject: int,
    window: int = DEFAULT_WINDOW,
    overlap: float = DEFAULT_OVERLAP,
) -> Windows:
    """All windows of ``subject``, recording after recording, none spanning two recordings."""
    stride = stride_for(window, overlap)
    parts = [
        sliding_windows(rec.signals, rec.labels, window, stride)
        for rec in dataset.subject_recordings(subject)
    ]
    x = (
        np.concatenate([p[0] for p in parts])
        if parts
        else np.empty((0, window, dataset.num_channels), np.float32)
    )
    y = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.int64)
    recording = np.repeat(np.arange(len(parts), dtype=np.int64), [len(p[1]) for p in parts])
    return Windows(x=x, y=y, recording=recording)


def dataset_windows(
    dataset: HARDataset, window: int = DEFAULT_WINDOW, overlap: float = DEFAULT_OVERLAP
) -> dict[int, Windows]:
    """:func:`subject_windows` of every subject, keyed by subject id."""
    return {
        subject: subject_windows(dataset, subject, window, overlap) for subject in dataset.subjects
    }
