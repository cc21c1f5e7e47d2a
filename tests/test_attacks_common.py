"""Shared building blocks: heap greedy, largest-remainder rounding, safe division."""

import numpy as np
import pytest

from attacks._common import (
    greedy_fill,
    largest_remainder_round,
    most_negative_first,
    safe_divide,
    stable_softmax,
)


def naive_greedy(scores, num_labels, increments):
    """The papers' O(N*C) loop: argmin, then raise that score."""
    values = np.array(scores, dtype=np.float64)
    steps = np.broadcast_to(np.asarray(increments, dtype=np.float64), values.shape)
    counts = np.zeros(values.shape[0], dtype=np.int64)
    for _ in range(num_labels):
        cls = int(np.argmin(values))
        counts[cls] += 1
        values[cls] += steps[cls]
    return counts


@pytest.mark.parametrize("seed", range(30))
def test_greedy_fill_matches_repeated_argmin(seed):
    rng = np.random.default_rng(seed)
    num_classes = int(rng.integers(2, 25))
    scores = rng.normal(size=num_classes)
    if seed % 3 == 0:  # exact ties must go to the lowest index, like numpy.argmin
        scores = np.round(scores, 1)
    num_labels = int(rng.integers(0, 200))
    increments = rng.uniform(0.0, 0.3, size=num_classes) if seed % 2 else float(rng.uniform(0.01, 0.2))
    expected = naive_greedy(scores, num_labels, increments)
    np.testing.assert_array_equal(greedy_fill(scores, num_labels, increments), expected)


def test_greedy_fill_zero_increment_gives_everything_to_the_minimum():
    counts = greedy_fill(np.array([0.3, -0.2, -0.2, 0.1]), 7, 0.0)
    np.testing.assert_array_equal(counts, [0, 7, 0, 0])


def test_greedy_fill_hand_example():
    # scores -0.5, -0.1, 0.2 with step 0.25: picks 0 (-0.25), 0 (0.0), 1 (0.15), 0 (0.25), 1 (0.4)
    np.testing.assert_array_equal(greedy_fill(np.array([-0.5, -0.1, 0.2]), 5, 0.25), [3, 2, 0])


def test_largest_remainder_hand_example():
    # quotas 10 * [0.46, 0.34, 0.2] = [4.6, 3.4, 2.0]: floors 4, 3, 2 -> one unit to 0.6
    np.testing.assert_array_equal(largest_remainder_round(np.array([0.46, 0.34, 0.2]), 10), [5, 3, 2])


def test_largest_remainder_rescales_to_the_total():
    # quotas 7 * [1, 1, 2] / 4 = [1.75, 1.75, 3.5]: floors 1, 1, 3 -> two units, ties by index
    np.testing.assert_array_equal(largest_remainder_round(np.array([1.0, 1.0, 2.0]), 7), [2, 2, 3])


@pytest.mark.parametrize("seed", range(10))
def test_largest_remainder_near_integers_round_to_themselves(seed):
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(50, np.full(12, 1 / 12))
    noisy = np.clip(counts + rng.uniform(-1e-7, 1e-7, size=12), 0, None)
    result = largest_remainder_round(noisy, 50)
    np.testing.assert_array_equal(result, counts)
    assert result.sum() == 50


def test_largest_remainder_rejects_bad_values():
    with pytest.raises(ValueError, match="non-negative"):
        largest_remainder_round(np.array([1.0, -0.5]), 3)
    with pytest.raises(ValueError, match="all-zero"):
        largest_remainder_round(np.zeros(3), 2)
    np.testing.assert_array_equal(largest_remainder_round(np.zeros(3), 0), [0, 0, 0])


def test_safe_divide_keeps_sign_and_stays_finite():
    numerator = np.array([[1.0, 2.0], [1.0, 1.0], [3.0, -3.0], [1.0, 1.0]])
    denominator = np.array([[0.5], [1e-20], [-1e-20], [0.0]])
    result = safe_divide(numerator, denominator)
    np.testing.assert_allclose(result[0], [2.0, 4.0])
    np.testing.assert_allclose(result[1], [1e12, 1e12])
    np.testing.assert_allclose(result[2], [-3e12, 3e12])
    np.testing.assert_allclose(result[3], [1e12, 1e12])  # exact zero counts as positive
    assert np.all(np.isfinite(result))


def test_stable_softmax_handles_huge_logits():
    probs = stable_softmax(np.array([[1000.0, 0.0, -1000.0], [1.0, 1.0, 1.0]]))
    np.testing.assert_allclose(probs[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(probs[1], [1 / 3] * 3)


def test_most_negative_first_orders_and_limits():
    values = np.array([0.2, -0.1, -0.5, -0.1, 0.0])
    np.testing.assert_array_equal(most_negative_first(values, 10), [2, 1, 3])
    np.testing.assert_array_equal(most_negative_first(values, 2), [2, 1])
