"""Input normalisation, always an explicit choice (never applied behind the caller's back).

- ``"none"``: identity (float32 copy).
- ``"standardize"``: per channel ``(x - mean) / std`` with mean and std over every *sample* of the
  given (training / server) subjects' recordings, so no statistic of a held-out or client subject
  leaks into it. A channel with std 0 is divided by 1 instead.
- ``"minmax_batch"``: the rule of the label-leakage paper's code (Bock et al.): each batch passed
  to the normaliser is scaled by ONE global minimum and maximum over the whole batch (all windows,
  samples and channels), ``(x - min) / (max - min)``; a constant batch becomes all zeros. It fits
  nothing and depends on the batch, so apply it per batch, never to a whole dataset at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from fl_har.data.dataset import HARDataset
from fl_har.data.errors import DataError

#: Input normalisations with what each one does.
NORMALIZATIONS: dict[str, str] = {
    "none": "raw sensor values",
    "standardize": "per-channel z-score (statistics of the server's subjects, else the client's own)",
    "minmax_batch": "min-max scaling with one global min/max per batch (the paper's code)",
}


@dataclass(frozen=True, eq=False)
class Normalizer:
    """Callable ``x [n, window, channels] -> float32`` of the same shape (a new array)."""

    kind: str
    mean: np.ndarray | None = None  # [channels], "standardize" only
    std: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.kind not in NORMALIZATIONS:
            raise DataError(
                f"normalization {self.kind!r} is not one of {', '.join(NORMALIZATIONS)}"
            )
        if self.kind == "standardize" and (self.mean is None or self.std is None):
            raise DataError("normalization 'standardize' needs mean and std")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self.kind == "none":
            return x.copy()
        if self.kind == "standardize":
            if x.shape[-1] != self.mean.shape[0]:
                raise DataError(
                    f"standardize: input has {x.shape[-1]} channels, "
                    f"the statistics have {self.mean.shape[0]}"
                )
            return ((x - self.mean) / self.std).astype(np.float32)
        if x.size == 0:
            return x.copy()
        low, high = float(x.min()), float(x.max())
        if high == low:
            return np.zeros_like(x)
        return ((x - low) / (high - low)).astype(np.float32)


def fit_normalizer(kind: str, dataset: HARDataset, subjects: Iterable[int]) -> Normalizer:
    """The normaliser ``kind`` (one of :data:`NORMALIZATIONS`); ``standardize`` is fitted on the
    samples of ``subjects``, which must be non-empty; the other kinds ignore them."""
    if kind not in NORMALIZATIONS:
        raise DataError(f"normalization {kind!r} is not one of {', '.join(NORMALIZATIONS)}")
    if kind != "standardize":
        return Normalizer(kind)
    subjects = tuple(dict.fromkeys(int(s) for s in subjects))  # each subject counted once
    if not subjects:
        raise DataError(
            "normalization 'standardize' needs at least one subject to compute statistics from"
        )
    total = np.zeros(dataset.num_channels)
    total_sq = np.zeros(dataset.num_channels)
    count = 0
    for subject in subjects:
        for rec in dataset.subject_recordings(subject):
            values = rec.signals.astype(np.float64)
            total += values.sum(axis=0)
            count += values.shape[0]
    if count == 0:
        raise DataError(f"normalization 'standardize': subjects {list(subjects)} have no samples")
    mean = total / count
    # Second pass around the mean: numerically safer than E[x^2] - E[x]^2 for offset signals.
    for subject in subjects:
        for rec in dataset.subject_recordings(subject):
            total_sq += ((rec.signals.astype(np.float64) - mean) ** 2).sum(axis=0)
    std = np.sqrt(total_sq / count)
    std = np.where(std > 0, std, 1.0)
    return Normalizer("standardize", mean=mean.astype(np.float32), std=std.astype(np.float32))
