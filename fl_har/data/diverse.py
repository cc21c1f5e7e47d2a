"""Diverse batches: the label-leakage paper's recommended mitigation as a sampler wrapper.

Bock et al. (arXiv:2505.20924, Sec. 5 and 6) find that label-exclusive batches (one activity)
leak the most and recommend that a client "delay model updates until a sufficient and diverse
amount of data has been collected, ideally covering all or most activity classes". This module
wraps any :mod:`fl_har.data.samplers` sampler so every round's batch covers at least ``k``
distinct classes. Two policies, both pure functions of (seed, subject, round) like the base
samplers:

- ``"swap"`` (default; pad by swapping): start from the base sampler's batch. While it covers
  ``m < k`` classes, draw ``k - m`` of the subject's classes missing from the batch (uniformly,
  without repetition, stream ``(DIVERSE, subject, round)``) and, for each, replace one window
  of the batch's currently most frequent class (ties: lowest label; the window at a uniformly
  drawn position of that class) by a uniformly drawn window of the missing class. The batch
  keeps its size N and order; because the donor class has at least two windows whenever
  ``m < k <= N`` (pigeonhole), no covered class is lost. Windows stay distinct if the base batch's
  were (the new window's class was absent).
- ``"skip"`` (delay): round r uses the r-th base batch, in base-round order, that already covers
  ``k`` classes; the others are never trained on. This changes no batch, but a data stream with
  long single-activity stretches (sequential sampling) may skip many rounds' data; after
  ``max_skip`` consecutive failing base batches it raises :class:`DataError`.

Requirements (else :class:`DataError`): ``1 <= k <= N`` and ``k`` at most the number of classes
present in the subject's windows (the message names the subject).
"""

from __future__ import annotations

import numpy as np

from fl_har.data.errors import DataError
from fl_har.data.samplers import BatchSampler, _check_round, make_sampler
from fl_har.seeding import Stream, stream_rng

DIVERSE_POLICIES = ("swap", "skip")
DEFAULT_MAX_SKIP = 1000


def classes_covered(labels: np.ndarray) -> int:
    """Number of distinct labels in ``labels``."""
    return int(np.unique(labels).size)


class DiverseSampler:
    """A base sampler whose every batch covers at least ``min_classes`` classes (see module doc)."""

    def __init__(
        self,
        base: BatchSampler,
        labels: np.ndarray,
        min_classes: int,
        *,
        seed: int,
        subject: int,
        policy: str = "swap",
        max_skip: int = DEFAULT_MAX_SKIP,
    ) -> None:
        self.base = base
        self.labels = np.asarray(labels)
        self.min_classes = min_classes
        self.seed = seed
        self.subject = subject
        self.policy = policy
        self.max_skip = max_skip
        self.classes = np.unique(self.labels)
        self.pools = {int(c): np.flatnonzero(self.labels == c) for c in self.classes}
        self._qualifying: list[int] = []  # skip policy: base rounds that qualify, in order
        self._scanned = 0

    def batch(self, round: int) -> np.ndarray:
        round = _check_round(round)
        if self.policy == "skip":
            return self.base.batch(self._qualifying_round(round))
        return self._swapped(self.base.batch(round), round)

    # ----- swap -------------------------------------------------------------------------------

    def _swapped(self, indices: np.ndarray, round: int) -> np.ndarray:
        batch_labels = self.labels[indices]
        present, counts = np.unique(batch_labels, return_counts=True)
        shortfall = self.min_classes - present.size
        if shortfall <= 0:
            return indices
        rng = stream_rng(self.seed, Stream.DIVERSE, self.subject, round)
        missing = np.setdiff1d(self.classes, present)
        indices = indices.copy()
        count = dict(zip(present.tolist(), counts.tolist(), strict=True))
        for new_class in rng.choice(missing, size=shortfall, replace=False).tolist():
            donor = min(count, key=lambda c: (-count[c], c))  # most frequent, lowest label
            positions = np.flatnonzero(self.labels[indices] == donor)
            position = positions[rng.integers(positions.size)]
            indices[position] = rng.choice(self.pools[new_class])
            count[donor] -= 1
            count[new_class] = 1
        return indices

    # ----- skip -------------------------------------------------------------------------------

    def _qualifying_round(self, round: int) -> int:
        """The base round of the ``round``-th qualifying batch (scanned once, then remembered)."""
        while len(self._qualifying) < round:
            last = self._qualifying[-1] if self._qualifying else 0
            self._scanned += 1
            if self._scanned - last > self.max_skip:
                raise DataError(
                    f"subject {self.subject}: none of base batches {last + 1}..{self._scanned - 1} "
                    f"covers {self.min_classes} classes (diverse_k); use policy 'swap' or a "
                    "smaller diverse_k"
                )
            if classes_covered(self.labels[self.base.batch(self._scanned)]) >= self.min_classes:
                self._qualifying.append(self._scanned)
        return self._qualifying[round - 1]


def make_diverse_sampler(
    kind: str,
    labels: np.ndarray,
    batch_size: int,
    min_classes: int,
    *,
    seed: int,
    subject: int,
    policy: str = "swap",
    max_skip: int = DEFAULT_MAX_SKIP,
) -> DiverseSampler:
    """The base sampler ``kind`` wrapped so each batch covers ``min_classes`` (diverse_k) classes.

    Arguments as :func:`fl_har.data.samplers.make_sampler`, plus ``min_classes`` (k), ``policy``
    (one of :data:`DIVERSE_POLICIES`) and, for ``"skip"``, ``max_skip`` (how many failing base
    batches in a row are tolerated).
    """
    base = make_sampler(kind, labels, batch_size, seed=seed, subject=subject)
    if policy not in DIVERSE_POLICIES:
        raise DataError(
            f"unknown diverse-batch policy {policy!r}; expected one of {', '.join(DIVERSE_POLICIES)}"
        )
    if isinstance(min_classes, bool) or not isinstance(min_classes, int | np.integer):
        raise DataError(f"diverse_k must be an integer >= 1, got {min_classes!r}")
    if min_classes < 1:
        raise DataError(f"diverse_k must be >= 1, got {min_classes}")
    present = np.unique(np.asarray(labels))
    if min_classes > present.size:
        raise DataError(
            f"subject {subject}: diverse_k={min_classes} exceeds the {present.size} classes "
            f"present in its windows ({', '.join(str(c) for c in present.tolist())})"
        )
    if min_classes > batch_size:
        raise DataError(
            f"subject {subject}: diverse_k={min_classes} cannot be covered by a batch of "
            f"{batch_size} windows"
        )
    if isinstance(max_skip, bool) or not isinstance(max_skip, int) or max_skip < 1:
        raise DataError(f"max_skip must be an integer >= 1, got {max_skip!r}")
    return DiverseSampler(
        base,
        labels,
        int(min_classes),
        seed=seed,
        subject=subject,
        policy=policy,
        max_skip=max_skip,
    )
