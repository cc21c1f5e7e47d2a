"""EBI: the bias-gradient baseline of Gat & Sharif (AISec 2024), empirical impact.

On the bias gradient v: ``V = {c : v[c] < 0}``; stage 1 predicts the classes of V once each, in
ascending order of v and at most N of them; impact ``m = sum_{c in V} v[c] / N`` (eq. 2 of the
HAR label-leakage paper); ``v[V] -= m``; stage 2 greedily predicts ``argmin v`` and
``v[c*] -= m`` until N labels exist.

m is estimated from the gradient itself, so EBI is invariant to the gradient's scale (clipping,
summed vs. averaged multi-step gradients give the same output).
"""

from __future__ import annotations

import numpy as np

from attacks._common import greedy_fill, most_negative_first
from attacks.inputs import AttackContext, LastLayerUpdate


def ebi_counts(bias_grad: np.ndarray, num_samples: int) -> np.ndarray:
    """EBI's two-stage assignment on a bias gradient [C] for N windows."""
    scores = np.array(bias_grad, dtype=np.float64)
    counts = np.zeros(scores.shape[0], dtype=np.int64)
    negative = scores < 0
    counts[most_negative_first(scores, num_samples)] = 1
    impact = float(scores[negative].sum() / num_samples)
    scores[negative] -= impact
    counts += greedy_fill(scores, num_samples - int(counts.sum()), -impact)
    return counts


def ebi(update: LastLayerUpdate, context: AttackContext) -> np.ndarray:
    """EBI on the update's bias gradient (scale-free, so the average step gradient is fine)."""
    return ebi_counts(update.require_bias_grad("ebi"), update.num_samples)
