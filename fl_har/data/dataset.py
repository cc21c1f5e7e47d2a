"""In-memory HAR dataset: per subject, its continuous recordings of sensor samples and labels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from fl_har.data.errors import DataError

NULL_CLASS_NAME = "null"


@dataclass(frozen=True, eq=False)
class Recording:
    """One continuous recording (no gaps in time): ``signals[t]`` carries label ``labels[t]``.

    ``signals`` is float32 ``[T, channels]`` (C-contiguous), ``labels`` int64 ``[T]`` with 0 = NULL
    and 1..K the activities. The arrays are converted on construction if needed and then made
    read-only: a dataset is shared by many simulated clients, so nobody may edit it in place.
    Equality and hashing are by identity (``eq=False``), so recordings and datasets can be cache
    keys and ``==`` never compares arrays element-wise.
    """

    signals: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        try:
            signals = np.ascontiguousarray(self.signals, dtype=np.float32)
            labels = np.ascontiguousarray(self.labels, dtype=np.int64)
        except (TypeError, ValueError) as error:
            raise DataError(
                f"Recording needs numeric signals and integer labels: {error}"
            ) from None
        if signals.ndim != 2:
            raise DataError(
                f"Recording.signals must be 2-D [T, channels], got shape {signals.shape}"
            )
        if labels.shape != (signals.shape[0],):
            raise DataError(
                f"Recording.labels must have shape ({signals.shape[0]},) to match signals "
                f"{signals.shape}, got {labels.shape}"
            )
        signals.flags.writeable = False
        labels.flags.writeable = False
        object.__setattr__(self, "signals", signals)
        object.__setattr__(self, "labels", labels)

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True, eq=False)
class HARDataset:
    """A labelled HAR dataset split by subject.

    ``recordings[subject]`` holds that subject's recordings in time order; windows must never span
    two of them. ``class_names[0]`` is always ``"null"`` (the NULL class, label 0).
    """

    name: str
    class_names: tuple[str, ...]
    channel_names: tuple[str, ...]
    sampling_rate: float
    recordings: Mapping[int, tuple[Recording, ...]]

    def __post_init__(self) -> None:
        class_names = tuple(str(c) for c in self.class_names)
        channel_names = tuple(str(c) for c in self.channel_names)
        if not class_names or class_names[0] != NULL_CLASS_NAME:
            raise DataError(
                f"dataset {self.name!r}: class_names[0] must be {NULL_CLASS_NAME!r}, "
                f"got {class_names[:1]}"
            )
        if not channel_names:
            raise DataError(f"dataset {self.name!r}: channel_names is empty")
        if not self.sampling_rate > 0:
            raise DataError(
                f"dataset {self.name!r}: sampling_rate must be > 0, got {self.sampling_rate}"
            )
        recordings = {int(s): tuple(recs) for s, recs in sorted(self.recordings.items())}
        for subject, recs in recordings.items():
            for index, rec in enumerate(recs):
                self._check_recording(subject, index, rec, len(channel_names), len(class_names))
        object.__setattr__(self, "class_names", class_names)
        object.__setattr__(self, "channel_names", channel_names)
        object.__setattr__(self, "sampling_rate", float(self.sampling_rate))
        object.__setattr__(self, "recordings", MappingProxyType(recordings))

    def _check_recording(
        self, subject: int, index: int, rec: Recording, num_channels: int, num_classes: int
    ) -> None:
        where = f"dataset {self.name!r}, subject {subject}, recording {index}"
        if not isinstance(rec, Recording):
            raise DataError(f"{where}: expected a Recording, got {type(rec).__name__}")
        if rec.signals.shape[1] != num_channels:
            raise DataError(
                f"{where}: {rec.signals.shape[1]} signal channels, expected {num_channels} "
                f"({', '.join(self.channel_names)})"
            )
        if rec.num_samples and (rec.labels.min() < 0 or rec.labels.max() >= num_classes):
            bad = rec.labels[(rec.labels < 0) | (rec.labels >= num_classes)][0]
            raise DataError(f"{where}: label {int(bad)} outside 0..{num_classes - 1}")
        # NaN/inf inputs would only surface rounds later as non-finite model weights.
        check_finite(rec.signals, where, self.channel_names)

    @property
    def subjects(self) -> tuple[int, ...]:
        """Subject ids, sorted."""
        return tuple(self.recordings)

    @property
    def num_classes(self) -> int:
        """Number of classes including NULL."""
        return len(self.class_names)

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def num_samples(self) -> int:
        """Total number of samples over all subjects and recordings."""
        return sum(rec.num_samples for recs in self.recordings.values() for rec in recs)

    def subject_recordings(self, subject: int) -> tuple[Recording, ...]:
        """The recordings of ``subject``; a clear :class:`DataError` for an unknown id."""
        try:
            return self.recordings[int(subject)]
        except KeyError:
            raise DataError(
                f"dataset {self.name!r} has no subject {subject!r} "
                f"(subjects: {_id_ranges(self.subjects)})"
            ) from None

    def label_counts(self, subject: int | None = None) -> np.ndarray:
        """Per-class sample counts (int64, length ``num_classes``) of one subject or of all."""
        subjects = self.subjects if subject is None else (subject,)
        counts = np.zeros(self.num_classes, dtype=np.int64)
        for s in subjects:
            for rec in self.subject_recordings(s):
                counts += np.bincount(rec.labels, minlength=self.num_classes)
        return counts


def check_finite(signals: np.ndarray, where: str, channel_names: tuple[str, ...] = ()) -> None:
    """A :class:`DataError` naming ``where``, the first sample and the channel of any NaN or
    infinite value in ``signals`` [T, channels]."""
    finite = np.isfinite(signals)
    if finite.all():
        return
    row, channel = (int(i) for i in np.argwhere(~finite)[0])
    name = channel_names[channel] if channel < len(channel_names) else str(channel)
    count = int((~finite).sum())
    raise DataError(
        f"{where}: {count} non-finite sensor value(s) (NaN or infinite), the first at sample "
        f"{row}, channel {name!r} ({signals[row, channel]}); sensor values must be finite numbers"
    )


def _id_ranges(ids: tuple[int, ...]) -> str:
    """``(1, 2, 3, 7)`` -> ``"1..3, 7"``: a compact list for error messages."""
    if not ids:
        return "none"
    parts: list[str] = []
    start = prev = ids[0]
    for i in (*ids[1:], None):
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(str(start) if start == prev else f"{start}..{prev}")
        if i is not None:
            start = prev = i
    return ", ".join(parts)
