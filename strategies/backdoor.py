"""The server's measurement of backdoor attacks: attack success rate and update statistics.

This is the evaluation harness, not the attack surface: the server of a simulation knows the
trigger (the config's ``[adversary]``) only to *measure* how well the backdoor works, the way a
benchmark does, and which replies were malicious only from the simulation-truth channel. Nothing
here feeds back into aggregation.

- :class:`BackdoorProbe`: every round, the global model classifies the held-out evaluation windows
  carrying the trigger; ``asr`` is the share of windows whose true class is not the target that are
  predicted as the target, ``asr_no_null`` the same without NULL windows
  (:func:`fl_har.metrics.attack_success_rate`). A trigger with a physical form besides its
  test-time one (the generated trigger: SDEdit for ``asr``, its physical burst via
  ``apply_physical``) also gets ``asr_physical`` and ``asr_physical_no_null``.
- :func:`update_statistics`: per reply, the L2 norm of its update and the cosine between it and
  the mean of the *other* benign updates of the round (leave-one-out, so a benign update is not
  compared with itself), plus the truth's ``malicious`` flag.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from attacks.backdoor import Trigger, cosine, flat_update
from fl_har.adversary import NULL_CLASSES, AdversaryPlan
from fl_har.evaluation import predict
from fl_har.metrics import attack_success_rate
from fl_har.seeding import Stream, stream_rng
from protocol import SimulationTruth


class BackdoorProbe:
    """ASR of the global model on the triggered held-out windows (see the module docstring).

    The triggered windows are built once (rng: stream ``ADVERSARY``, key 2), so every round is
    measured on the same test set.
    """

    def __init__(self, plan: AdversaryPlan, trigger: Trigger, eval_x: np.ndarray,
                 eval_y: np.ndarray, seed: int) -> None:
        self.target = plan.target
        self.eval_y = eval_y
        self.triggered = {"asr": trigger.apply(eval_x, stream_rng(seed, Stream.ADVERSARY, 2))}
        physical = getattr(trigger, "apply_physical", None)
        if physical is not None:
            self.triggered["asr_physical"] = physical(eval_x,
                                                      stream_rng(seed, Stream.ADVERSARY, 4))

    def measure(self, model: torch.nn.Module) -> dict[str, float]:
        out = {}
        for column, windows in self.triggered.items():
            pred, _ = predict(model, windows)
            out[column] = attack_success_rate(pred, self.eval_y, self.target)
            out[f"{column}_no_null"] = attack_success_rate(pred, self.eval_y, self.target,
                                                           exclude=NULL_CLASSES)
        return out


def update_statistics(
    sent: dict[str, torch.Tensor],
    replies: Sequence[tuple[int, dict[str, torch.Tensor], SimulationTruth | None]],
) -> dict[int, dict[str, float | bool]]:
    """``{partition: {update_norm, cosine_to_benign_mean, malicious, <attacker's measurements>}}``
    for the round's replies ``(partition, returned weights, simulation truth)`` to the weights
    ``sent``. A reply without truth counts as benign."""
    updates = [flat_update(state, sent) for _, state, _ in replies]
    bad = [bool(truth is not None and truth.malicious) for _, _, truth in replies]
    benign = [i for i in range(len(replies)) if not bad[i]]
    out: dict[int, dict[str, float | bool]] = {}
    for i, (partition, _, truth) in enumerate(replies):
        others = [updates[j] for j in benign if j != i]
        similarity = cosine(updates[i], np.mean(others, axis=0)) if others else float("nan")
        out[partition] = {"update_norm": float(np.linalg.norm(updates[i])),
                          "cosine_to_benign_mean": similarity, "malicious": bad[i],
                          **(dict(truth.attack_metrics) if truth is not None else {})}
    return out
