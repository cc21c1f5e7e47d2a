"""LLBG: Gat & Sharif, "Harmful Bias: A General Label-Leakage Attack on Federated Learning from
Bias Gradients", AISec 2024.

Works on the SUMMED step gradient of the bias, ``u = S * (average step gradient)``, whose entry
for class c is ``(1/B) * (sum_n p[n,c] - k[c])`` over all N = S * B windows. One label of class c
therefore moves u[c] by ``-(1 - conf[c]) / B`` when the model puts confidence conf[c] on it.

- stage 1: every class with ``u[c] < 0`` is predicted once and ``u[c] += (1 - conf[c]) / B``;
- offset: ``u -= S / C`` (untrained model: each window puts ~1/C softmax mass on every class in
  each step);
- stage 2: until N labels exist predict ``argmin u`` and ``u[c*] += (1 - conf[c*]) / B``.

Untrained form (``llbg``): conf = 0, impact 1/B. Trained form (``llbg_trained``): conf[c] is the
mean softmax probability of the true class over the server's auxiliary windows of class c on the
current model (:func:`attacks.calibration.class_confidences`), or one constant gamma
(``context.llbg_confidence``).

Notes: the offset is a uniform shift applied after stage 1, so it never changes which class
stage 2 picks; it only keeps u near 0 at the end (it is applied for fidelity). The absolute impact
1/B makes LLBG sensitive to the gradient's scale (clipping changes its output).
Deviation (needed for counts that sum to N): if N < #{u < 0}, stage 1 keeps the N most negative.
"""

from __future__ import annotations

import numpy as np

from attacks._common import greedy_fill, most_negative_first
from attacks.calibration import class_confidences
from attacks.inputs import AttackContext, LastLayerUpdate
from attacks.options import AttackOption

LLBG_CONFIDENCE = AttackOption(
    "llbg_confidence", -1.0,
    "trained LLBG: one constant confidence in [0, 1) for every class; negative = estimate per "
    "class on the server's auxiliary windows",
    lambda v: None if v < 1.0 else "a value < 1 (in [0, 1), or negative to estimate)",
)


def llbg_counts(
    summed_bias_grad: np.ndarray, local_steps: int, windows_per_step: int, confidence: np.ndarray
) -> np.ndarray:
    """LLBG's assignment on the summed bias gradient u [C] with per-class confidences [C]."""
    scores = np.array(summed_bias_grad, dtype=np.float64)
    num_classes = scores.shape[0]
    num_samples = local_steps * windows_per_step
    impact = (1.0 - np.broadcast_to(np.asarray(confidence, dtype=np.float64), (num_classes,)))
    impact = impact / windows_per_step
    counts = np.zeros(num_classes, dtype=np.int64)
    first = most_negative_first(scores, num_samples)
    counts[first] = 1
    scores[first] += impact[first]
    scores -= local_steps / num_classes
    counts += greedy_fill(scores, num_samples - int(counts.sum()), impact)
    return counts


def llbg(update: LastLayerUpdate, context: AttackContext) -> np.ndarray:
    """Untrained-model LLBG: impact 1/B, offset S/C."""
    summed = update.local_steps * update.require_bias_grad("llbg")
    return llbg_counts(summed, update.local_steps, update.windows_per_step, np.zeros(1))


def llbg_trained(update: LastLayerUpdate, context: AttackContext) -> np.ndarray:
    """Trained-model LLBG: impact (1 - conf[c]) / B.

    Confidences: ``context.llbg_confidence`` if set (one constant for all classes), otherwise
    estimated on ``context.aux_windows`` with ``context.model`` (cached per model version).
    """
    summed = update.local_steps * update.require_bias_grad("llbg_trained")
    if context.llbg_confidence is not None:
        confidence = np.array([context.llbg_confidence])
    else:
        num_classes, width = update.weight_grad.shape
        confidence = class_confidences(
            context, update.windows_per_step, num_classes, width, "llbg_trained"
        )
    return llbg_counts(summed, update.local_steps, update.windows_per_step, confidence)
