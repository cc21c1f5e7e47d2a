"""Building blocks shared by every label-reconstruction attack (written once, used everywhere).

- :func:`greedy_fill`: the "stage 2" of LLG / EBI / LLBG (repeatedly predict the class with the
  smallest score and raise that score by the class's impact), with a heap: O(N log C) instead of
  the O(N * C) repeated ``argmin`` of the papers, and the same result (ties go to the lowest class
  index, exactly like ``numpy.argmin``).
- :func:`largest_remainder_round`: Hamilton's largest-remainder rounding of non-negative real
  counts to integers with a prescribed total.
- :func:`safe_divide`: sign-preserving division for tiny denominators (bias-gradient entries).
- :func:`stable_softmax`.

numpy only; the attack modules convert tensors before calling these.
"""

from __future__ import annotations

import heapq

import numpy as np

#: Denominators with a smaller magnitude are replaced by +-TINY_DENOMINATOR in :func:`safe_divide`.
TINY_DENOMINATOR = 1e-12


def greedy_fill(
    scores: np.ndarray, num_labels: int, increments: float | np.ndarray
) -> np.ndarray:
    """Greedy label assignment used by the second stage of LLG, EBI and LLBG.

    ``num_labels`` times: predict ``c* = argmin(scores)`` and set ``scores[c*] += increments[c*]``
    (Wainakh et al. 2022, Alg. 1 stage 2; Gat & Sharif 2024, stage 2). A heap keyed on
    ``(score, class index)`` gives the identical sequence of picks as repeated ``numpy.argmin``
    (lowest index on ties, same floating-point updates) in O(N log C).

    Args:
        scores: float array [C], the current per-class scores (not modified).
        num_labels: how many labels to assign (>= 0).
        increments: amount added to a class's score each time it is picked: a scalar or an array
            [C]. Non-positive increments are allowed (the papers' formulas can produce them);
            the picked class then stays the minimum and receives all remaining labels.

    Returns:
        int64 array [C] of counts summing to ``num_labels``.
    """
    values = np.asarray(scores, dtype=np.float64)
    num_classes = values.shape[0]
    steps = np.broadcast_to(np.asarray(increments, dtype=np.float64), (num_classes,))
    counts = np.zeros(num_classes, dtype=np.int64)
    if num_labels <= 0:
        return counts
    heap = [(float(v), c) for c, v in enumerate(values)]
    heapq.heapify(heap)
    for _ in range(num_labels):
        value, cls = heap[0]
        counts[cls] += 1
        heapq.heapreplace(heap, (value + float(steps[cls]), cls))
    return counts


def largest_remainder_round(values: np.ndarray, total: int) -> np.ndarray:
    """Round non-negative reals to integers summing to ``total`` (Hamilton's method).

    Quotas ``q = values * total / sum(values)``; every class gets ``floor(q)`` and the
    ``total - sum(floor(q))`` remaining units go to the largest fractional parts (lowest class
    index first on ties). Values that already sum to ``total`` are left as close as possible to
    themselves (near-integers round to themselves).

    Raises:
        ValueError: negative or non-finite values, or all values zero while ``total > 0``.
    """
    quotas = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(quotas)) or np.any(quotas < 0):
        raise ValueError(f"largest_remainder_round needs finite non-negative values, got {quotas}")
    if total < 0:
        raise ValueError(f"largest_remainder_round needs total >= 0, got {total}")
    mass = quotas.sum()
    if total == 0:
        return np.zeros(quotas.shape[0], dtype=np.int64)
    if mass <= 0:
        raise ValueError("largest_remainder_round cannot distribute a positive total over all-zero values")
    scaled = quotas * (total / mass)
    floors = np.floor(scaled)
    counts = floors.astype(np.int64)
    shortfall = int(total - counts.sum())
    if shortfall > 0:
        remainders = scaled - floors
        # Stable sort on the negated remainder: largest first, lowest index first on ties.
        order = np.argsort(-remainders, kind="stable")
        counts[order[:shortfall]] += 1
    elif shortfall < 0:  # only reachable through floating-point round-off in `scaled`
        order = np.argsort(scaled - floors, kind="stable")
        order = order[counts[order] > 0]
        counts[order[:-shortfall]] -= 1
    return counts


def safe_divide(
    numerator: np.ndarray, denominator: np.ndarray, tiny: float = TINY_DENOMINATOR
) -> np.ndarray:
    """``numerator / denominator`` with denominators of magnitude < ``tiny`` replaced by ``+-tiny``.

    The sign is kept (an exact zero counts as positive), so iLRG's embedding estimate
    ``grad_W[i] / grad_b[i]`` stays finite and points the right way for classes whose bias
    gradient vanishes (Ma et al., ICLR 2023, Sec. 4.1). Broadcasting follows numpy.
    """
    den = np.asarray(denominator, dtype=np.float64)
    sign = np.where(den < 0, -1.0, 1.0)
    guarded = np.where(np.abs(den) < tiny, sign * tiny, den)
    return np.asarray(numerator, dtype=np.float64) / guarded


def stable_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis`` computed after subtracting the maximum (no overflow)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def most_negative_first(values: np.ndarray, limit: int) -> np.ndarray:
    """Indices of the negative entries of ``values``, most negative first, at most ``limit``.

    Stage 1 of EBI (and of our LLG / LLBG when a batch has fewer windows than negative
    classes): a stable sort, so ties keep class-index order.
    """
    negative = np.flatnonzero(values < 0)
    order = negative[np.argsort(values[negative], kind="stable")]
    return order[: max(limit, 0)]
