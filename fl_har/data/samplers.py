"""Which N windows a client trains on in a round: the three sampling strategies of the label-leakage
paper (Bock et al., "sequential", "shuffle", "balanced").

A sampler is a pure function of (seed, subject, round): ``batch(r)`` returns the same indices
whatever rounds were asked before, so a run can resume at any round. Rounds count from 1 (Flower's
convention); round 1 is the first batch. Indices point into the subject's windows (in recording
order, as :func:`fl_har.data.windowing.subject_windows` returns them). Every sampler needs
``1 <= N <= number of windows`` (else :class:`DataError`).

What happens when the data runs out (n windows, batch size N, ``B = n // N`` batches per epoch):

- ``sequential``: round r takes the consecutive windows ``[b*N, (b+1)*N)`` with ``b = (r-1) % B``.
  After B rounds it wraps around to the first window. Like the paper's code (last partial batch
  dropped), the final ``n - B*N`` windows are never used and no batch joins the end of the data to
  its start. No randomness.
- ``shuffle``: epoch ``e = (r-1) // B`` uses its own permutation of all n windows, drawn from
  stream ``(SHUFFLE, subject, e)``; round r takes slice ``b = (r-1) % B`` of it. Each batch has N distinct
  windows; each epoch leaves out a different random ``n - B*N`` windows.
- ``balanced``: each round independently (stream ``(BALANCED, subject, r)``) splits N over the P
  classes present in the subject's windows: every class gets ``N // P`` windows and ``N % P``
  classes, chosen uniformly at random without repetition, get one more (so counts differ by at most
  one). A class with at least its quota of windows is drawn without replacement. A class with
  fewer windows (m < quota) is drawn with replacement as evenly as possible: each of its windows
  ``quota // m`` times plus ``quota % m`` distinct ones once more. The batch is then shuffled.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from fl_har.data.errors import DataError
from fl_har.seeding import Stream, stream_rng

#: The samplers, in display order, with what each one does (config validation and ``--help`` read
#: this; the module docstring has the exact rules).
SAMPLERS: dict[str, str] = {
    "shuffle": "N distinct windows per round from a per-epoch random permutation",
    "sequential": "the next N consecutive windows of the recording each round (wraps around)",
    "balanced": "N windows split as evenly as possible over the classes the subject has",
    "diverse": "a base sampler's batch (client.diverse_base) with windows swapped in until it "
    "covers at least k classes (client.diverse_min_classes; 0 = every class the subject has, "
    "at most N): the paper's recommended mitigation, fl_har.data.diverse",
}



class BatchSampler(Protocol):
    def batch(self, round: int) -> np.ndarray:
        """int64 indices into the subject's windows, length N, for server round ``round`` (>= 1)."""
        ...


def _check_round(round: object) -> int:
    if isinstance(round, bool) or not isinstance(round, int | np.integer) or round < 1:
        raise DataError(f"round must be an integer >= 1 (rounds count from 1), got {round!r}")
    return int(round)


def _check_nonnegative_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise DataError(f"sampler {name} must be a non-negative integer, got {value!r}")
    return int(value)


class SequentialSampler:
    """Consecutive windows in recording order, continuing round to round (see module docstring)."""

    def __init__(self, num_windows: int, batch_size: int) -> None:
        self.num_windows = num_windows
        self.batch_size = batch_size
        self.batches_per_epoch = num_windows // batch_size

    def batch(self, round: int) -> np.ndarray:
        slot = (_check_round(round) - 1) % self.batches_per_epoch
        return np.arange(slot * self.batch_size, (slot + 1) * self.batch_size, dtype=np.int64)


