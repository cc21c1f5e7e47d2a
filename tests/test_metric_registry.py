"""The metric registry of fl_har.metrics: the one home of metric column names and labels."""

import inspect

import numpy as np
import pytest

from fl_har import metrics
from fl_har.report.style import METRIC_LABELS as REPORT_LABELS
from fl_har.results import ATTACK_COLUMNS, CLIENT_COLUMNS, RunStore
from fl_har.results.summary import SUMMARY_METRICS

ALL = (*metrics.PER_UPDATE, *metrics.PER_CLIENT)


@pytest.mark.parametrize("metric", ALL, ids=lambda metric: metric.column)
def test_every_registered_metric_is_a_function_of_fl_har_metrics(metric):
    function = getattr(metrics, metric.column, None)
    assert inspect.isfunction(function), metric.column
    assert function.__module__ == "fl_har.metrics"
    assert metric.label and metric.description


def test_labels_and_columns_are_unique():
    labels = [metric.label for metric in ALL]
    columns = [metric.column for metric in ALL]
    assert len(set(labels)) == len(labels)
    assert len(set(columns)) == len(columns)
    assert metrics.METRIC_LABELS == dict(zip(columns, labels))


def test_update_metrics_are_the_per_update_columns_in_order():
    assert metrics.UPDATE_METRICS == ("ln_acc", "le_acc", "le_recall", "le_precision", "count_acc")
    assert metrics.CLIENT_METRICS == ("class_acc",)
    assert [metrics.METRIC_LABELS[c] for c in ("ln_acc", "le_acc", "le_recall", "class_acc")] == [
        "LnAcc", "LeAcc", "LeRecall", "ClassAcc"]


def test_per_update_metrics_take_one_updates_counts_and_per_client_ones_a_stack():
    true, predicted = np.array([3, 1, 0, 2]), np.array([2, 2, 1, 1])
    for metric in metrics.PER_UPDATE:
        value = getattr(metrics, metric.column)(true, predicted)
        assert 0.0 <= value <= 1.0, metric.column
    for metric in metrics.PER_CLIENT:
        value = getattr(metrics, metric.column)(np.stack([true, true]), np.stack([predicted] * 2))
        assert value == pytest.approx((2 / 3 + 1 + 1 / 2) / 3), metric.column


def test_results_tables_and_report_use_the_registry():
    assert ATTACK_COLUMNS[8:13] == metrics.UPDATE_METRICS
    assert CLIENT_COLUMNS[-6:] == (*metrics.UPDATE_METRICS, *metrics.CLIENT_METRICS)
    assert REPORT_LABELS == metrics.METRIC_LABELS


def test_summary_md_headers_are_the_registry_labels(tmp_path):
    RunStore.create(tmp_path / "run", {"run": {"name": "labels"}}, seed=1)
    lines = (tmp_path / "run" / "summary.md").read_text().splitlines()
    labels = " | ".join(metrics.METRIC_LABELS[column] for column in SUMMARY_METRICS)
    assert labels == "LnAcc | LeAcc | LeRecall | ClassAcc"
    assert f"| attack | clients | updates | attack errors | {labels} |" in lines
