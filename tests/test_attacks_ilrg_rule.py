"""iLRG's published rule (BUAA-CST/iLRG methods.py): an estimate that rounds above N is an
explosion of a near-singular system and becomes 0; the sum-to-N correction acts after it."""

import numpy as np

from attacks import AttackContext, LastLayerUpdate, reconstruct_labels_with_diagnostics
from attacks.ilrg import apply_published_rule, ilrg_solution

EPS = 1e-3
# Recovered class probabilities P[i, :] = softmax(W e_i + b): with W = I, b = 0 and
# e_i = log P[i, :] (weight_grad[i] = bias_grad[i] * log P[i, :]) we choose P directly.
NEAR_ONE_HOT = np.array([[1 - 2 * EPS, EPS, EPS], [EPS, 1 - 2 * EPS, EPS], [0.2, 0.2, 0.6]])
BIAS_GRAD = np.array([-0.1, 0.15, -0.05])
N = 10


def update_for(probs: np.ndarray, bias_grad: np.ndarray) -> LastLayerUpdate:
    num_classes = probs.shape[0]
    return LastLayerUpdate(bias_grad[:, None] * np.log(probs), bias_grad, N,
                           weight=np.eye(num_classes), bias=np.zeros(num_classes))


def test_near_singular_system_explodes_and_the_exploded_class_gets_zero():
    estimate = ilrg_solution(BIAS_GRAD[:, None] * np.log(NEAR_ONE_HOT), BIAS_GRAD, np.eye(3),
                             np.zeros(3), N)
    assert estimate[0] > 10 * N and estimate[1] < -10 * N  # the explosion
    np.testing.assert_allclose(apply_published_rule(estimate, N), [0.0, 0.0, estimate[2]])
    result = reconstruct_labels_with_diagnostics("ilrg", update_for(NEAR_ONE_HOT, BIAS_GRAD),
                                                 AttackContext())
    # before the rule, clamping only at 0 handed (almost) every label to the exploded class 0
    assert result.counts[0] == 0
    np.testing.assert_array_equal(result.counts, [0, 0, N])  # correction after the rule
    assert result.diagnostics["exploded_classes"] == [0]
    assert result.diagnostics["condition_number"] > 100
    published = reconstruct_labels_with_diagnostics(
        "ilrg", update_for(NEAR_ONE_HOT, BIAS_GRAD), AttackContext(ilrg_force_sum=False))
    np.testing.assert_array_equal(published.counts, [0, 0, round(estimate[2])])


def test_well_conditioned_system_reports_a_small_condition_number():
    probs = np.array([[0.5, 0.3, 0.2], [0.25, 0.5, 0.25], [0.2, 0.3, 0.5]])
    truth = np.array([3.0, 5.0, 2.0])
    # consistent bias gradient: N g_i = sum_j k_j P[j, i] - k_i
    bias_grad = (probs.T @ truth - truth) / N
    result = reconstruct_labels_with_diagnostics("ilrg", update_for(probs, bias_grad),
                                                 AttackContext())
    np.testing.assert_array_equal(result.counts, truth)
    assert result.diagnostics["exploded_classes"] == []
    assert result.diagnostics["condition_number"] < 20


def test_rule_keeps_estimates_up_to_n_and_zeroes_negatives():
    np.testing.assert_allclose(
        apply_published_rule(np.array([-1.0, 10.0, 10.4, 10.6, 3.0]), 10),
        [0.0, 10.0, 10.4, 0.0, 3.0])
