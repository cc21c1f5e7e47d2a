"""Krum scores (Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with Adversaries:
Byzantine Tolerant Gradient Descent", NeurIPS 2017).

Krum scores each update by the sum of squared L2 distances to its ``n - f - 2`` nearest other
updates and keeps the lowest-scoring one; Multi-Krum keeps the m lowest and averages them; Bulyan
(El Mhamdi et al., ICML 2018) starts from the same selection. The selection itself is Flower's
(``flwr.serverapp.strategy.multikrum.select_multikrum``); these scores are what it decides on,
recorded per client. Distances between weights and between updates are the same (both differ from
the other by the sent weights).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from strategies.robust.common import stack_updates


def squared_distances(matrix: np.ndarray) -> np.ndarray:
    """Pairwise squared L2 distances of the rows (via the Gram matrix, clipped at 0)."""
    squares = np.einsum("ij,ij->i", matrix, matrix)
    distances = squares[:, None] + squares[None, :] - 2.0 * matrix @ matrix.T
    np.fill_diagonal(distances, 0.0)
    return np.maximum(distances, 0.0)


def krum_scores(updates: Sequence[np.ndarray] | np.ndarray, num_malicious: int) -> np.ndarray:
    """Each update's Krum score: the sum of its squared distances to the ``max(1, n - f - 2)``
    closest other updates (as Flower computes it when n <= f + 2)."""
    if num_malicious < 0:
        raise ValueError(f"num_malicious must be >= 0, got {num_malicious}")
    distances = squared_distances(stack_updates(updates))
    n = distances.shape[0]
    closest = max(1, n - num_malicious - 2)
    scores = np.empty(n)
    for i in range(n):
        others = np.delete(distances[i], i)
        scores[i] = np.sort(others)[:closest].sum()
    return scores
