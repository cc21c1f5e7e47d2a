"""iDLG and its set extension: labels from the sign of the bias gradient.

Zhao et al., "iDLG: Improved Deep Leakage from Gradients", 2020: for a single window (N = 1) the
bias gradient is ``p - y``, negative only at the true class, so ``argmin grad_b`` is the label,
exactly, for any architecture and activation.

Set extension (the "analytic" rule, e.g. Yin et al., CVPR 2021, for batches of distinct labels):
every class with a negative bias gradient is predicted once (most negative first, at most N).
Labels beyond that set (repeated labels, which the rule cannot see) all go to ``argmin grad_b``,
iDLG's own single-label answer.
"""

from __future__ import annotations

import numpy as np

from attacks._common import most_negative_first
from attacks.inputs import AttackContext, LastLayerUpdate


def idlg_counts(bias_grad: np.ndarray, num_samples: int) -> np.ndarray:
    """iDLG (N = 1) / negative-set rule (N > 1) on a bias gradient [C]."""
    scores = np.asarray(bias_grad, dtype=np.float64)
    counts = np.zeros(scores.shape[0], dtype=np.int64)
    first = most_negative_first(scores, num_samples)
    counts[first] = 1
    counts[int(np.argmin(scores))] += num_samples - first.shape[0]
    return counts


def idlg(update: LastLayerUpdate, context: AttackContext) -> np.ndarray:
    """iDLG on the update's bias gradient (the sign pattern does not depend on S)."""
    return idlg_counts(update.require_bias_grad("idlg"), update.num_samples)
