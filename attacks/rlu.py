"""RLU: Chen & Vikalo, "Recovering Labels from Local Updates in Federated Learning", ICML 2024
(arXiv 2405.00955). Written from the paper's description (its public code has no licence).

Idea. For mean cross-entropy the (average step) bias gradient of class j is

    N * g_j = sum_{windows n, steps t} (p_t[n, j] - y[n, j])

(attacks.md, count identity summed over S steps of B windows, N = S * B). RLU replaces the unknown
softmax values by *erroneous confidences* measured on the server's auxiliary labelled windows:
``s_j`` = mean softmax probability at class j over auxiliary windows whose true class is NOT j.

- a window of another class i != j contributes ``p[n, j] ~ s_j``;
- a window of class j contributes ``p[n, j] - 1 = -sum_{i != j} p[n, i] ~ -sum_{i != j} s_i``.

So ``N g = A k`` with ``A[j, i] = s_j`` (i != j) and ``A[j, j] = -sum_{i != j} s_i``: a linear
system in the class counts k. Every column of A sums to 0 (as does g), so the system is completed
with ``sum_j k_j = N``; RLU solves it as least squares with ``k >= 0``
(``scipy.optimize.nnls`` on the system with the sum row weighted by ``SUM_WEIGHT``), then
largest-remainder rounding to exactly N. On a model whose softmax is the same vector for every
input (e.g. untrained-like, uniform) the model is exact, so the counts are recovered exactly.

Multi-step drift (S > 1 local steps, step size eta = ``context.rlu_lr``). The confidences change
while the client trains. RLU estimates them under the sent model (mu) and under the returned
model (mu') and models the drift in between. Here: the returned head is known from the update
itself (``W' = W - eta * S * grad_W``, same for b); the head at the start of step t is taken on
the straight line ``W - eta * t * grad_W`` (t = 0..S-1, i.e. every step moved by the average step
gradient), the auxiliary windows' head inputs h (computed once under the sent model, cached per
model version) are pushed through each of these heads, and the erroneous confidences are averaged
over the S steps. Deviations from the paper, stated: (1) the body's drift is ignored (only the head
moves), so the "returned" confidences are approximate when the whole model is trained; (2) the
paper's heuristic refinement (simulate the drift from the current counts, compare with mu', move
counts from the most over- to the most under-estimated class) is replaced by this direct
interpolation between the two heads the server actually holds, which needs no count-dependent
simulation. Without ``rlu_lr`` (None) or with ``rlu_drift=False`` only the sent model is used
(exact for S = 1).

Inputs: ``context.rlu_lr`` (eta, the clients' local step size, a public hyper-parameter the
server sets), the option ``rlu_drift`` (:data:`RLU_DRIFT`: average the confidences over the S
steps' interpolated heads), and the shared
``model_train_mode`` / ``seed`` / ``model_version`` (cache key). Needs ``context.model`` (with its
final linear layer as ``head``) and auxiliary windows of at least 2 classes.

Diagnostics (:func:`rlu_result`): ``erroneous_confidence`` (the step-averaged s, length C),
``residual`` (norm of ``A k - N g`` at the non-negative solution), ``raw_estimate`` (unrounded
counts), ``drift_steps`` (how many step heads were averaged).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from attacks._common import largest_remainder_round, stable_softmax
from attacks.calibration import (
    _model_session,
    _rng,
    cached,
    forward_head,
    head_layer,
    head_parameters,
    model_key,
)
from attacks.inputs import AttackContext, AttackError, LastLayerUpdate
from attacks.options import AttackOption
from attacks.result import AttackResult

RLU_DRIFT = AttackOption(
    "rlu_drift", True,
    "RLU: with S > 1 local steps, average the erroneous confidences over the S steps' heads "
    "(needs the clients' learning rate); false = confidences of the sent model only",
)

#: Weight of the ``sum k = N`` row relative to the per-class rows in the non-negative least squares.
SUM_WEIGHT = 10.0
#: Auxiliary windows per forward call.
AUX_CHUNK = 256


def aux_head_inputs(context: AttackContext, num_classes: int, width: int, attack: str = "rlu"
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Head inputs h [M, d] of the server's auxiliary windows under the sent model, and labels [M].

    One forward pass over the auxiliary set per model version (cached like the LLG/LLBG
    calibrations; the key holds the model version or state hash, the aux digest, seed and mode).
    """
    model = context.require_model(attack)
    windows, labels = context.require_aux(attack, num_classes)
    if np.unique(labels).size < 2:
        raise AttackError(f"{attack} needs auxiliary windows of at least 2 classes")
    key = ("rlu-aux", model_key(context, attack), context.aux_digest(), context.seed,
           context.model_train_mode, num_classes, width)

    def compute() -> np.ndarray:
        head = head_layer(model, num_classes, width, attack)
        rng = _rng(context, "rlu-aux")
        chunks = [windows[i:i + AUX_CHUNK] for i in range(0, windows.shape[0], AUX_CHUNK)]
        with _model_session(model, context.model_train_mode, int(rng.integers(2**63 - 1))):
            embeddings, _ = forward_head(model, chunks, head, attack)
        result = np.concatenate(embeddings)
        result.setflags(write=False)
        return result

    return cached(key, compute), labels  # type: ignore[return-value]


