"""The client table: one row per (partition, subject, attack), recomputed from the attack rows.

Metrics follow Bock et al., "Label Leakage in Federated Inertial-based Human Activity Recognition"
(arXiv:2505.20924; eq. 4 LeAcc, eq. 5 LnAcc, ClassAcc in the text after eq. 5) as defined in
:mod:`fl_har.metrics`; this module only aggregates them per client.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from fl_har import metrics
from fl_har.results.schemas import CLIENT_COLUMNS, CLIENT_DTYPES, CLIENT_KEYS, METRIC_COLUMNS


def _client_metric(column: str, succeeded: pd.DataFrame) -> float:
    """A per-client metric over a client's successful updates; NaN if they hold no window."""
    true_counts = np.array(list(succeeded["true_counts"]), dtype=np.int64)
    if true_counts.size == 0 or true_counts.sum() == 0:
        return math.nan
    predicted = np.array(list(succeeded["pred_counts"]), dtype=np.int64)
    return getattr(metrics, column)(true_counts, predicted)


def client_summary(attacks: pd.DataFrame) -> pd.DataFrame:
    """Per (partition, subject, attack): update and error counts, metric means, pooled ClassAcc.

    ClassAcc (Bock et al., arXiv:2505.20924, Sec. 3 after eq. 5) is computed over all of a
    client's updates by :func:`fl_har.metrics.class_acc`: for every class c present,
    sum_u min(k_u[c], k_hat_u[c]) / sum_u k_u[c], then the mean over those classes.
    Rows whose ``error`` is set count in ``num_updates`` and ``attack_errors`` but not in the
    metrics; a metric that is NaN in a successful row (undefined) is skipped in its mean.
    """
    rows: list[dict[str, Any]] = []
    for (partition, subject, attack), group in attacks.groupby(list(CLIENT_KEYS), sort=True):
        succeeded = group[group["error"] == ""]
        row: dict[str, Any] = {
            "partition": int(partition),
            "subject": int(subject),
            "attack": str(attack),
            "num_updates": len(group),
            "attack_errors": len(group) - len(succeeded),
        }
        for metric in METRIC_COLUMNS:
            row[metric] = float(succeeded[metric].mean()) if len(succeeded) else math.nan
        for metric in metrics.CLIENT_METRICS:
            row[metric] = _client_metric(metric, succeeded)
        rows.append(row)
    return pd.DataFrame({
        name: pd.Series([row[name] for row in rows], dtype=CLIENT_DTYPES.get(name, "float64"))
        for name in CLIENT_COLUMNS
    })
