"""Diverse-batch sampler (fl_har.data.diverse): k classes per batch, determinism, errors."""

import numpy as np
import pytest

from fl_har.data.diverse import DiverseSampler, classes_covered, make_diverse_sampler
from fl_har.data.errors import DataError
from fl_har.data.samplers import make_sampler

# Four activities recorded one after another: every sequential batch of 10 is label-exclusive.
BLOCKS = np.repeat(np.arange(4), 30)


def test_swap_pads_label_exclusive_batches_to_k_classes_with_minimal_changes():
    sampler = make_diverse_sampler("sequential", BLOCKS, 10, 3, seed=0, subject=5)
    base = make_sampler("sequential", BLOCKS, 10, seed=0, subject=5)
    for round in range(1, 13):
        batch, original = sampler.batch(round), base.batch(round)
        assert batch.shape == (10,) and batch.dtype == np.int64
        assert classes_covered(BLOCKS[batch]) == 3
        assert len(set(batch.tolist())) == 10
        changed = np.flatnonzero(batch != original)
        assert changed.size == 2  # exactly k - 1 windows swapped in, in place
        own_class = BLOCKS[original[0]]
        assert set(BLOCKS[batch[changed]].tolist()).isdisjoint({own_class})


def test_swap_takes_from_the_most_frequent_class_lowest_label_on_ties():
    class FixedBatch:
        def __init__(self, indices):
            self.indices = np.asarray(indices)

        def batch(self, round):
            return self.indices

    labels = np.array([0, 0, 0, 1, 1, 2, 2, 3])
    # batch labels 0,0,0,1,1: class 0 (3 windows) gives one window to a missing class (2 or 3)
    sampler = DiverseSampler(FixedBatch([0, 1, 2, 3, 4]), labels, 3, seed=1, subject=0)
    counts = np.bincount(labels[sampler.batch(1)], minlength=4)
    assert counts[0] == 2 and counts[1] == 2 and counts[2] + counts[3] == 1
    # batch labels 0,0,1,1 (tie): class 0, the lower label, gives the window
    tie = DiverseSampler(FixedBatch([0, 1, 3, 4]), labels, 3, seed=1, subject=0)
    counts = np.bincount(labels[tie.batch(1)], minlength=4)
    assert counts[0] == 1 and counts[1] == 2 and counts[2] + counts[3] == 1


def test_swap_is_deterministic_per_seed_subject_round_and_keeps_diverse_batches():
    a = make_diverse_sampler("shuffle", BLOCKS, 6, 4, seed=3, subject=2)
    b = make_diverse_sampler("shuffle", BLOCKS, 6, 4, seed=3, subject=2)
    other = make_diverse_sampler("sequential", BLOCKS, 6, 4, seed=4, subject=2)
    twin = make_diverse_sampler("sequential", BLOCKS, 6, 4, seed=3, subject=2)
    for round in (7, 1, 30):
        np.testing.assert_array_equal(a.batch(round), b.batch(round))
        assert classes_covered(BLOCKS[a.batch(round)]) >= 4
    assert any(not np.array_equal(other.batch(r), twin.batch(r)) for r in range(1, 6))
    balanced = make_sampler("balanced", BLOCKS, 8, seed=0, subject=0)
    wrapped = make_diverse_sampler("balanced", BLOCKS, 8, 4, seed=0, subject=0)
    np.testing.assert_array_equal(wrapped.batch(2), balanced.batch(2))  # already diverse


def test_skip_uses_the_next_qualifying_base_batches_in_order():
    labels = np.array([0, 0, 0, 0, 0, 1, 2, 3, 1, 1, 1, 1, 2, 3, 0, 1])
    sampler = make_diverse_sampler("sequential", labels, 4, 3, seed=0, subject=1, policy="skip")
    # base batches: [0,0,0,0] no, [0,1,2,3] yes, [1,1,1,1] no, [2,3,0,1] yes, then it wraps
    np.testing.assert_array_equal(sampler.batch(3), np.arange(4, 8))  # asked first: resumable
    np.testing.assert_array_equal(sampler.batch(1), np.arange(4, 8))
    np.testing.assert_array_equal(sampler.batch(2), np.arange(12, 16))
    np.testing.assert_array_equal(sampler.batch(4), np.arange(12, 16))


def test_skip_gives_up_naming_the_subject_when_no_batch_qualifies():
    sampler = make_diverse_sampler(
        "sequential", BLOCKS, 10, 2, seed=0, subject=9, policy="skip", max_skip=50
    )
    with pytest.raises(DataError, match="subject 9: none of base batches 1..50 covers 2"):
        sampler.batch(1)


def test_diverse_errors_name_the_subject_and_value():
    two_classes = np.array([0, 1, 0, 1, 0, 1])
    with pytest.raises(DataError, match=r"subject 7: diverse_k=3 exceeds the 2 classes .*\(0, 1\)"):
        make_diverse_sampler("shuffle", two_classes, 4, 3, seed=0, subject=7)
    with pytest.raises(DataError, match="subject 7: diverse_k=4 cannot be covered by a batch of 3"):
        make_diverse_sampler("shuffle", BLOCKS, 3, 4, seed=0, subject=7)
    with pytest.raises(DataError, match="diverse_k must be >= 1"):
        make_diverse_sampler("shuffle", BLOCKS, 3, 0, seed=0, subject=7)
    with pytest.raises(DataError, match="diverse_k must be an integer"):
        make_diverse_sampler("shuffle", BLOCKS, 3, 2.0, seed=0, subject=7)
    with pytest.raises(DataError, match="policy 'pad'"):
        make_diverse_sampler("shuffle", BLOCKS, 3, 2, seed=0, subject=7, policy="pad")
    with pytest.raises(DataError, match="round must be"):
        make_diverse_sampler("shuffle", BLOCKS, 3, 2, seed=0, subject=7).batch(0)
