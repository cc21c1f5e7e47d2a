"""Per-client label histograms from cohort histograms and public participation lists.

After Lam et al., "Gradient Disaggregation: Breaking Privacy in Federated Learning by
Reconstructing the User Participant Matrix" (ICML 2021): secure aggregation hides individual
updates within a round, but the server knows which clients took part in which round. If a client's
label histogram h_j is (about) the same in every round it joins, the cohort histograms satisfy

    H[r, c] = sum_j P[r, j] * h_j[c]          (P: rounds x clients, 0/1 participation)

a linear system per class c. We solve it by non-negative least squares (``scipy.optimize.nnls``)
class by class. A client is *identifiable* when its histogram is determined by the system, i.e.
when the unit vector e_j lies in the row space of P (the null space of P has no component on j);
with full column rank every client is identifiable and, with exact constant histograms, recovered
exactly. The cohort histograms may come from label attacks on aggregates
(:mod:`attacks.cohort`); their errors then propagate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from attacks.inputs import AttackError

#: Relative singular-value threshold for the rank / null space of the participation matrix.
RANK_TOL = 1e-10


@dataclass(frozen=True)
class Disaggregation:
    """Result of :func:`disaggregate`.

    Attributes:
        estimates: [K, C] non-negative least-squares histograms (per round of participation).
        identifiable: [K] bool, True where the client's histogram is determined by the system.
        rank: rank of the participation matrix (full column rank = K).
        residual: [C] norm of ``P @ estimates[:, c] - H[:, c]`` per class.
    """

    estimates: np.ndarray
    identifiable: np.ndarray
    rank: int
    residual: np.ndarray

    def counts(self) -> np.ndarray:
        """Estimates rounded to whole windows [K, C]."""
        return np.round(self.estimates).astype(np.int64)


def identifiable_clients(participation: np.ndarray) -> tuple[np.ndarray, int]:
    """([K] bool, rank): client j is identifiable iff the null space of P vanishes on j."""
    matrix = np.asarray(participation, dtype=np.float64)
    _, singular, vt = np.linalg.svd(matrix, full_matrices=True)
    threshold = RANK_TOL * max(matrix.shape) * (singular[0] if singular.size else 0.0)
    rank = int(np.sum(singular > threshold))
    null = vt[rank:]  # rows span the null space
    if null.shape[0] == 0:
        return np.ones(matrix.shape[1], dtype=bool), rank
    return np.linalg.norm(null, axis=0) < 1e-8, rank


def disaggregate(participation: np.ndarray, cohort_histograms: np.ndarray) -> Disaggregation:
    """Recover each client's label histogram from per-round cohort histograms.

    Args:
        participation: [R, K] 0/1 matrix, 1 where client k took part in round r (public).
        cohort_histograms: [R, C] label counts of each round's cohort (e.g. attack outputs).

    Raises:
        AttackError: shapes disagree, entries not 0/1, negative or non-finite histograms.
    """
    matrix = np.asarray(participation, dtype=np.float64)
    histograms = np.asarray(cohort_histograms, dtype=np.float64)
    if matrix.ndim != 2 or histograms.ndim != 2 or matrix.shape[0] != histograms.shape[0]:
        raise AttackError(
            f"participation [R, K] and cohort_histograms [R, C] must share R; got {matrix.shape} "
            f"and {histograms.shape}"
        )
    if not np.all((matrix == 0) | (matrix == 1)):
        raise AttackError("participation: expected a 0/1 matrix (rounds x clients)")
    if not np.all(np.isfinite(histograms)) or np.any(histograms < 0):
        raise AttackError("cohort_histograms: expected finite non-negative counts")
    identifiable, rank = identifiable_clients(matrix)
    num_classes = histograms.shape[1]
    estimates = np.zeros((matrix.shape[1], num_classes))
    residual = np.zeros(num_classes)
    for c in range(num_classes):
        estimates[:, c], residual[c] = nnls(matrix, histograms[:, c])
    return Disaggregation(estimates, identifiable, rank, residual)
