"""iLRG: Ma et al., "Instance-wise Batch Label Restoration via Gradients in Federated Learning",
ICLR 2023.

1. Class embeddings ``e_i = grad_W[i, :] / grad_b[i]`` (a weighted mean of the batch's head inputs
   with weights ``p[n,i] - y[n,i]``; for a present class close to that class's mean embedding).
   Tiny ``grad_b[i]`` are guarded by :func:`attacks._common.safe_divide`.
2. Class probabilities ``P[i, :] = softmax(W e_i + b)`` with the current last layer (W, b).
3. Least squares (Moore-Penrose pseudo-inverse) of the (C+1) x C system
   ``sum_j k_j = N`` and, for every class i, ``sum_j k_j P[j, i] - k_i = N * grad_b[i]``
   (the count identity with the softmax mass approximated by ``sum_j k_j P[j, i]``).
4. The authors' rule (BUAA-CST/iLRG ``methods.py``): negative estimates become 0 and every estimate
   above N becomes 0 (an exploded estimate of a near-singular system, common on trained models whose
   recovered softmax rows are near one-hot, is discarded instead of swallowing the batch); then
   rounding, chosen by ``context.ilrg_force_sum``:
   True (default, what we report): largest-remainder rounding of the ruled estimate to exactly N
   (the correction acts after the rule);
   False: the published rounding (``round`` of the ruled estimate, no correction), whose sum may
   differ from N.

Diagnostics (:func:`ilrg_result`): ``condition_number`` (2-norm condition number of the
(C+1) x C system; large = near-singular, estimates unreliable), ``exploded_classes`` (classes whose
estimate exceeded N and was set to 0), ``raw_estimate`` (the unrounded least-squares counts).
The "above N" test is made on the rounded estimate, as in the authors' code (clamp, round, then
zero every count above N): an estimate of N + 1e-9 (floating-point noise on an exact answer, e.g.
a single window) is kept, while N + 0.5 and beyond is discarded. The forced-sum variant then
distributes N over the kept unrounded estimates.

For a multi-step update the average step gradient with N = all windows satisfies the same system
(the ratio in step 1 is scale-free); the model's drift during local steps is ignored.
"""

from __future__ import annotations

import numpy as np

from attacks._common import largest_remainder_round, safe_divide, stable_softmax
from attacks.calibration import head_parameters
from attacks.inputs import AttackContext, AttackError, LastLayerUpdate
from attacks.options import AttackOption
from attacks.result import AttackResult

ILRG_FORCE_SUM = AttackOption(
    "ilrg_force_sum", True,
    "iLRG: correct the rounded counts to sum to N (largest remainder); false = the published "
    "rounding, whose sum may differ from N",
)


def ilrg_system(
    weight_grad: np.ndarray, bias_grad: np.ndarray, weight: np.ndarray, bias: np.ndarray,
    num_samples: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The (C+1) x C matrix and right-hand side of iLRG's least-squares system (steps 1-2)."""
    num_classes = bias_grad.shape[0]
    embeddings = safe_divide(weight_grad, bias_grad[:, None])
    probs = stable_softmax(embeddings @ weight.T + bias)
    system = np.vstack([np.ones((1, num_classes)), probs.T - np.eye(num_classes)])
    rhs = np.concatenate([[float(num_samples)], num_samples * bias_grad])
    return system, rhs


def ilrg_solution(
    weight_grad: np.ndarray, bias_grad: np.ndarray, weight: np.ndarray, bias: np.ndarray,
    num_samples: int,
) -> np.ndarray:
    """The unrounded least-squares counts [C] of iLRG (steps 1-3)."""
    system, rhs = ilrg_system(weight_grad, bias_grad, weight, bias, num_samples)
    return np.linalg.pinv(system) @ rhs


def apply_published_rule(estimate: np.ndarray, num_samples: int) -> np.ndarray:
    """The authors' rule: negative estimates -> 0, estimates that round above N -> 0."""
    ruled = np.clip(np.asarray(estimate, dtype=np.float64), 0.0, None)
    ruled[np.round(ruled) > num_samples] = 0.0
    return ruled


def round_counts(ruled: np.ndarray, num_samples: int, force_sum: bool) -> np.ndarray:
    """Step 4's rounding of the ruled estimate (see the module docstring)."""
    if not force_sum:
        return np.round(ruled).astype(np.int64)
    if ruled.sum() <= 0:
        raise AttackError(
            "ilrg: every least-squares count is <= 0 or above N; cannot distribute N labels"
        )
    return largest_remainder_round(ruled, num_samples)


def ilrg_counts(
    weight_grad: np.ndarray, bias_grad: np.ndarray, weight: np.ndarray, bias: np.ndarray,
    num_samples: int, force_sum: bool = True,
) -> np.ndarray:
    """iLRG counts: least squares, the published 0 / above-N rule, then rounding."""
    estimate = ilrg_solution(weight_grad, bias_grad, weight, bias, num_samples)
    return round_counts(apply_published_rule(estimate, num_samples), num_samples, force_sum)


def _last_layer(update: LastLayerUpdate, context: AttackContext
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    return bias_grad, weight, bias


def ilrg_result(update: LastLayerUpdate, context: AttackContext) -> AttackResult:
    """iLRG with diagnostics (condition number, exploded classes, raw estimate)."""
    bias_grad, weight, bias = _last_layer(update, context)
    system, rhs = ilrg_system(update.weight_grad, bias_grad, weight, bias, update.num_samples)
    estimate = np.linalg.pinv(system) @ rhs
    ruled = apply_published_rule(estimate, update.num_samples)
    counts = round_counts(ruled, update.num_samples, context.ilrg_force_sum)
    return AttackResult(counts, {
        "condition_number": float(np.linalg.cond(system)),
        "exploded_classes": [
            int(c) for c in np.flatnonzero(np.round(estimate) > update.num_samples)
        ],
        "raw_estimate": [float(v) for v in estimate],
    })


def ilrg(update: LastLayerUpdate, context: AttackContext) -> np.ndarray:
    """iLRG on the update; W and b come from the update, else from ``context.model.head``."""
    return ilrg_result(update, context).counts
