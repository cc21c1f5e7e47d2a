"""iLRG: Ma et al., "Instance-wise Batch Label Restoration via Gradients in Federated Learning",
ICLR 2023.

1. Class embeddings ``e_i = grad_W[i, :] / grad_b[i]`` (a weighted mean of the batch's head inputs
   with weights ``p[n,i] - y[n,i]``; for a present class close to that class's mean embedding).
   Tiny ``grad_b[i]`` are guarded by :func:`attacks._common.safe_divide`.
2. Class probabilities ``P[i, :] = softmax(W e_i + b)`` with the current last layer (W, b).
3. Least squares (Moore-Penrose pseudo-inverse) of the (C+1) x C system
   ``sum_j k_j = N`` and, for every class i, ``sum_j k_j P[j, i] - k_i = N * grad_b[i]``
   (the count identity with the softmax mass approximated by ``sum_j k_j P[j, i]``).
4. Clamp at 0 and round. Rounding choice (``context.ilrg_force_sum``):
   True (default, what we report): largest-remainder rounding to exactly N;
   False: the published code's plain ``round``, whose sum may differ from N.

For a multi-step update the average step gradient with N = all windows satisfies the same system
(the ratio in step 1 is scale-free); the model's drift during local steps is ignored.
"""

from __future__ import annotations

import numpy as np

from attacks._common import largest_remainder_round, safe_divide, stable_softmax
from attacks.calibration import head_parameters
from attacks.inputs import AttackContext, AttackError, LastLayerUpdate
from attacks.options import AttackOption

ILRG_FORCE_SUM = AttackOption(
    "ilrg_force_sum", True,
    "iLRG: correct the rounded counts to sum to N (largest remainder); false = the published "
    "rounding, whose sum may differ from N",
)


def ilrg_solution(
    weight_grad: np.ndarray, bias_grad: np.ndarray, weight: np.ndarray, bias: np.ndarray,
    num_samples: int,
) -> np.ndarray:
    """The unrounded least-squares counts [C] of iLRG (steps 1-3)."""
    num_classes = bias_grad.shape[0]
    embeddings = safe_divide(weight_grad, bias_grad[:, None])
    probs = stable_softmax(embeddings @ weight.T + bias)
    system = np.vstack([np.ones((1, num_classes)), probs.T - np.eye(num_classes)])
    rhs = np.concatenate([[float(num_samples)], num_samples * bias_grad])
    return np.linalg.pinv(system) @ rhs


def ilrg_counts(
    weight_grad: np.ndarray, bias_grad: np.ndarray, weight: np.ndarray, bias: np.ndarray,
    num_samples: int, force_sum: bool = True,
) -> np.ndarray:
    """iLRG counts: clamp the least-squares solution at 0, then round (see module docstring)."""
    estimate = np.clip(ilrg_solution(weight_grad, bias_grad, weight, bias, num_samples), 0.0, None)
    if not force_sum:
        return np.round(estimate).astype(np.int64)
    if estimate.sum() <= 0:
        raise AttackError("ilrg: the least-squares counts are all <= 0; cannot distribute N labels")
    return largest_remainder_round(estimate, num_samples)


def ilrg(update: LastLayerUpdate, context: AttackContext) -> np.ndarray:
    """iLRG on the update; W and b come from the update, else from ``context.model.head``."""
    bias_grad = update.require_bias_grad("ilrg")
    weight, bias = update.weight, update.bias
    if weight is None or bias is None:
        if context.model is None:
            raise AttackError(
                "ilrg needs the current last layer: pass LastLayerUpdate(weight=..., bias=...) "
                "or AttackContext(model=...)"
            )
        model_weight, model_bias = head_parameters(
            context.model, update.num_classes, update.weight_grad.shape[1], "ilrg"
        )
        if model_bias is None:
            raise AttackError("ilrg: the update has a bias gradient but model.head has no bias")
        weight = model_weight if weight is None else weight
        bias = model_bias if bias is None else bias
    return ilrg_counts(update.weight_grad, bias_grad, weight, bias, update.num_samples,
                       context.ilrg_force_sum)
