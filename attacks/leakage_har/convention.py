"""The paper code's gradient convention, derived from a :class:`attacks.LastLayerUpdate`.

github mariusbock/leakage_har attacks the SUM of the S local step gradients
(``(theta_sent - theta_returned) / lr``) with N = all windows of the update. Our updates carry
the AVERAGE step gradient (:func:`attacks.pseudo_gradient` divides by lr * S), so the compat
variants multiply by S. For S = 1 both conventions coincide. Only the scale-sensitive variant
(``leakage_har.ilrg``) can tell the difference; the others estimate their impact from the
gradient itself.
"""

from __future__ import annotations

import numpy as np

from attacks.inputs import LastLayerUpdate


def summed_weight_grad(update: LastLayerUpdate) -> np.ndarray:
    """``S * weight_grad``: the sum of the local step gradients of W."""
    return update.local_steps * update.weight_grad


def summed_bias_grad(update: LastLayerUpdate, attack: str) -> np.ndarray:
    """``S * bias_grad``: the sum of the local step gradients of b."""
    return update.local_steps * update.require_bias_grad(attack)


def emit_in_index_order(classes: np.ndarray, num_classes: int, limit: int) -> np.ndarray:
    """Counts for 'each class in ``classes`` once', truncated to ``limit`` in class-index order.

    The paper code appends stage-1 labels in class-index order and finally keeps the first N
    labels, so with more negative classes than windows the highest indices are dropped.
    """
    counts = np.zeros(num_classes, dtype=np.int64)
    counts[np.sort(classes)[: max(limit, 0)]] = 1
    return counts