class ShuffleSampler:
    """Seeded permutation per epoch, cut into N-window batches (see module docstring)."""

    def __init__(self, num_windows: int, batch_size: int, *, seed: int, subject: int) -> None:
        self.num_windows = num_windows
        self.batch_size = batch_size
        self.batches_per_epoch = num_windows // batch_size
        self.seed = seed
        self.subject = subject

    def permutation(self, epoch: int) -> np.ndarray:
        rng = stream_rng(self.seed, Stream.SHUFFLE, self.subject, epoch)
        return rng.permutation(self.num_windows).astype(np.int64)

    def batch(self, round: int) -> np.ndarray:
        epoch, slot = divmod(_check_round(round) - 1, self.batches_per_epoch)
        return self.permutation(epoch)[slot * self.batch_size : (slot + 1) * self.batch_size]


class BalancedSampler:
    """About N / P windows of each of the P present classes, shuffled (see module docstring)."""

    def __init__(self, labels: np.ndarray, batch_size: int, *, seed: int, subject: int) -> None:
        self.batch_size = batch_size
        self.seed = seed
        self.subject = subject
        self.classes = np.unique(labels)
        self.pools = [np.flatnonzero(labels == c).astype(np.int64) for c in self.classes]

    def quotas(self, rng: np.random.Generator) -> np.ndarray:
        """Windows per present class: ``N // P`` each, +1 for ``N % P`` random classes."""
        num_classes = len(self.classes)
        base, extra = divmod(self.batch_size, num_classes)
        quotas = np.full(num_classes, base, dtype=np.int64)
        quotas[rng.choice(num_classes, size=extra, replace=False)] += 1
        return quotas

    def batch(self, round: int) -> np.ndarray:
        rng = stream_rng(
            self.seed, Stream.BALANCED, self.subject, _check_round(round)
        )
        picks = []
        for pool, quota in zip(self.pools, self.quotas(rng), strict=True):
            if quota <= len(pool):
                picks.append(rng.choice(pool, size=quota, replace=False))
                continue
            repeats, rest = divmod(int(quota), len(pool))
            picks.append(np.tile(pool, repeats))
            picks.append(rng.choice(pool, size=rest, replace=False))
        return rng.permutation(np.concatenate(picks)).astype(np.int64)


def make_sampler(
    kind: str,
    labels: np.ndarray,
    batch_size: int,
    *,
    seed: int,
    subject: int,
    min_classes: int = 0,
    base: str = "shuffle",
) -> BatchSampler:
    """The sampler ``kind`` (one of :data:`SAMPLERS`) over a subject's window labels ``labels``.

    ``min_classes`` (k) and ``base`` apply to ``"diverse"`` only: the ``base`` sampler's batches
    made to cover at least k classes (:func:`fl_har.data.diverse.make_diverse_sampler`, policy
    ``swap``); k = 0 means every class present in ``labels``, capped at ``batch_size``.
    """
    if kind == "diverse":
        from fl_har.data.diverse import make_diverse_sampler  # it builds on this module

        if base == "diverse" or base not in SAMPLERS:
            raise DataError(f"diverse base sampler {base!r}: expected shuffle, sequential or "
                            "balanced")
        if min_classes == 0:
            min_classes = min(int(np.unique(np.asarray(labels)).size), int(batch_size))
        return make_diverse_sampler(base, labels, batch_size, min_classes, seed=seed,
                                    subject=subject)
    if kind not in SAMPLERS:
        raise DataError(f"unknown sampler {kind!r}; expected one of {', '.join(SAMPLERS)}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"sampler labels must be a 1-D integer array, got {labels.dtype} {labels.shape}"
        )
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int | np.integer)
        or batch_size < 1
    ):
        raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
    seed = _check_nonnegative_int("seed", seed)
    subject = _check_nonnegative_int("subject", subject)
    batch_size = int(batch_size)
    if batch_size > len(labels):
        raise DataError(
            f"subject {subject}: batch size {batch_size} exceeds its {len(labels)} windows "
            "(choose a smaller batch size or give the subject more data)"
        )
    if kind == "sequential":
        return SequentialSampler(len(labels), batch_size)
    if kind == "shuffle":
        return ShuffleSampler(len(labels), batch_size, seed=seed, subject=subject)
    return BalancedSampler(labels, batch_size, seed=seed, subject=subject)
