"""Point-by-point check of the paper's findings on the runs at hand.

Each finding of Bock et al. (arXiv:2505.20924, Sec. 4-5) is turned into a rule on the tidy
per-client frame. Every number is the two-stage mean of :mod:`fl_har.report.aggregate` (mean over
clients per configuration x attack = a *cell*, then an equal-weight mean over cells), and values
that are compared are always taken over *matched* cells: only the combinations measured under
every compared setting enter, so a comparison is never skewed by a setting that was run for fewer
models or states. Findings 1-4 are checked separately for the published attack definitions and
the reference-code reproductions (``leakage_har.*``).

1. "Sequential batches leak most, shuffled least" (Sec. 4, Table 1): single-step runs (N = 100,
   S = 1, no LDP); mean ClassAcc per sampler over the dataset x model x state x attack cells
   measured with every sampler. Holds if sequential is strictly the highest and shuffle strictly
   the lowest.
2. "Bias-based attacks beat weight-based ones" (Sec. 4, Fig. 2): same runs; ClassAcc averaged over
   each family's attacks per dataset x model x state x sampler, then over the combinations with
   both families. Holds if the bias-based mean is higher.
3. "Multi-step updates barely reduce bias-based leakage" (Fig. 3): for EBI and LLBG and each
   S in {2, 5} at N = 100 (no LDP), the mean over configurations of the ClassAcc change from the
   S = 1 run of the same configuration. Holds if every change is within +-5 percentage points.
4. "Noise alone lowers LnAcc but LeAcc stays high; noise plus clipping protects best" (Sec. 4,
   Fig. 4): single-step runs under the LDP settings, cells matched across all settings present.
   (a) LnAcc under noise < LnAcc without LDP; (b) LeAcc under noise >= 50% and it drops less
   than LnAcc does; (c) ClassAcc under noise + clipping is strictly the lowest of all settings.
   Holds if (a), (b) and (c) hold.
5. "The reference code's deviations do not change the picture": the per-attack ClassAcc
   difference published minus reference on matched single-step cells (reported), and the verdicts
   of findings 1-4 for both variants. Holds if every finding measured for both variants gets the
   same verdict for both.

A verdict is ``holds``, ``does not hold`` or ``not measured (missing runs: ...)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from fl_har.report.aggregate import average, cell_means, matched, single_step
from fl_har.report.factors import (
    ATTACK_ORDER,
    BIAS,
    LDP_BOTH,
    LDP_NOISE,
    LDP_NONE,
    LDP_ORDER,
    PUBLISHED,
    REFERENCE,
    SAMPLER_ORDER,
    VARIANTS,
    WEIGHT,
    ordered,
)
from fl_har.report.figure_leakage import multi_step_changes
from fl_har.report.tables import percent

HOLDS, FAILS = "holds", "does not hold"
MULTI_STEP_ATTACKS = ("ebi", "llbg")
MULTI_STEP_S = (2, 5)
MULTI_STEP_TOLERANCE = 0.05
LEACC_HIGH = 0.5
LDP_METRICS = ("ln_acc", "le_acc", "le_recall", "class_acc")

TITLES = {
    1: "Sequential batches leak most, shuffled batches least",
    2: "Bias-based attacks beat weight-based attacks",
    3: "Multi-step updates barely reduce bias-based leakage",
    4: "Noise alone lowers LnAcc but LeAcc stays high; noise plus clipping protects best",
    5: "The reference code's deviations do not change the picture",
}


def rules(batch_size: int) -> dict[int, str]:
    """How each finding is checked (printed beside the verdict)."""
    single = f"single-step runs (N={batch_size}, S=1)"
    return {
        1: f"{single} without LDP; mean ClassAcc per sampler over the dataset × model × state × "
           "attack cells measured with every sampler (mean over clients per cell, then over "
           "cells). Holds if sequential is strictly highest and shuffle strictly lowest.",
        2: f"{single} without LDP; ClassAcc averaged over each family's attacks per dataset × "
           "model × state × sampler, then over the combinations measured with both families. "
           "Holds if the bias-based mean is higher.",
        3: f"EBI and LLBG, N={batch_size}, no LDP: mean over configurations (dataset × model × "
           "state × sampler) of the ClassAcc change from S=1 to S=2 and to S=5. Holds if every "
           f"change is within ±{100 * MULTI_STEP_TOLERANCE:.0f} percentage points.",
        4: f"{single}, every attack, cells matched across the LDP settings present: (a) LnAcc "
           "with noise < LnAcc without LDP; (b) LeAcc with noise ≥ "
           f"{100 * LEACC_HIGH:.0f}% and its drop smaller than LnAcc's drop; (c) ClassAcc with "
           "noise+clip strictly lowest of all settings. Holds if (a), (b) and (c) hold.",
        5: f"{single} without LDP: ClassAcc published minus reference per attack on matched "
           "cells; holds if findings 1-4 get the same verdict for both variants (wherever "
           "both were measured).",
    }


@dataclass(frozen=True)
class Finding:
    """One checked finding: the claim, the rule, the numbers it rests on and the verdict."""

    number: int
    variant: str
    title: str
    rule: str
    evidence: tuple[str, ...]
    verdict: str

    @property
    def measured(self) -> bool:
        return self.verdict in (HOLDS, FAILS)


def not_measured(missing: Sequence[str]) -> str:
    return f"not measured (missing runs: {'; '.join(missing)})"


def _verdict(condition: bool) -> str:
    return HOLDS if condition else FAILS


def _means(frame: pd.DataFrame, key: str, metric: str) -> dict[str, float]:
    means = average(frame, [key], metric)
    return {str(k): float(v) for k, v in zip(means[key], means[metric])}


def _listing(means: pd.DataFrame, key: str, order: Sequence[str], metric: str) -> str:
    values = dict(zip(means[key], means[metric]))
    return ", ".join(f"{k} {percent(values[k])}" for k in ordered(values, tuple(order)))


def _sampler_finding(cells: pd.DataFrame, variant: str, batch_size: int) -> tuple[str, list]:
    samplers = ordered(cells["sampler"], SAMPLER_ORDER)
    missing = [f"single-step N={batch_size} no-LDP runs with sampler {s} ({variant} attacks)"
               for s in ("sequential", "shuffle") if s not in samplers]
    if missing:
        return not_measured(missing), []
    same = matched(cells, "sampler", ["dataset", "model", "state", "attack"])
    if same.empty:
        return not_measured(["no dataset/model/state/attack was run with every sampler"]), []
    means = average(same, ["sampler"], "class_acc")
    values = dict(zip(means["sampler"], means["class_acc"]))
    others = [s for s in values if s != "sequential"]
    holds = all(values["sequential"] > values[s] for s in others) and all(
        values["shuffle"] < values[s] for s in values if s != "shuffle")
    evidence = [f"mean ClassAcc over {len(same) // len(values)} matched cells: "
                + _listing(means, "sampler", SAMPLER_ORDER, "class_acc")]
    for state, part in average(same, ["state", "sampler"], "class_acc").groupby("state"):
        evidence.append(f"{state} models: " + _listing(part, "sampler", SAMPLER_ORDER,
                                                        "class_acc"))
    if "balanced" not in values:
        evidence.append("balanced sampling not measured")
    return _verdict(holds), evidence


def _family_finding(cells: pd.DataFrame, variant: str, batch_size: int) -> tuple[str, list]:
    keys = ["dataset", "model", "state", "sampler"]
    per_family = average(cells[cells["family"].isin([WEIGHT, BIAS])], [*keys, "family"],
                         "class_acc")
    missing = [f"single-step N={batch_size} no-LDP runs with {family}-based attacks "
               f"({variant})" for family in (WEIGHT, BIAS)
               if family not in set(per_family["family"])]
    if missing:
        return not_measured(missing), []
    same = matched(per_family, "family", keys, [WEIGHT, BIAS])
    if same.empty:
        return not_measured(["no configuration was attacked by both families"]), []
    means = _means(same, "family", "class_acc")
    evidence = [(f"mean ClassAcc over {len(same) // 2} configurations: bias-based "
                f"{percent(means[BIAS])}, weight-based {percent(means[WEIGHT])}")]
    by_sampler = average(same, ["sampler", "family"], "class_acc")
    for sampler in ordered(by_sampler["sampler"], SAMPLER_ORDER):
        part = by_sampler[by_sampler["sampler"] == sampler]
        evidence.append(f"{sampler}: " + _listing(part, "family", (BIAS, WEIGHT), "class_acc"))
    return _verdict(means[BIAS] > means[WEIGHT]), evidence


def _multi_step_finding(clients: pd.DataFrame, variant: str, batch_size: int
                        ) -> tuple[str, list]:
    changes = multi_step_changes(clients[clients["variant"] == variant], batch_size)
    changes = changes[changes["attack"].isin(MULTI_STEP_ATTACKS)
                      & (changes["batch_size"] == batch_size)
                      & changes["local_steps"].isin(MULTI_STEP_S)]
    if changes.empty:
        return not_measured([(f"N={batch_size} runs with S in {{2, 5}} and their S=1 runs, "
                             f"no LDP, with ebi or llbg ({variant})")]), []
    evidence, within = [], []
    for attack in MULTI_STEP_ATTACKS:
        for steps in MULTI_STEP_S:
            part = changes[(changes["attack"] == attack) & (changes["local_steps"] == steps)]
            if part.empty:
                evidence.append(f"{attack} S={steps}: not measured")
                continue
            change = float(part["d_class_acc"].mean())
            within.append(abs(change) <= MULTI_STEP_TOLERANCE)
            evidence.append(f"{attack} S={steps}: ClassAcc change {100 * change:+.2f} pp "
                            f"(mean over {len(part)} configurations)")
    return _verdict(all(within)), evidence


def _ldp_finding(cells: pd.DataFrame, variant: str, batch_size: int) -> tuple[str, list]:
    settings = ordered(cells["ldp"], LDP_ORDER)
    need = [LDP_NONE, LDP_NOISE, LDP_BOTH]
    missing = [f"single-step N={batch_size} runs with LDP {s} ({variant})"
               for s in need if s not in settings]
    if len(settings) < 2:
        return not_measured(missing), []
    same = matched(cells, "ldp", ["dataset", "model", "state", "sampler", "attack"])
    if same.empty:
        return not_measured(["no configuration was run under every LDP setting present"]), []
    means = {metric: _means(same, "ldp", metric) for metric in LDP_METRICS}
    evidence = [f"means over {len(same) // len(settings)} matched cells:"]
    for setting in settings:
        evidence.append(f"LDP {setting}: LnAcc {percent(means['ln_acc'][setting])}, "
                        f"LeAcc {percent(means['le_acc'][setting])} (LeRecall, the paper "
                        f"code's 'LeAcc': {percent(means['le_recall'][setting])}), "
                        f"ClassAcc {percent(means['class_acc'][setting])}")
    parts: list[bool | None] = []
    if LDP_NONE in settings and LDP_NOISE in settings:
        ln_drop = means["ln_acc"][LDP_NONE] - means["ln_acc"][LDP_NOISE]
        le_drop = means["le_acc"][LDP_NONE] - means["le_acc"][LDP_NOISE]
        lowers = ln_drop > 0
        stays = means["le_acc"][LDP_NOISE] >= LEACC_HIGH and le_drop < ln_drop
        evidence.append(f"(a) noise lowers LnAcc by {100 * ln_drop:.2f} pp: {_verdict(lowers)}")
        evidence.append(f"(b) LeAcc with noise {percent(means['le_acc'][LDP_NOISE])}, drop "
                        f"{100 * le_drop:.2f} pp vs LnAcc drop {100 * ln_drop:.2f} pp: "
                        f"{_verdict(stays)}")
        parts += [lowers, stays]
    else:
        evidence.append("(a), (b) not measured (need LDP none and noise)")
        parts.append(None)
    if LDP_BOTH in settings:
        others = [s for s in settings if s != LDP_BOTH]
        best = all(means["class_acc"][LDP_BOTH] < means["class_acc"][s] for s in others)
        evidence.append(f"(c) ClassAcc with noise+clip {percent(means['class_acc'][LDP_BOTH])} "
                        f"vs {', '.join(others)}: {_verdict(best)}")
        parts.append(best)
    else:
        evidence.append("(c) not measured (need LDP noise+clip)")
        parts.append(None)
    if any(part is False for part in parts):
        return FAILS, evidence
    if any(part is None for part in parts):
        return not_measured(missing), evidence
    return HOLDS, evidence


def _variant_findings(clients: pd.DataFrame, variant: str, batch_size: int) -> list[Finding]:
    mine = clients[clients["variant"] == variant]
    rule_text = rules(batch_size)
    if mine.empty:
        name = f"runs with the {variant} attack definitions" + (
            " (leakage_har.*)" if variant == REFERENCE else "")
        return [Finding(number, variant, TITLES[number], rule_text[number], (),
                        not_measured([name])) for number in range(1, 5)]
    single = cell_means(single_step(mine, batch_size), ["class_acc"])
    ldp_cells = cell_means(single_step(mine, batch_size, ldp=None), LDP_METRICS)
    checks = {
        1: _sampler_finding(single, variant, batch_size),
        2: _family_finding(single, variant, batch_size),
        3: _multi_step_finding(mine, variant, batch_size),
        4: _ldp_finding(ldp_cells, variant, batch_size),
    }
    return [Finding(number, variant, TITLES[number], rule_text[number], tuple(evidence), verdict)
            for number, (verdict, evidence) in checks.items()]


def _variant_comparison(clients: pd.DataFrame, findings: Sequence[Finding], batch_size: int
                        ) -> Finding:
    rule = rules(batch_size)[5]
    label = f"{PUBLISHED} vs {REFERENCE}"
    present = set(clients["variant"])
    missing = [f"runs with the {v} attack definitions"
               + (" (leakage_har.*)" if v == REFERENCE else "") for v in VARIANTS
               if v not in present]
    if missing:
        return Finding(5, label, TITLES[5], rule, (), not_measured(missing))
    cells = cell_means(single_step(clients, batch_size), ["class_acc"])
    same = matched(cells, "variant", ["dataset", "model", "state", "sampler", "attack"])
    evidence = []
    if not same.empty:
        wide = same.pivot_table(index=["dataset", "model", "state", "sampler", "attack"],
                                columns="variant", values="class_acc")
        difference = (wide[PUBLISHED] - wide[REFERENCE]).groupby(level="attack").mean()
        evidence.append("ClassAcc published minus reference (mean over matched configurations): "
                        + ", ".join(f"{attack} {100 * difference[attack]:+.2f} pp"
                                    for attack in ordered(difference.index, ATTACK_ORDER)))
    verdicts = {(f.number, f.variant): f for f in findings}
    same_verdicts = []
    for number in range(1, 5):
        published, reference = verdicts[(number, PUBLISHED)], verdicts[(number, REFERENCE)]
        if published.measured and reference.measured:
            same_verdicts.append(published.verdict == reference.verdict)
        evidence.append(f"finding {number}: published {published.verdict}; reference "
                        f"{reference.verdict}")
    if not same_verdicts:
        return Finding(5, label, TITLES[5], rule, tuple(evidence),
                       not_measured(["no finding measured for both variants"]))
    return Finding(5, label, TITLES[5], rule, tuple(evidence), _verdict(all(same_verdicts)))


def paper_findings(clients: pd.DataFrame, batch_size: int = 100) -> list[Finding]:
    """Findings 1-4 per variant present (both if none), then finding 5."""
    findings = [finding for variant in VARIANTS
                for finding in _variant_findings(clients, variant, batch_size)]
    return [*findings, _variant_comparison(clients, findings, batch_size)]
