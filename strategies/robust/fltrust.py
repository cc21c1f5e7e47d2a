"""FLTrust (Cao, Fang, Liu, Gong, "FLTrust: Byzantine-robust Federated Learning via Trust
Bootstrapping", NDSS 2021, arXiv 2012.13995).

The server trains on a small clean root dataset itself, which gives a root update g0 each round.
Each client's trust score is ``TS_i = ReLU(cos(g_i, g0))``; each client update is rescaled to the
root update's norm, ``g_i * ||g0|| / ||g_i||``, so a boosted update gains nothing from its
magnitude; the aggregate is the trust-weighted average ``sum_i TS_i * g_i' / sum_j TS_j``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from strategies.robust.common import EXCLUDED, SELECTED, AggregationResult, Decision, stack_updates


def fltrust(
    updates: Sequence[np.ndarray] | np.ndarray, root_update: np.ndarray
) -> AggregationResult:
    """Trust-weighted aggregate of norm-matched updates (Cao et al. 2021, Algorithm 1).

    Parameters
    ----------
    updates : sequence of 1-d arrays or [n, d] array
        The clients' updates (returned weights minus sent weights).
    root_update : 1-d array
        The server's own update on its root data this round (same layout).

    Returns
    -------
    AggregationResult
        The aggregate, or None when every trust score is 0 (the paper's sum over zero weights:
        the global model does not move); per client ``selected`` with positive trust, else
        ``excluded``; score = the trust score ReLU(cos). An all-zero update (or root update) has
        no direction and gets trust 0. The paper's global learning rate alpha is the server's
        learning rate here and is 1: updates are already weight differences.
    """
    matrix = stack_updates(updates)
    root = np.asarray(root_update, dtype=np.float64).ravel()
    if root.size != matrix.shape[1]:
        raise ValueError(
            f"root_update has {root.size} values but the updates have {matrix.shape[1]}")
    if not np.all(np.isfinite(root)):
        raise ValueError("root_update contains NaN or infinite values")
    norms = np.linalg.norm(matrix, axis=1)
    root_norm = float(np.linalg.norm(root))
    trust = np.zeros(matrix.shape[0])
    usable = norms > 0
    if root_norm > 0:
        trust[usable] = np.maximum(0.0, matrix[usable] @ root / (norms[usable] * root_norm))
    decisions = [Decision(SELECTED if t > 0 else EXCLUDED, float(t)) for t in trust]
    if not trust.sum() > 0:
        return AggregationResult(None, decisions)
    scale = np.zeros_like(norms)
    scale[usable] = root_norm / norms[usable]
    aggregate = (trust * scale) @ matrix / trust.sum()
    return AggregationResult(aggregate, decisions)
