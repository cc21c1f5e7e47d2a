"""Norm clipping with optional Gaussian noise (Sun et al., "Can You Really Backdoor Federated
Learning?", arXiv 1911.07963, 2019).

Sun et al. bound every client's update to an L2 ball before averaging ("norm thresholding") and
optionally add a small Gaussian noise to the aggregate ("weak differential privacy"); both
mitigate boosted backdoor updates at little cost in accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from strategies.robust.common import (
    CLIPPED,
    SELECTED,
    AggregationResult,
    Decision,
    clip_factors,
    stack_updates,
)


def norm_clipping(
    updates: Sequence[np.ndarray] | np.ndarray,
    clip_norm: float,
    *,
    weights: Sequence[float] | None = None,
    noise_multiplier: float = 0.0,
    rng: np.random.Generator | None = None,
) -> AggregationResult:
    """Clip each update to L2 norm ``clip_norm``, average, optionally add Gaussian noise.

    Parameters
    ----------
    updates : sequence of 1-d arrays or [n, d] array
        The clients' updates (returned weights minus sent weights).
    clip_norm : float
        The L2 bound M (> 0): ``u_i * min(1, M / ||u_i||)``.
    weights : sequence of float, optional
        Averaging weights (FedAvg uses each client's number of examples); equal when None.
    noise_multiplier : float (default: 0)
        z >= 0; the aggregate gets N(0, (z * M / n)^2) per coordinate, the noise of the clipped
        sum divided by the n averaged updates, as Flower's
        ``DifferentialPrivacyServerSideFixedClipping`` computes it.
    rng : numpy Generator
        Source of the noise; required when ``noise_multiplier`` > 0.

    Returns
    -------
    AggregationResult
        The averaged clipped update; per client ``clipped`` when its norm exceeded M, else
        ``selected``; score = the update's L2 norm before clipping.
    """
    if not clip_norm > 0:
        raise ValueError(f"clip_norm must be > 0, got {clip_norm}")
    if noise_multiplier < 0:
        raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier}")
    matrix = stack_updates(updates)
    n = matrix.shape[0]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or np.any(w < 0) or not w.sum() > 0:
        raise ValueError(f"weights: expected {n} non-negative numbers with a positive sum")
    norms = np.linalg.norm(matrix, axis=1)
    factors = clip_factors(norms, clip_norm)
    aggregate = (w * factors) @ matrix / w.sum()
    if noise_multiplier > 0:
        if rng is None:
            raise ValueError("norm_clipping: noise_multiplier > 0 needs an rng")
        aggregate = aggregate + rng.normal(0.0, noise_multiplier * clip_norm / n, aggregate.shape)
    decisions = [Decision(CLIPPED if f < 1.0 else SELECTED, float(norm))
                 for f, norm in zip(factors, norms, strict=True)]
    return AggregationResult(aggregate, decisions)
