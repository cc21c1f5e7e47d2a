"""Helpers for the data-layer tests: generated CSVs in the published per-subject layout and small
hand-made datasets. (Shared by the tests/test_data_*.py files; not a conftest on purpose.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fl_har.data import HARDataset, Recording
from fl_har.data.subject_csv import CsvLayout


def csv_text(layout: CsvLayout, subject: int, signals: np.ndarray, label_ids: np.ndarray) -> str:
    """One ``sbj_<i>.csv`` exactly as published: header, then ``sbj_id,<channels...>,<label name>``
    with an empty label for NULL; NaN sensor values are written as empty fields (pandas style)."""
    names = ("", *layout.activity_names)
    lines = [",".join(layout.header)]
    for row, label in zip(signals, label_ids, strict=True):
        values = ",".join("" if np.isnan(v) else repr(float(v)) for v in row)
        lines.append(f"{subject},{values},{names[label]}")
    return "\n".join(lines) + "\n"


def make_subject_data(
    layout: CsvLayout, num_samples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """float32-representable signals and labels (NULL runs and every activity at least once)."""
    rng = np.random.default_rng(seed)
    signals = rng.normal(size=(num_samples, len(layout.channel_names))).astype(np.float32)
    num_activities = len(layout.activity_names)
    segment = max(1, num_samples // (2 * num_activities + 1))
    labels = np.zeros(num_samples, dtype=np.int64)
    for k in range(num_activities):
        start = (2 * k + 1) * segment
        labels[start : start + segment] = k + 1
    return signals, labels


def write_published_folder(
    folder: Path, layout: CsvLayout, subjects: dict[int, int], seed: int = 0
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Write ``sbj_<i>.csv`` for each ``{i: num_samples}``; return the arrays written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for subject, num_samples in subjects.items():
        signals, labels = make_subject_data(layout, num_samples, seed + subject)
        (folder / f"sbj_{subject}.csv").write_text(csv_text(layout, subject, signals, labels))
        written[subject] = (signals, labels)
    return written


def tiny_dataset(
    recordings: dict[int, list[tuple[np.ndarray, np.ndarray]]], num_classes: int = 3
) -> HARDataset:
    """A dataset from explicit ``{subject: [(signals, labels), ...]}``."""
    num_channels = next(iter(recordings.values()))[0][0].shape[1]
    return HARDataset(
        name="tiny",
        class_names=("null", *(f"c{k}" for k in range(1, num_classes))),
        channel_names=tuple(f"ch{c}" for c in range(num_channels)),
        sampling_rate=50.0,
        recordings={s: tuple(Recording(x, y) for x, y in recs) for s, recs in recordings.items()},
    )


def ramp_recording(
    length: int, channels: int = 2, offset: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Signals whose value at (t, c) is ``offset + t + 1000 * c`` and labels ``t % 3``:
    every window's provenance can be read off its values."""
    t = np.arange(length, dtype=np.float64)
    signals = offset + t[:, None] + 1000.0 * np.arange(channels)[None, :]
    return signals.astype(np.float32), (np.arange(length) % 3).astype(np.int64)