def erroneous_confidence(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``s_j`` = mean of ``probs[n, j]`` over rows n with ``labels[n] != j`` (length C)."""
    num_classes = probs.shape[1]
    not_j = labels[:, None] != np.arange(num_classes)[None, :]
    counts = not_j.sum(axis=0)
    if np.any(counts == 0):
        raise AttackError("rlu: a class has no auxiliary window of another class")
    return (probs * not_j).sum(axis=0) / counts


def rlu_system(confidence: np.ndarray) -> np.ndarray:
    """RLU's C x C matrix A with ``N g = A k`` (module docstring)."""
    total = confidence.sum()
    system = np.tile(confidence[:, None], (1, confidence.shape[0]))
    np.fill_diagonal(system, -(total - confidence))
    return system


def rlu_solve(confidence: np.ndarray, bias_grad: np.ndarray, num_samples: int
              ) -> tuple[np.ndarray, float]:
    """Non-negative least squares of ``A k = N g`` with the row ``sum k = N``; (k, residual)."""
    num_classes = confidence.shape[0]
    system = np.vstack([rlu_system(confidence), SUM_WEIGHT * np.ones((1, num_classes))])
    rhs = np.concatenate([num_samples * np.asarray(bias_grad, dtype=np.float64),
                          [SUM_WEIGHT * num_samples]])
    estimate, _ = nnls(system, rhs)
    residual = float(np.linalg.norm(rlu_system(confidence) @ estimate - num_samples * bias_grad))
    return estimate, residual


def step_confidences(embeddings: np.ndarray, labels: np.ndarray, weight: np.ndarray,
                     bias: np.ndarray, weight_step: np.ndarray, bias_step: np.ndarray,
                     steps: int) -> np.ndarray:
    """Erroneous confidences averaged over heads ``(W - t dW, b - t db)``, t = 0..steps-1."""
    total = np.zeros(weight.shape[0])
    for t in range(steps):
        logits = embeddings @ (weight - t * weight_step).T + (bias - t * bias_step)
        total += erroneous_confidence(stable_softmax(logits), labels)
    return total / steps


def rlu_result(update: LastLayerUpdate, context: AttackContext) -> AttackResult:
    """RLU counts with diagnostics (see the module docstring)."""
    bias_grad = update.require_bias_grad("rlu")
    model = context.require_model("rlu")
    num_classes, width = update.weight_grad.shape
    weight, bias = update.weight, update.bias
    if weight is None or bias is None:
        model_weight, model_bias = head_parameters(model, num_classes, width, "rlu")
        if model_bias is None:
            raise AttackError("rlu: the update has a bias gradient but model.head has no bias")
        weight = model_weight if weight is None else weight
        bias = model_bias if bias is None else bias
    embeddings, labels = aux_head_inputs(context, num_classes, width)
    drift = context.option(RLU_DRIFT) and context.rlu_lr is not None and update.local_steps > 1
    steps = update.local_steps if drift else 1
    eta = float(context.rlu_lr) if drift else 0.0
    confidence = step_confidences(
        embeddings, labels, weight, bias,
        eta * update.weight_grad, eta * bias_grad, steps,
    )
    estimate, residual = rlu_solve(confidence, bias_grad, update.num_samples)
    if estimate.sum() <= 0:
        raise AttackError("rlu: the non-negative least-squares counts are all 0")
    counts = largest_remainder_round(estimate, update.num_samples)
    return AttackResult(counts, {
        "erroneous_confidence": [float(v) for v in confidence],
        "residual": residual,
        "raw_estimate": [float(v) for v in estimate],
        "drift_steps": steps,
    })


def rlu(update: LastLayerUpdate, context: AttackContext) -> np.ndarray:
    """RLU (Chen & Vikalo, ICML 2024): counts from erroneous confidences on auxiliary data."""
    return rlu_result(update, context).counts
