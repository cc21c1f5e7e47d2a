"""Timelines from per-round counts (attacks.timeline) and the timeline metrics, on hand-made
timelines with known answers."""

import numpy as np
import pytest

from attacks import AttackError
from attacks.timeline import (
    duration_prior,
    greedy_timeline,
    transition_prior,
    viterbi_timeline,
)
from fl_har.metrics import (
    MetricInputError,
    edit_distance,
    segment_precision,
    segment_recall,
    segments,
    window_accuracy,
)

A, B, C_, D = 0, 1, 2, 3


def rounds_of(timeline, n):
    timeline = np.asarray(timeline)
    return np.stack([np.bincount(timeline[i:i + n], minlength=4)
                     for i in range(0, timeline.size, n)])


def seq(*runs):
    return np.concatenate([np.full(length, label) for label, length in runs])


def test_activities_continuing_across_rounds_are_recovered_by_both_decoders():
    truth = seq((A, 6), (B, 7), (C_, 7))  # rounds of 10: [A6 B4 | B3 C7]
    counts = rounds_of(truth, 10)
    np.testing.assert_array_equal(greedy_timeline(counts), truth)
    np.testing.assert_array_equal(viterbi_timeline(counts), truth)


def test_prior_on_transitions_lets_viterbi_fix_what_greedy_gets_wrong():
    # rounds of 10: [A5 B5 | B2 C3 A5 | A4 C6]. Greedy ends round 2 with the class that is largest
    # in round 3 (C), which forces B->A->C; the walking-like prior (B is followed by C) makes the
    # true order B->C->A the most probable one.
    truth = seq((A, 5), (B, 7), (C_, 3), (A, 9), (C_, 6))
    counts = rounds_of(truth, 10)
    prior = np.array([[0.90, 0.02, 0.06, 0.02],
                      [0.02, 0.90, 0.06, 0.02],
                      [0.06, 0.02, 0.90, 0.02],
                      [0.02, 0.02, 0.06, 0.90]])
    greedy = greedy_timeline(counts)
    viterbi = viterbi_timeline(counts, prior)
    np.testing.assert_array_equal(viterbi, truth)
    assert window_accuracy(truth, greedy) < 1.0
    # and both keep each round's counts exactly
    np.testing.assert_array_equal(rounds_of(greedy, 10), counts)
    np.testing.assert_array_equal(rounds_of(viterbi, 10), counts)


def test_transition_prior_counts_transitions():
    prior = transition_prior([np.array([0, 0, 1, 1, 0])], 2, smoothing=0.0)
    np.testing.assert_allclose(prior, [[0.5, 0.5], [0.5, 0.5]])
    np.testing.assert_allclose(duration_prior(3, 10).sum(axis=1), 1.0)
    assert duration_prior(3, 10)[0, 0] == pytest.approx(0.9)


def test_bad_counts_are_rejected():
    with pytest.raises(AttackError, match="round_counts"):
        greedy_timeline(np.array([1, 2]))
    with pytest.raises(AttackError, match="mean_duration"):
        viterbi_timeline(np.array([[1, 2]]), mean_duration=1.0)


def test_timeline_metrics_on_known_sequences():
    truth = seq((A, 4), (B, 4), (C_, 2))
    predicted = seq((A, 3), (B, 5), (D, 2))
    assert segments(truth) == [(A, 0, 4), (B, 4, 8), (C_, 8, 10)]
    assert window_accuracy(truth, predicted) == pytest.approx(0.7)
    # A: IoU 3/4, B: IoU 4/5 match; D matches nothing; C unmatched
    assert segment_precision(truth, predicted) == pytest.approx(2 / 3)
    assert segment_recall(truth, predicted) == pytest.approx(2 / 3)
    assert edit_distance(truth, predicted) == 1  # A B C -> A B D
    assert edit_distance(seq((A, 3)), seq((B, 1), (A, 1), (C_, 1))) == 2
    assert segment_precision(truth, seq((A, 1), (B, 9))) == 0.0  # IoUs 1/4 and 4/9 < 0.5
    with pytest.raises(MetricInputError, match="length"):
        window_accuracy(truth, truth[:5])
