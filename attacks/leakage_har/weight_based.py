"""Reference-compatible LLG and LLG*: what github mariusbock/leakage_har actually ran.

Both follow the code's convention (:mod:`attacks.leakage_har.convention`): row sums r of the
summed step gradient, N = all windows, stage-1 labels in class-index order, the label list
truncated to N.

Differences from the published LLG / LLG* (:mod:`attacks.llg`):

- ``leakage_har.llg`` ("wainakh-simple"): impact ``m = (1 + 1/C) * sum_{r<0} r / N`` as published,
  but stage 2 subtracts m from a STALE index (the last class, C-1, left over from the stage-1
  loop) instead of from the picked class. So the argmin never moves, except while the last class
  itself is the minimum (it is then pushed up until another class is smaller): every class with
  ``r < 0`` appears once and all remaining labels go to one class.
- ``leakage_har.llg_star`` ("wainakh-whitebox"): its impact and offsets are sums over the WHOLE
  weight gradient of the dummy batches, which vanish identically (every column of grad_W sums to
  0 over classes; the code saw float round-off of ~1e-9). We use exactly m = 0 and s = 0, which
  needs no model: classes with ``r < 0`` once, all remaining labels to ``argmin r``, no impact
  correction. (Only exact near-ties, where the code's round-off could flip an argmin, can differ.)
"""

from __future__ import annotations

import numpy as np

from attacks.inputs import AttackContext, LastLayerUpdate
from attacks.leakage_har.convention import emit_in_index_order, summed_weight_grad


def stale_index_llg_counts(row_sums: np.ndarray, num_samples: int, impact: float) -> np.ndarray:
    """The paper code's LLG assignment with the stale-index stage 2, in closed form (O(C + picks)).

    Stage 1: classes with r < 0 in index order, ``r[c] -= m``; stage 2: pick ``argmin r``
    (lowest index on ties) then ``r[C-1] -= m``. With m <= 0, r[C-1] only grows, so a minimum
    other than C-1 is final; C-1 keeps the labels while it is strictly the smallest.
    """
    scores = np.array(row_sums, dtype=np.float64)
    num_classes = scores.shape[0]
    negative = np.flatnonzero(scores < 0)
    counts = emit_in_index_order(negative, num_classes, num_samples)
    scores[negative] -= impact
    remaining = num_samples - int(counts.sum())
    last = num_classes - 1
    smallest_other = scores[:last].min()
    while remaining > 0 and scores[last] < smallest_other:
        if impact >= 0:  # r[C-1] never grows: it keeps every remaining label
            counts[last] += remaining
            return counts
        counts[last] += 1
        scores[last] -= impact
        remaining -= 1
    counts[int(np.argmin(scores[:last]))] += remaining
    return counts


def leakage_har_llg(update: LastLayerUpdate, context: AttackContext) -> np.ndarray:
    """The paper code's LLG ("wainakh-simple") on the summed step gradient (see module doc)."""
    row_sums = summed_weight_grad(update).sum(axis=1)
    num_classes, num_samples = update.num_classes, update.num_samples
    impact = float((1.0 + 1.0 / num_classes) * row_sums[row_sums < 0].sum() / num_samples)
    return stale_index_llg_counts(row_sums, num_samples, impact)


def leakage_har_llg_star(update: LastLayerUpdate, context: AttackContext) -> np.ndarray:
    """The paper code's LLG* ("wainakh-whitebox"): m = 0, s = 0 (see module doc)."""
    row_sums = summed_weight_grad(update).sum(axis=1)
    return stale_index_llg_counts(row_sums, update.num_samples, 0.0)
