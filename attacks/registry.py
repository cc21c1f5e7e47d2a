"""The single entry point: every attack with its metadata, and :func:`reconstruct_labels`.

Each registry line carries what the rest of fl-har needs to know about an attack: its family
(which part of the last layer it reads, the grouping of Bock et al.'s Table 1), its variant
(``published``: the paper's definition; ``reference``: a reproduction of the label-leakage
paper's own code, named ``leakage_har.<base>``), the paper, and the options it reads. The
server writes family and variant into every attack row, and reports read them from there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from attacks.calibration import CALIBRATION_REPEATS, DUMMY_KIND
from attacks.ebi import ebi
from attacks.idlg import idlg
from attacks.ilrg import ILRG_FORCE_SUM, ilrg, ilrg_result
from attacks.inputs import AttackContext, AttackError, LastLayerUpdate
from attacks.leakage_har import (
    leakage_har_ebi,
    leakage_har_ilrg,
    leakage_har_llbg,
    leakage_har_llg,
    leakage_har_llg_star,
)
from attacks.llbg import LLBG_CONFIDENCE, llbg, llbg_trained
from attacks.llg import llg, llg_plus, llg_star
from attacks.options import AttackOption
from attacks.result import AttackResult
from attacks.rlu import RLU_DRIFT, rlu, rlu_result

AttackFunction = Callable[[LastLayerUpdate, AttackContext], np.ndarray]

WEIGHT, BIAS = "weight", "bias"
PUBLISHED, REFERENCE = "published", "reference"
REFERENCE_PREFIX = "leakage_har."

_WAINAKH = "Wainakh et al., PoPETs 2022"
_GAT = "Gat & Sharif, AISec 2024"
_BOCK = "Bock et al., arXiv:2505.20924 (the paper's code)"


@dataclass(frozen=True)
class AttackSpec:
    """One registered attack.

    Parameters
    ----------
    run : AttackFunction
        ``(update, context) -> counts``.
    description : str
        One line: what it does and what it needs.
    family : str
        ``weight`` (reads the weight gradient's row sums) or ``bias`` (reads the bias gradient).
    paper : str
        The source of the definition.
    options : tuple[AttackOption, ...]
        The options it reads from the context.
    variant : str
        ``published`` or ``reference`` (a reproduction of the label-leakage paper's code).
    base : str
        The attack it is a variant of (its own name for published attacks).
    diagnose : callable, optional
        ``(update, context) -> AttackResult``: the same counts with diagnostics (e.g. iLRG's
        condition number); attacks without one report empty diagnostics.
    """

    run: AttackFunction
    description: str
    family: str
    paper: str
    options: tuple[AttackOption, ...] = ()
    variant: str = PUBLISHED
    base: str = ""
    diagnose: Callable[[LastLayerUpdate, AttackContext], AttackResult] | None = None


def _reference(base: str, run: AttackFunction, description: str, family: str) -> AttackSpec:
    return AttackSpec(run, description, family, _BOCK, variant=REFERENCE, base=base)


_ATTACKS: dict[str, AttackSpec] = {
    "llg": AttackSpec(llg, "LLG: weight row sums, impact from the gradient", WEIGHT, _WAINAKH),
    "llg_plus": AttackSpec(
        llg_plus, "LLG+: LLG calibrated on the server's auxiliary windows (model + aux)",
        WEIGHT, _WAINAKH, (CALIBRATION_REPEATS,),
    ),
    "llg_star": AttackSpec(
        llg_star, "LLG*: LLG calibrated on dummy inputs (model + input_shape)", WEIGHT, _WAINAKH,
        (DUMMY_KIND, CALIBRATION_REPEATS),
    ),
    "ebi": AttackSpec(ebi, "EBI baseline: bias gradient, impact from the gradient", BIAS, _GAT),
    "llbg": AttackSpec(llbg, "LLBG, untrained form: impact 1/B, offset S/C", BIAS, _GAT),
    "llbg_trained": AttackSpec(
        llbg_trained, "LLBG trained form: impact (1-conf)/B, conf from aux windows or a constant",
        BIAS, _GAT, (LLBG_CONFIDENCE,),
    ),
    "ilrg": AttackSpec(
        ilrg, "iLRG: recovered class probabilities + least squares", BIAS,
        "Ma et al., ICLR 2023", (ILRG_FORCE_SUM,), diagnose=ilrg_result,
    ),
    "rlu": AttackSpec(
        rlu, "RLU: erroneous confidences on aux windows, non-negative least squares, drift", BIAS,
        "Chen & Vikalo, ICML 2024", (RLU_DRIFT,), diagnose=rlu_result,
    ),
    "idlg": AttackSpec(
        idlg, "iDLG: argmin bias gradient; negative-set rule for N>1", BIAS,
        "Zhao et al., arXiv:2001.02610",
    ),
    "leakage_har.llg": _reference(
        "llg", leakage_har_llg, "paper code's LLG: stale-index stage 2, leftovers on one class",
        WEIGHT,
    ),
    "leakage_har.llg_star": _reference(
        "llg_star", leakage_har_llg_star,
        "paper code's LLG*: zero impact/offset, leftovers to argmin row sum", WEIGHT,
    ),
    "leakage_har.ebi": _reference(
        "ebi", leakage_har_ebi, "paper code's EBI (same as published EBI)", BIAS
    ),
    "leakage_har.llbg": _reference(
        "llbg", leakage_har_llbg, "paper code's LLBG (llbgAVG): LLG-style impact, no offset, conf 0",
        BIAS,
    ),
    "leakage_har.ilrg": _reference(
        "ilrg", leakage_har_ilrg, "paper code's iLRG: uniform probabilities, N(1/C - g), random "
        "padding", BIAS,
    ),
}


def available() -> dict[str, str]:
    """Every attack name accepted by :func:`reconstruct_labels`, with a one-line description."""
    return {name: spec.description for name, spec in _ATTACKS.items()}


def attack_spec(name: str) -> AttackSpec:
    """The registry entry of ``name`` (``base`` filled in); :class:`AttackError` if unknown."""
    spec = _ATTACKS.get(name)
    if spec is None:
        raise AttackError(f"unknown attack {name!r}; available: {', '.join(_ATTACKS)}")
    return spec if spec.base else AttackSpec(**{**spec.__dict__, "base": name})


def option_schema(names: tuple[str, ...] | None = None) -> dict[str, AttackOption]:
    """The options read by ``names`` (default: every attack), by option name."""
    schema: dict[str, AttackOption] = {}
    for name in names if names is not None else tuple(_ATTACKS):
        for option in attack_spec(name).options:
            schema[option.name] = option
    return schema


def resolve_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """Every registered option with its value: ``values`` parsed and checked, defaults filled.

    Raises :class:`AttackError` naming an unknown option (with the known ones) or a bad value.
    """
    schema = option_schema()
    unknown = sorted(set(values) - set(schema))
    if unknown:
        raise AttackError(
            f"unknown attack option(s) {', '.join(unknown)}; known: {', '.join(sorted(schema))}"
        )
    return {name: option.parse(values[name]) if name in values else option.default
            for name, option in schema.items()}


# Options that are fields of AttackContext (the rest travel in ``AttackContext.options``).
_CONTEXT_FIELDS = ("dummy_kind", "calibration_repeats", "llbg_confidence", "ilrg_force_sum")


def context_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of :class:`AttackContext` for resolved option ``values``."""
    resolved = resolve_options(values)
    kwargs = {name: resolved.pop(name) for name in _CONTEXT_FIELDS}
    kwargs["options"] = resolved
    return kwargs


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
    attack = attack_spec(name)
    if not isinstance(update, LastLayerUpdate):
        raise TypeError(f"update: expected attacks.LastLayerUpdate, got {type(update).__name__}")
    if context is None:
        context = AttackContext()
    elif not isinstance(context, AttackContext):
        raise TypeError(f"context: expected attacks.AttackContext, got {type(context).__name__}")
    if attack.diagnose is not None:
        result = attack.diagnose(update, context)
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
