"""FLAME (Nguyen et al., "FLAME: Taming Backdoors in Federated Learning", USENIX Security 2022,
arXiv 2101.02281), Algorithm 1.

Three steps per round:

1. Filtering: HDBSCAN over the pairwise cosine distances of the n updates with
   ``min_cluster_size = n // 2 + 1``, so at most one cluster exists and it holds a majority;
   updates outside it (HDBSCAN's noise) are excluded.
2. Clipping: ``S = median(||u_1||, ..., ||u_n||)`` over **all** n updates (taking the median over
   the admitted updates only is a common reimplementation error), and every admitted update is
   scaled by ``min(1, S / ||u_i||)``.
3. Adaptive noise: the unweighted mean of the clipped admitted updates gets Gaussian noise of
   standard deviation ``sigma = lambda * S`` per coordinate (the paper uses lambda = 0.001 for
   image classification, 0.01 for NLP).

Choices the paper leaves open, made here: the cosine distances are taken between the updates
(returned minus sent weights). Algorithm 1 writes them on the local models W_i, whose cosine is
dominated by the shared global model; the text motivates the filter by the angular deviation of
the *updates*. The vectors must hold trainable parameters only: normalisation statistics
(BatchNorm running means) are not part of the clustering vector (another common error), which
is why the Flower strategy flattens parameters without buffers. HDBSCAN runs with
``min_samples = 1`` and ``allow_single_cluster = True``: with a majority-sized minimum cluster,
an all-benign round is a single cluster, which HDBSCAN would otherwise declare noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.cluster import HDBSCAN

from strategies.robust.common import (
    CLIPPED,
    EXCLUDED,
    SELECTED,
    AggregationResult,
    Decision,
    clip_factors,
    stack_updates,
)

DEFAULT_LAMBDA = 0.001


def cosine_distances(matrix: np.ndarray) -> np.ndarray:
    """Pairwise ``1 - cos`` of the rows, in [0, 2], zero diagonal; a zero row is at distance 1
    (no direction) from every other row."""
    norms = np.linalg.norm(matrix, axis=1)
    safe = np.where(norms > 0, norms, 1.0)
    unit = matrix / safe[:, None]
    distances = 1.0 - unit @ unit.T
    zero = norms == 0
    distances[zero, :] = 1.0
    distances[:, zero] = 1.0
    distances = np.clip((distances + distances.T) / 2.0, 0.0, 2.0)
    np.fill_diagonal(distances, 0.0)
    return distances


def majority_cluster(distances: np.ndarray) -> np.ndarray:
    """Boolean mask of the updates in HDBSCAN's majority cluster (FLAME's filtering step)."""
    n = distances.shape[0]
    if n < 3:
        # A "majority" of one or two updates is all of them: nothing to compare against.
        return np.ones(n, dtype=bool)
    clusterer = HDBSCAN(
        min_cluster_size=n // 2 + 1,
        min_samples=1,
        metric="precomputed",
        allow_single_cluster=True,
        copy=True,
    )
    labels = clusterer.fit(distances).labels_
    clustered = labels[labels >= 0]
    if clustered.size == 0:
        return np.zeros(n, dtype=bool)
    largest = np.bincount(clustered).argmax()
    return labels == largest


def flame(
    updates: Sequence[np.ndarray] | np.ndarray,
    *,
    noise_lambda: float = DEFAULT_LAMBDA,
    rng: np.random.Generator | None = None,
) -> AggregationResult:
    """FLAME's filtered, clipped and noised aggregate of one round's updates.

    Parameters
    ----------
    updates : sequence of 1-d arrays or [n, d] array
        The clients' updates (returned weights minus sent weights), trainable parameters only.
    noise_lambda : float (default: 0.001)
        lambda >= 0: noise standard deviation per coordinate is ``lambda * S``; 0 = no noise.
    rng : numpy Generator
        Source of the noise; required when ``noise_lambda`` > 0.

    Returns
    -------
    AggregationResult
        The aggregate (None when HDBSCAN admits no update); per client ``excluded`` (outside the
        majority cluster), ``clipped`` (admitted, norm above S) or ``selected`` (admitted,
        unchanged); score = the update's L2 norm.
    """
    if noise_lambda < 0:
        raise ValueError(f"noise_lambda must be >= 0, got {noise_lambda}")
    matrix = stack_updates(updates)
    norms = np.linalg.norm(matrix, axis=1)
    admitted = majority_cluster(cosine_distances(matrix))
    bound = float(np.median(norms))  # over all updates, not only the admitted ones
    factors = clip_factors(norms, bound)
    decisions = [
        Decision(EXCLUDED if not ok else CLIPPED if f < 1.0 else SELECTED, float(norm))
        for ok, f, norm in zip(admitted, factors, norms, strict=True)
    ]
    if not admitted.any():
        return AggregationResult(None, decisions)
    aggregate = factors[admitted] @ matrix[admitted] / admitted.sum()
    if noise_lambda > 0:
        if rng is None:
            raise ValueError("flame: noise_lambda > 0 needs an rng")
        aggregate = aggregate + rng.normal(0.0, noise_lambda * bound, aggregate.shape)
    return AggregationResult(aggregate, decisions)
