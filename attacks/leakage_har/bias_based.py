"""Reference-compatible EBI, LLBG and iLRG: what github mariusbock/leakage_har actually ran.

All use the code's convention (:mod:`attacks.leakage_har.convention`): the summed step gradient
``S * bias_grad`` and N = all windows of the update.

- ``leakage_har.ebi``: identical to the published EBI (:mod:`attacks.ebi`); EBI is scale-free, so
  the summed convention gives the same counts.
- ``leakage_har.llbg`` ("llbgAVG"): the LLG-style impact ``m = (1 + 1/C) * sum_{v<0} v / N``
  estimated from the gradient instead of LLBG's absolute 1/B, no S/C offset, confidence 0, stage 1
  in class-index order (truncated to N in that order): nearly identical to EBI.
- ``leakage_har.ilrg`` ("iLRG"): uniform class probabilities (1/C) instead of the recovered ones, so
  the least-squares solution is ``k_i = N * (1/C - v_i)`` for a zero-sum v; clamp at 0, round half
  to even (numpy), counts > N set to 0, labels emitted class by class and truncated at N, the
  shortfall padded with uniformly random labels drawn from ``context.seed``. Sensitive to the
  gradient's absolute scale (clipping, summed steps).
"""

from __future__ import annotations

import hashlib

import numpy as np

from attacks._common import greedy_fill
from attacks.ebi import ebi_counts
from attacks.inputs import AttackContext, LastLayerUpdate
from attacks.leakage_har.convention import emit_in_index_order, summed_bias_grad


def leakage_har_ebi(update: LastLayerUpdate, context: AttackContext) -> np.ndarray:
    """The paper code's EBI (= published EBI) on the summed step gradient."""
    return ebi_counts(summed_bias_grad(update, "leakage_har.ebi"), update.num_samples)


def llbg_avg_counts(summed_bias_grad_: np.ndarray, num_samples: int) -> np.ndarray:
    """The paper code's "llbgAVG" assignment on a summed bias gradient v [C]."""
    scores = np.array(summed_bias_grad_, dtype=np.float64)
    num_classes = scores.shape[0]
    negative = np.flatnonzero(scores < 0)
    impact = float((1.0 + 1.0 / num_classes) * scores[negative].sum() / num_samples)
    counts = emit_in_index_order(negative, num_classes, num_samples)
    scores[negative] -= impact
    counts += greedy_fill(scores, num_samples - int(counts.sum()), -impact)
    return counts


def leakage_har_llbg(update: LastLayerUpdate, context: AttackContext) -> np.ndarray:
    """The paper code's LLBG ("llbgAVG"), see module doc."""
    return llbg_avg_counts(summed_bias_grad(update, "leakage_har.llbg"), update.num_samples)


def uniform_ilrg_counts(
    summed_bias_grad_: np.ndarray, num_samples: int, rng: np.random.Generator
) -> np.ndarray:
    """The paper code's iLRG with uniform probabilities, its rounding, truncation and padding."""
    grad = np.asarray(summed_bias_grad_, dtype=np.float64)
    num_classes = grad.shape[0]
    uniform = np.full((num_classes, num_classes), 1.0 / num_classes)
    system = np.vstack([np.ones((1, num_classes)), uniform - np.eye(num_classes)])
    rhs = np.concatenate([[float(num_samples)], num_samples * grad])
    solution = np.linalg.pinv(system) @ rhs
    rounded = np.round(np.where(solution > 0, solution, 0.0)).astype(np.int64)
    rounded[rounded > num_samples] = 0
    emitted = np.minimum(rounded, num_samples - np.concatenate([[0], np.cumsum(rounded)[:-1]]))
    counts = np.clip(emitted, 0, None)
    shortfall = num_samples - int(counts.sum())
    if shortfall > 0:
        counts += np.bincount(rng.integers(0, num_classes, size=shortfall), minlength=num_classes)
    return counts


def leakage_har_ilrg(update: LastLayerUpdate, context: AttackContext) -> np.ndarray:
    """The paper code's iLRG (uniform probabilities), padding drawn from ``context.seed``."""
    tag = int.from_bytes(hashlib.sha1(b"leakage_har.ilrg").digest()[:4], "little")
    rng = np.random.default_rng(np.random.SeedSequence([context.seed, tag]))
    return uniform_ilrg_counts(
        summed_bias_grad(update, "leakage_har.ilrg"), update.num_samples, rng
    )
