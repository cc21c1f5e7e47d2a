"""Leakage metrics on hand-computed examples (including classes absent from a client)."""

import math

import numpy as np
import pytest

from fl_har.metrics import (
    MetricInputError,
    class_acc,
    count_acc,
    le_acc,
    le_precision,
    le_recall,
    ln_acc,
    per_class_recall,
    sorted_pairing_confusion,
)

# C = 5: true {0: 3, 1: 1, 3: 2}, predicted {0: 2, 1: 2, 2: 1, 3: 1}, N = 6
TRUE = np.array([3, 1, 0, 2, 0])
PRED = np.array([2, 2, 1, 1, 0])


def test_ln_acc_is_the_multiset_overlap():
    assert ln_acc(TRUE, PRED) == pytest.approx((2 + 1 + 0 + 1 + 0) / 6)
    assert ln_acc(TRUE, TRUE) == 1.0


def test_le_acc_counts_presence_agreement_over_all_classes():
    # presence true [1,1,0,1,0], predicted [1,1,1,1,0]: classes 0, 1, 3, 4 agree
    assert le_acc(TRUE, PRED) == pytest.approx(4 / 5)


def test_le_recall_and_precision():
    assert le_recall(TRUE, PRED) == pytest.approx(3 / 3)  # the paper code's "LeAcc"
    assert le_precision(TRUE, PRED) == pytest.approx(3 / 4)
    assert le_recall([2, 0, 1], [3, 0, 0]) == pytest.approx(1 / 2)


def test_le_precision_is_nan_without_predictions():
    assert math.isnan(le_precision([1, 2], [0, 0]))


def test_count_acc_is_exact_match_per_class():
    # exact: class 4 only (0 == 0) ... and nothing else
    assert count_acc(TRUE, PRED) == pytest.approx(1 / 5)
    assert count_acc([1, 0, 2], [1, 0, 2]) == 1.0


def test_class_acc_pools_updates_and_skips_absent_classes():
    true = np.array([[4, 0, 1, 0], [2, 0, 2, 1]])
    pred = np.array([[2, 1, 2, 0], [3, 0, 1, 1]])
    # class 0: (2 + 2) / 6; class 2: (1 + 1) / 3; class 3: 1 / 1; class 1 absent -> ignored
    np.testing.assert_allclose(per_class_recall(true, pred), [4 / 6, np.nan, 2 / 3, 1.0])
    assert class_acc(true, pred) == pytest.approx((4 / 6 + 2 / 3 + 1.0) / 3)


def test_class_acc_is_not_dominated_by_the_majority_class():
    true = np.array([[95, 5]])
    pred = np.array([[100, 0]])
    assert ln_acc(true[0], pred[0]) == pytest.approx(0.95)
    assert class_acc(true, pred) == pytest.approx(0.5)


def test_sorted_pairing_confusion_pairs_by_position():
    # true sorted [0,0,0,1,3,3], predicted sorted [0,0,1,1,2,3]
    matrix = sorted_pairing_confusion(TRUE, PRED)
    expected = np.zeros((5, 5), dtype=int)
    expected[0, 0], expected[0, 1], expected[1, 1], expected[3, 2], expected[3, 3] = 2, 1, 1, 1, 1
    np.testing.assert_array_equal(matrix, expected)
    summed = sorted_pairing_confusion(np.stack([TRUE, TRUE]), np.stack([PRED, TRUE]))
    np.testing.assert_array_equal(summed, expected + np.diag(TRUE))
    normalized = sorted_pairing_confusion(TRUE, PRED, normalize="true")
    np.testing.assert_allclose(normalized[0], [2 / 3, 1 / 3, 0, 0, 0])
    np.testing.assert_allclose(normalized[2], 0.0)  # absent class: an empty row stays 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ln_acc([1, 2], [1, 2, 0]), "differ"),
        (lambda: ln_acc([1, -1], [0, 0]), ">= 0"),
        (lambda: ln_acc([1.5, 1], [1, 1]), "whole-number"),
        (lambda: ln_acc([0, 0], [1, 0]), "no windows"),
        (lambda: le_acc([[1, 2]], [[1, 2]]), "1-D"),
        (lambda: class_acc([1, 2], [1, 2]), "2-D"),
        (lambda: class_acc([[0, 0]], [[1, 0]]), "no windows"),
        (lambda: sorted_pairing_confusion([2, 1], [1, 1]), "sum"),
        (lambda: sorted_pairing_confusion([2, 1], [2, 1], normalize="pred"), "normalize"),
        (lambda: ln_acc(["a", "b"], [1, 1]), "numeric"),
    ],
)
def test_bad_input_raises_metric_input_error(call, message):
    with pytest.raises(MetricInputError, match=message):
        call()
    assert issubclass(MetricInputError, ValueError)
