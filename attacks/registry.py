"""The single entry point: attack names, descriptions and :func:`reconstruct_labels`."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from attacks.ebi import ebi
from attacks.idlg import idlg
from attacks.ilrg import ilrg, ilrg_result
from attacks.inputs import AttackContext, AttackError, LastLayerUpdate
from attacks.leakage_har import (
    leakage_har_ebi,
    leakage_har_ilrg,
    leakage_har_llbg,
    leakage_har_llg,
    leakage_har_llg_star,
)
from attacks.llbg import llbg, llbg_trained
from attacks.llg import llg, llg_plus, llg_star
from attacks.result import AttackResult
from attacks.rlu import rlu, rlu_result

AttackFunction = Callable[[LastLayerUpdate, AttackContext], np.ndarray]


class _Attack(NamedTuple):
    run: AttackFunction
    description: str


_ATTACKS: dict[str, _Attack] = {
    "llg": _Attack(llg, "LLG (Wainakh et al. 2022): weight row sums, impact from the gradient"),
    "llg_plus": _Attack(llg_plus, "LLG+: LLG calibrated on the server's auxiliary windows (model + aux)"),
    "llg_star": _Attack(llg_star, "LLG*: LLG calibrated on dummy inputs (model + input_shape)"),
    "ebi": _Attack(ebi, "EBI (Gat & Sharif 2024 baseline): bias gradient, impact from the gradient"),
    "llbg": _Attack(llbg, "LLBG (Gat & Sharif 2024), untrained form: impact 1/B, offset S/C"),
    "llbg_trained": _Attack(
        llbg_trained, "LLBG trained form: impact (1-conf)/B, conf from aux windows or a constant"
    ),
    "ilrg": _Attack(ilrg, "iLRG (Ma et al. 2023): recovered class probabilities + least squares"),
    "rlu": _Attack(rlu, "RLU (Chen & Vikalo 2024): erroneous confidences on aux data, NNLS, drift"),
    "idlg": _Attack(idlg, "iDLG (Zhao et al. 2020): argmin bias gradient; negative-set rule for N>1"),
    "leakage_har.llg": _Attack(
        leakage_har_llg, "paper code's LLG: stale-index stage 2, leftovers all on one class"
    ),
    "leakage_har.llg_star": _Attack(
        leakage_har_llg_star, "paper code's LLG*: zero impact/offset, leftovers to argmin row sum"
    ),
    "leakage_har.ebi": _Attack(leakage_har_ebi, "paper code's EBI (same as published EBI)"),
    "leakage_har.llbg": _Attack(
        leakage_har_llbg, "paper code's LLBG (llbgAVG): LLG-style impact, no offset, conf 0"
    ),
    "leakage_har.ilrg": _Attack(
        leakage_har_ilrg, "paper code's iLRG: uniform probabilities, N(1/C - g), random padding"
    ),
}


# Attacks that also report diagnostics (the others get an empty diagnostics dict).
_WITH_DIAGNOSTICS: dict[str, Callable[[LastLayerUpdate, AttackContext], AttackResult]] = {
    "ilrg": ilrg_result,
    "rlu": rlu_result,
}


def available() -> dict[str, str]:
    """Every attack name accepted by :func:`reconstruct_labels`, with a one-line description."""
    return {name: attack.description for name, attack in _ATTACKS.items()}


def reconstruct_labels(
    name: str, update: LastLayerUpdate, context: AttackContext | None = None
) -> np.ndarray:
    """Reconstruct the label counts behind one client update.

    Args:
        name: one of :func:`available`.
        update: what the server sees of the client's last layer (no labels).
        context: the server's public knowledge; defaults to an empty :class:`AttackContext`.

    Returns:
        int64 array of length C with the predicted number of windows per class; it sums to N
        (the one exception: ``ilrg`` with ``context.ilrg_force_sum=False``, the published
        unadjusted rounding).

    Raises:
        AttackError: unknown name, or the attack cannot apply (see :class:`AttackError`).
        TypeError: ``update`` / ``context`` of the wrong type.
    """
    return reconstruct_labels_with_diagnostics(name, update, context).counts


def reconstruct_labels_with_diagnostics(
    name: str, update: LastLayerUpdate, context: AttackContext | None = None
) -> AttackResult:
    """As :func:`reconstruct_labels`, with the attack's diagnostics (e.g. iLRG's condition number).

    Returns:
        :class:`attacks.result.AttackResult`; ``diagnostics`` is empty for attacks without any.
    """
    attack = _ATTACKS.get(name)
    if attack is None:
        raise AttackError(f"unknown attack {name!r}; available: {', '.join(_ATTACKS)}")
    if not isinstance(update, LastLayerUpdate):
        raise TypeError(f"update: expected attacks.LastLayerUpdate, got {type(update).__name__}")
    if context is None:
        context = AttackContext()
    elif not isinstance(context, AttackContext):
        raise TypeError(f"context: expected attacks.AttackContext, got {type(context).__name__}")
    with_diagnostics = _WITH_DIAGNOSTICS.get(name)
    if with_diagnostics is not None:
        result = with_diagnostics(update, context)
        counts, diagnostics = result.counts, result.diagnostics
    else:
        counts, diagnostics = attack.run(update, context), {}
    counts = np.asarray(counts, dtype=np.int64)
    unadjusted = name == "ilrg" and not context.ilrg_force_sum
    if counts.shape != (update.num_classes,) or np.any(counts < 0) or (
        not unadjusted and int(counts.sum()) != update.num_samples
    ):
        raise RuntimeError(f"{name} produced invalid counts {counts} for N={update.num_samples}")
    return AttackResult(counts, dict(diagnostics))
