"""Batch samplers: deterministic from (seed, subject, round), round 1 first, defined run-out."""

from __future__ import annotations

import numpy as np
import pytest

from fl_har.data import SAMPLERS, DataError, make_sampler

# 103 windows: a NULL majority, two mid classes and a rare class 4 with 3 windows.
LABELS = np.array([0] * 60 + [1] * 25 + [2] * 15 + [4] * 3, dtype=np.int64)


@pytest.mark.parametrize("kind", SAMPLERS)
def test_batches_are_valid_indices(kind):
    sampler = make_sampler(kind, LABELS, 20, seed=3, subject=7)
    for round in range(1, 12):
        batch = sampler.batch(round)
        assert batch.dtype == np.int64 and batch.shape == (20,)
        assert batch.min() >= 0 and batch.max() < len(LABELS)


@pytest.mark.parametrize("kind", SAMPLERS)
def test_deterministic_whatever_was_asked_before(kind):
    a = make_sampler(kind, LABELS, 20, seed=3, subject=7)
    b = make_sampler(kind, LABELS, 20, seed=3, subject=7)
    forward = [a.batch(r).tolist() for r in range(1, 13)]
    backward = [b.batch(r).tolist() for r in range(12, 0, -1)][::-1]
    assert forward == backward
    assert a.batch(5).tolist() == forward[4]  # asking again gives the same batch


@pytest.mark.parametrize("kind", ["shuffle", "balanced"])
def test_seed_and_subject_change_the_batches(kind):
    base = make_sampler(kind, LABELS, 20, seed=3, subject=7).batch(1)
    assert make_sampler(kind, LABELS, 20, seed=4, subject=7).batch(1).tolist() != base.tolist()
    assert make_sampler(kind, LABELS, 20, seed=3, subject=8).batch(1).tolist() != base.tolist()


def test_sequential_consecutive_and_wraps_without_partial_batch():
    sampler = make_sampler("sequential", LABELS, 20, seed=0, subject=1)
    # 103 windows -> 5 full batches per epoch; windows 100..102 are never used
    assert sampler.batch(1).tolist() == list(range(20))
    assert sampler.batch(2).tolist() == list(range(20, 40))
    assert sampler.batch(5).tolist() == list(range(80, 100))
    assert sampler.batch(6).tolist() == list(range(20))  # wraps to the start
    assert sampler.batch(12).tolist() == list(range(20, 40))


def test_shuffle_epochs_are_permutations():
    sampler = make_sampler("shuffle", LABELS, 20, seed=1, subject=2)
    epoch1 = np.concatenate([sampler.batch(r) for r in range(1, 6)])
    epoch2 = np.concatenate([sampler.batch(r) for r in range(6, 11)])
    for epoch in (epoch1, epoch2):
        assert len(np.unique(epoch)) == 100  # 5 batches of distinct windows, 3 left out
    assert epoch1.tolist() != epoch2.tolist()  # a fresh permutation per epoch
    assert epoch1.tolist() != sorted(epoch1.tolist())


def test_balanced_split_and_replacement_only_when_needed():
    sampler = make_sampler("balanced", LABELS, 22, seed=0, subject=0)
    # 4 present classes (0, 1, 2, 4): 22 = 4 * 5 + 2 -> two classes get 6, two get 5
    extra_classes = set()
    for round in range(1, 30):
        batch = sampler.batch(round)
        counts = np.bincount(LABELS[batch], minlength=5)
        assert counts[3] == 0 and counts.sum() == 22
        assert sorted(counts[[0, 1, 2, 4]].tolist()) == [5, 5, 6, 6]
        extra_classes |= {c for c in (0, 1, 2, 4) if counts[c] == 6}
        for c in (0, 1, 2):  # enough windows: no repeats
            members = batch[LABELS[batch] == c]
            assert len(np.unique(members)) == len(members)
        rare = batch[LABELS[batch] == 4]  # 3 windows for 5 or 6 slots: each used 1-2 times
        uses = np.bincount(rare - 100, minlength=3)
        assert uses.min() >= 1 and uses.max() <= 2 and uses.max() - uses.min() <= 1
        assert batch.tolist() != sorted(batch.tolist())  # shuffled
    assert extra_classes == {0, 1, 2, 4}  # the +1 slots rotate between classes


def test_balanced_more_classes_than_slots():
    sampler = make_sampler("balanced", LABELS, 3, seed=0, subject=0)
    counts = np.bincount(LABELS[sampler.batch(1)], minlength=5)
    assert counts.sum() == 3 and counts.max() == 1


@pytest.mark.parametrize("kind", SAMPLERS)
def test_batch_larger_than_data_is_a_clear_error(kind):
    with pytest.raises(DataError, match="batch size 104 exceeds its 103 windows"):
        make_sampler(kind, LABELS, 104, seed=0, subject=3)


def test_bad_arguments():
    with pytest.raises(DataError, match="unknown sampler 'random'"):
        make_sampler("random", LABELS, 10, seed=0, subject=0)
    with pytest.raises(DataError, match="batch_size"):
        make_sampler("shuffle", LABELS, 0, seed=0, subject=0)
    with pytest.raises(DataError, match="seed"):
        make_sampler("shuffle", LABELS, 10, seed=-1, subject=0)
    with pytest.raises(DataError, match="1-D integer"):
        make_sampler("shuffle", LABELS.astype(float), 10, seed=0, subject=0)
    sampler = make_sampler("sequential", LABELS, 10, seed=0, subject=0)
    with pytest.raises(DataError, match="rounds count from 1"):
        sampler.batch(0)
