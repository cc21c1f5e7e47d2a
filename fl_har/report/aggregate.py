"""Two-stage averages over the tidy per-client frame of :mod:`fl_har.report.collect`.

Every number in the report is computed the same way: first the mean over the clients of one
*cell* (one configuration x one attack, all its runs and folds pooled; a subject attacked in
several runs of the configuration counts once), then an equal-weight mean of those cell means
over whatever a table or figure averages (attacks of a family, model architectures, ...). A cell
therefore counts once however many clients it has.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from fl_har.report.collect import CLIENT_METRICS, FACTOR_COLUMNS
from fl_har.report.factors import LDP_NONE

# "family" follows from "attack"; it is a key only so that it stays a column.
CELL_KEYS = ("variant", *FACTOR_COLUMNS, "attack", "family")


def select(clients: pd.DataFrame, *, batch_size: int | None = None,
           local_steps: int | None = None, ldp: str | None = None) -> pd.DataFrame:
    """Rows of runs with the given N, S and LDP setting (None = any)."""
    keep = pd.Series(True, index=clients.index)
    if batch_size is not None:
        keep &= clients["batch_size"] == batch_size
    if local_steps is not None:
        keep &= clients["local_steps"] == local_steps
    if ldp is not None:
        keep &= clients["ldp"] == ldp
    return clients[keep]


def single_step(clients: pd.DataFrame, batch_size: int, *, ldp: str | None = LDP_NONE
                ) -> pd.DataFrame:
    """The paper's single-step setting: N = ``batch_size``, S = 1 (and no LDP by default)."""
    return select(clients, batch_size=batch_size, local_steps=1, ldp=ldp)


def cell_means(clients: pd.DataFrame, metrics: Sequence[str] = CLIENT_METRICS) -> pd.DataFrame:
    """Per cell (:data:`CELL_KEYS`): each metric's mean over its clients, n_clients, n_runs.

    A client is a subject of the configuration. A subject attacked in several runs of the same
    configuration (replicates, e.g. the same cell in two sweeps) counts once, with the mean of
    its values over those runs; NaN values (undefined metrics) are skipped.
    """
    columns = [*CELL_KEYS, *metrics, "n_clients", "n_runs"]
    if clients.empty:
        return pd.DataFrame({column: [] for column in columns})
    per_subject = clients.groupby([*CELL_KEYS, "subject"], sort=True)[list(metrics)].mean()
    grouped = per_subject.groupby(level=list(CELL_KEYS), sort=True)
    cells = grouped.mean()
    cells["n_clients"] = grouped.size()
    cells["n_runs"] = clients.groupby(list(CELL_KEYS), sort=True)["run_id"].nunique()
    return cells.reset_index()[columns]


def average(cells: pd.DataFrame, keep: Sequence[str], metric: str) -> pd.DataFrame:
    """Equal-weight mean of the cells' ``metric`` per group of ``keep`` (with ``n_cells``)."""
    if cells.empty:
        return pd.DataFrame({column: [] for column in [*keep, metric, "n_cells"]})
    grouped = cells.groupby(list(keep), sort=True)[metric]
    out = grouped.mean().to_frame(metric)
    out["n_cells"] = grouped.count()
    return out.reset_index()


def matched(cells: pd.DataFrame, compare: str, match: Sequence[str],
            values: Sequence[object] | None = None) -> pd.DataFrame:
    """Cells restricted to ``match`` combinations present for every compared value.

    E.g. ``matched(cells, "sampler", ["dataset", "model", "state", "attack"])`` keeps a
    (dataset, model, state, attack) only if it was measured with every sampler (or every one of
    ``values``), so that sampler means are compared on the same configurations.
    """
    values = list(dict.fromkeys(cells[compare])) if values is None else list(values)
    cells = cells[cells[compare].isin(values)]
    if cells.empty or not values:
        return cells
    present = cells.groupby(list(match))[compare].nunique()
    complete = present[present == len(values)].reset_index()[list(match)]
    return cells.merge(complete, on=list(match), how="inner")


def client_count(clients: pd.DataFrame) -> int:
    """Distinct clients among ``clients`` rows: (configuration, subject) pairs."""
    return int(clients[[*FACTOR_COLUMNS, "subject"]].drop_duplicates().shape[0])
