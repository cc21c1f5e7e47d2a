"""Experimental factors of a run, read from its ``config.toml`` (never from folder names).

The factors are the axes of Bock et al., "Label Leakage in Federated Inertial-based Human
Activity Recognition" (arXiv:2505.20924), Sec. 4: dataset, model architecture, trained vs
untrained model, sampling strategy, batch size N, local steps S and batch clip+noise (the paper's "local
differential privacy", which has no epsilon).
Each attack has a *variant* (the published definitions, or the ``leakage_har.*`` reproductions
of the paper's reference code), a *family* (weight- or bias-based, the grouping of the paper's
Table 1) and a *base* attack. The server records them from the attack registry in the run's
``meta.json`` (``"attacks"``); :func:`attack_identity` reads them from there. Runs written before
that record existed fall back to the naming rule below (``leakage_har.<base>``, the paper's
families), which is why these lists remain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fl_har.config import ExperimentConfig
from fl_har.data import SAMPLERS
from fl_har.report.errors import ReportError

REFERENCE_PREFIX = "leakage_har."
PUBLISHED, REFERENCE = "published", "reference"
VARIANTS = (PUBLISHED, REFERENCE)

WEIGHT, BIAS, OTHER = "weight", "bias", "other"
# The paper's attacks in the order of its figures (presentation), and the families of runs whose
# meta.json predates the recorded attack metadata (legacy fallback).
WEIGHT_ATTACKS = ("llg", "llg_plus", "llg_star")
BIAS_ATTACKS = ("ebi", "llbg", "llbg_trained", "ilrg", "rlu", "idlg")
ATTACK_ORDER = (*WEIGHT_ATTACKS, *BIAS_ATTACKS)

TRAINED, UNTRAINED = "trained", "untrained"
STATES = (UNTRAINED, TRAINED)
SAMPLER_ORDER = tuple(SAMPLERS)
LDP_NONE, LDP_NOISE, LDP_CLIP, LDP_BOTH = "none", "noise", "clip", "noise+clip"
LDP_ORDER = (LDP_NONE, LDP_NOISE, LDP_CLIP, LDP_BOTH)
# What the paper calls "LDP" is batch-gradient clipping + noise: no per-example bound, no epsilon,
# not differential privacy (DP-SGD is client.privacy = "dp_sgd"); labels call it clip+noise.

# Config keys whose values may differ between runs pooled as one configuration: run bookkeeping,
# the subject split of the folds of a "trained" configuration, and the attack list (its attacks
# are told apart per row by variant and name).
POOLABLE_KEYS = (
    "run.name", "run.out", "run.seed", "data.clients", "data.server_subjects",
    "data.eval_subjects", "model.init", "attacks.names",
)


@dataclass(frozen=True, order=True)
class RunFactors:
    """The experimental configuration a run belongs to; runs with equal factors are pooled."""

    dataset: str
    model: str
    state: str
    sampler: str
    batch_size: int
    local_steps: int
    ldp: str

    def label(self) -> str:
        """Short readable form, e.g. ``hapt deepconvlstm untrained shuffle N=100 S=1 clip+noise
        none`` (the paper's "LDP", which has no epsilon)."""
        return (f"{self.dataset} {self.model} {self.state} {self.sampler} "
                f"N={self.batch_size} S={self.local_steps} clip+noise {self.ldp}")


_DEFAULTS = ExperimentConfig().to_dict()


def config_value(config: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    """``config[section][name]`` checked against ``kind``.

    A key absent from the file takes fl-har's default (a ``config.toml`` written before the key
    existed ran with that default behaviour); a value of the wrong type is an error.
    """
    section, _, name = key.partition(".")
    table = config.get(section, {})
    if not isinstance(table, Mapping):
        raise ReportError(f"{where}: [{section}] is {table!r}, expected a table of keys")
    value = table.get(name, _DEFAULTS[section][name])
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise ReportError(f"{where}: {key} = {value!r}, expected a {kind.__name__}")
    return value


def ldp_setting(noise: float, clip: float) -> str:
    """``none`` / ``noise`` / ``clip`` / ``noise+clip`` from sigma > 0 and rho > 0."""
    if noise > 0 and clip > 0:
        return LDP_BOTH
    if noise > 0:
        return LDP_NOISE
    if clip > 0:
        return LDP_CLIP
    return LDP_NONE


def run_factors(config: Mapping[str, Any], where: str) -> RunFactors:
    """The factors of a run from its config dict (``where`` names the file in errors)."""
    init = config_value(config, "model.init", str, where)
    return RunFactors(
        dataset=config_value(config, "data.dataset", str, where),
        model=config_value(config, "model.name", str, where),
        state=UNTRAINED if init == "untrained" else TRAINED,
        sampler=config_value(config, "client.sampler", str, where),
        batch_size=config_value(config, "client.batch_size", int, where),
        local_steps=config_value(config, "client.local_steps", int, where),
        ldp=ldp_setting(config_value(config, "client.ldp_noise", float, where),
                        config_value(config, "client.ldp_clip", float, where)),
    )


def attack_variant(name: str) -> str:
    """``reference`` for the paper-code reproductions (``leakage_har.*``), else ``published``.

    Decided per attack name rather than per run: for a run whose attacks are all of one kind this
    equals the run-level rule, and a run mixing both contributes to both variants.
    """
    return REFERENCE if name.startswith(REFERENCE_PREFIX) else PUBLISHED


def base_attack(name: str) -> str:
    """The attack without the ``leakage_har.`` prefix (``leakage_har.llbg`` -> ``llbg``)."""
    return name.removeprefix(REFERENCE_PREFIX)


def attack_family(base: str) -> str:
    """``weight`` (LLG, LLG+, LLG*), ``bias`` (EBI, LLBG, iLRG, iDLG) or ``other``."""
    if base in WEIGHT_ATTACKS:
        return WEIGHT
    if base in BIAS_ATTACKS:
        return BIAS
    return OTHER


def attack_identity(name: str, described: Mapping[str, Any] | None = None) -> tuple[str, str, str]:
    """``(base, variant, family)`` of attack ``name``: as the run recorded it from the attack
    registry (``meta.json["attacks"]``, passed as ``described``), else by the legacy rule."""
    info = (described or {}).get(name)
    if isinstance(info, Mapping) and {"base", "variant", "family"} <= set(info):
        return str(info["base"]), str(info["variant"]), str(info["family"])
    base = base_attack(name)
    return base, attack_variant(name), attack_family(base)


def ordered(values: Any, order: tuple[str, ...]) -> list:
    """Distinct ``values`` in ``order`` first, the rest sorted after them."""
    distinct = set(values)
    return [v for v in order if v in distinct] + sorted(distinct - set(order), key=str)
