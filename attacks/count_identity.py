"""The count identity every bias-based count attack estimates (attacks.md, "exact identities").

For mean cross-entropy and a head with a bias, ``grad_b = (1/N) sum_n (p_n - y_n)``, hence

    k[c] = sum_n p[n,c] - N * grad_b[c]        (exact, any architecture).

Each attack is an estimator of the unknown softmax mass ``sum_n p[n,c]`` plus a rounding rule.
:func:`counts_from_softmax_mass` is that rule applied to a given mass estimate: fed the TRUE mass
(an "oracle", available only in tests / simulations) it returns the exact counts, which separates
estimation error from assignment and rounding bugs.
"""

from __future__ import annotations

import numpy as np

from attacks._common import largest_remainder_round
from attacks.inputs import AttackError


def counts_from_softmax_mass(
    softmax_mass: np.ndarray, bias_grad: np.ndarray, num_samples: int
) -> np.ndarray:
    """Counts ``k_hat = round(max(mass - N * grad_b, 0))`` by largest remainder, summing to N.

    Args:
        softmax_mass: estimate of ``sum_n p[n,c]`` per class [C] (over all N windows; for a
            multi-step update summed over all steps).
        bias_grad: the (average step) bias gradient [C].
        num_samples: N.
    """
    mass = np.asarray(softmax_mass, dtype=np.float64)
    grad = np.asarray(bias_grad, dtype=np.float64)
    if mass.shape != grad.shape or mass.ndim != 1:
        raise AttackError(
            f"softmax_mass shape {mass.shape} and bias_grad shape {grad.shape} must be equal 1-D"
        )
    if num_samples < 1:
        raise AttackError(f"num_samples: expected N >= 1, got {num_samples}")
    estimate = np.clip(mass - num_samples * grad, 0.0, None)
    if estimate.sum() <= 0:
        raise AttackError("the count estimate is zero for every class; cannot distribute N labels")
    return largest_remainder_round(estimate, num_samples)
