"""The Table-1 equivalent: average ClassAcc of weight- and bias-based attacks per sampling.

Bock et al. (arXiv:2505.20924), Table 1, reports for each sampling strategy, dataset and model
state (untrained U / trained T) the ClassAcc averaged over the attacks of a family and over the
model architectures, single-step updates of N = 100 windows, no LDP. Here the same cell is:

1. per (variant, dataset, model, state, sampler, attack): the mean ClassAcc over clients, all
   runs (folds) of that configuration pooled (:func:`fl_har.report.aggregate.cell_means`);
2. the equal-weight mean of those values over the family's attacks and the models
   (``weight`` = LLG, LLG+, LLG*; ``bias`` = EBI, LLBG, LLBG-trained, iLRG, iDLG);
3. ``avg`` = the mean of the ``weight`` and ``bias`` values (as the paper's "Avg." row), only
   where both families were measured.

One table per variant (published attack definitions / reference-code reproductions).
"""

from __future__ import annotations

import math

import pandas as pd

from fl_har.report.aggregate import average, cell_means, client_count, single_step
from fl_har.report.factors import (
    BIAS,
    SAMPLER_ORDER,
    STATES,
    TRAINED,
    VARIANTS,
    WEIGHT,
    ordered,
)
from fl_har.report.paper import FAMILY_AVG, PAPER_DATASETS, paper_table1

TABLE1_COLUMNS = ("variant", "dataset", "state", "sampler", "family", "class_acc", "n_clients",
                  "n_runs", "attacks", "models")
FAMILY_ORDER = (WEIGHT, BIAS, FAMILY_AVG)
FAMILY_LABELS = {WEIGHT: "Weight", BIAS: "Bias", FAMILY_AVG: "Avg."}
_GROUP = ["variant", "dataset", "state", "sampler"]


def _members(rows: pd.DataFrame) -> dict[str, object]:
    return {"n_clients": client_count(rows), "n_runs": int(rows["run_id"].nunique()),
            "attacks": ";".join(sorted(set(rows["attack"]))),
            "models": ";".join(sorted(set(rows["model"])))}


def table1(clients: pd.DataFrame, batch_size: int = 100) -> pd.DataFrame:
    """Tidy Table-1 frame (:data:`TABLE1_COLUMNS`; ``class_acc`` as a fraction 0-1).

    ``n_clients`` counts distinct (configuration, subject) pairs and ``n_runs`` the runs whose
    rows entered the value; ``attacks`` and ``models`` list what was averaged.
    """
    rows = single_step(clients, batch_size)
    rows = rows[rows["family"].isin([WEIGHT, BIAS])]
    cells = cell_means(rows, ["class_acc"])
    family_means = average(cells, [*_GROUP, "family"], "class_acc")
    family_rows = dict(iter(rows.groupby([*_GROUP, "family"], sort=False)))
    group_rows = dict(iter(rows.groupby(_GROUP, sort=False)))
    records = []
    values: dict[tuple, dict[str, float]] = {}
    for mean in family_means.to_dict("records"):
        group = tuple(mean[column] for column in _GROUP)
        values.setdefault(group, {})[mean["family"]] = mean["class_acc"]
        records.append({**mean, **_members(family_rows[(*group, mean["family"])])})
    for group, by_family in values.items():
        if WEIGHT in by_family and BIAS in by_family:
            records.append({**dict(zip(_GROUP, group)), "family": FAMILY_AVG,
                            "class_acc": (by_family[WEIGHT] + by_family[BIAS]) / 2,
                            **_members(group_rows[group])})
    frame = pd.DataFrame(records, columns=list(TABLE1_COLUMNS))
    return _sorted(frame)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame.reset_index(drop=True)
    ranks = {
        "variant": {v: i for i, v in enumerate(VARIANTS)},
        "state": {s: i for i, s in enumerate(STATES)},
        "sampler": {s: i for i, s in enumerate(SAMPLER_ORDER)},
        "family": {f: i for i, f in enumerate(FAMILY_ORDER)},
    }

    def key(column: pd.Series) -> pd.Series:
        rank = ranks.get(column.name)
        return column.map(lambda v: (rank.get(v, len(rank)), str(v))) if rank else column

    return frame.sort_values(["variant", "dataset", "state", "sampler", "family"], key=key,
                             ignore_index=True)


def dataset_label(dataset: str) -> str:
    return {"hapt": "HAPT", "wear": "WEAR", "wetlab": "Wetlab"}.get(dataset, dataset)


def column_label(dataset: str, state: str) -> str:
    """``HAPT (U)`` / ``WEAR (T)``: the paper's column headings."""
    return f"{dataset_label(dataset)} ({'T' if state == TRAINED else 'U'})"


def percent(value: float, digits: int = 2) -> str:
    return "–" if value is None or math.isnan(value) else f"{100 * value:.{digits}f}%"


def table1_markdown(table: pd.DataFrame, variant: str) -> str:
    """One variant's Table 1 as Markdown: our columns, then the paper's published columns."""
    ours = table[table["variant"] == variant]
    paper = paper_table1()
    our_columns = [(d, s) for d in ordered(ours["dataset"], ()) for s in STATES
                   if ((ours["dataset"] == d) & (ours["state"] == s)).any()]
    paper_columns = [(d, s) for d in PAPER_DATASETS for s in STATES]
    samplers = ordered(ours["sampler"], SAMPLER_ORDER) or list(SAMPLER_ORDER)
    header = (["Sampling", "Attacks"] + [f"ours: {column_label(*c)}" for c in our_columns]
              + [f"paper: {column_label(*c)}" for c in paper_columns])
    lines = ["| " + " | ".join(header) + " |",
             "|---|---|" + "---:|" * (len(our_columns) + len(paper_columns))]

    def lookup(frame: pd.DataFrame, dataset: str, state: str, sampler: str, family: str) -> float:
        hit = frame[(frame["dataset"] == dataset) & (frame["state"] == state)
                    & (frame["sampler"] == sampler) & (frame["family"] == family)]
        return float(hit["class_acc"].iloc[0]) if len(hit) else math.nan

    for sampler in samplers:
        for index, family in enumerate(FAMILY_ORDER):
            cells = [sampler.capitalize() if index == 0 else "", FAMILY_LABELS[family]]
            cells += [percent(lookup(ours, d, s, sampler, family)) for d, s in our_columns]
            cells += [percent(lookup(paper, d, s, sampler, family)) for d, s in paper_columns]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
