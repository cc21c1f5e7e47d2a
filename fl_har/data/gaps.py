"""Repair policy for short gaps of missing sensor values (dropped packets in the published CSVs).

A *gap* is a maximal run of consecutive missing samples in one channel. Gaps of at most
``max_gap`` samples are filled by linear interpolation between the neighbouring valid samples; a
gap touching the start or end of the recording takes the nearest valid value. Longer gaps are not
guessed at: :func:`fill_short_gaps` raises :class:`GapTooLongError` so the caller can name the file,
row and column. ``max_gap=None`` fills every gap (only for data known to be smooth enough).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Gap:
    """``length`` missing samples starting at index ``start``."""

    start: int
    length: int


class GapTooLongError(Exception):
    """A gap exceeds the repair limit (or the channel has no valid sample at all)."""

    def __init__(self, gap: Gap, max_gap: int | None) -> None:
        super().__init__(f"{gap.length} missing samples from index {gap.start} (limit {max_gap})")
        self.gap = gap
        self.max_gap = max_gap


def missing_runs(missing: np.ndarray) -> list[Gap]:
    """Maximal runs of True in a 1-D boolean array, in order."""
    padded = np.concatenate([[False], np.asarray(missing, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [
        Gap(int(start), int(stop - start))
        for start, stop in zip(edges[::2], edges[1::2], strict=True)
    ]


def fill_short_gaps(values: np.ndarray, max_gap: int | None) -> np.ndarray:
    """A copy of the 1-D ``values`` with NaN gaps filled (see the module docstring)."""
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    if not missing.any():
        return values.copy()
    gaps = missing_runs(missing)
    if missing.all():
        raise GapTooLongError(gaps[0], max_gap)
    if max_gap is not None:
        for gap in gaps:
            if gap.length > max_gap:
                raise GapTooLongError(gap, max_gap)
    positions = np.arange(values.shape[0])
    filled = values.copy()
    # np.interp holds the first/last valid value beyond the ends: the edge rule above.
    filled[missing] = np.interp(positions[missing], positions[~missing], values[~missing])
    return filled
