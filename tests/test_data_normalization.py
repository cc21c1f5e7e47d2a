"""Normalisation: explicit kinds, statistics from the given subjects only, per-batch min-max."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_data import tiny_dataset

from fl_har.data import NORMALIZATIONS, DataError, Normalizer, fit_normalizer


@pytest.fixture
def dataset():
    rng = np.random.default_rng(0)
    train = (rng.normal([1.0, -2.0], [2.0, 0.5], size=(400, 2)), np.zeros(400, dtype=np.int64))
    train2 = (rng.normal([1.0, -2.0], [2.0, 0.5], size=(100, 2)), np.zeros(100, dtype=np.int64))
    held_out = (rng.normal([100.0, 100.0], 1.0, size=(300, 2)), np.zeros(300, dtype=np.int64))
    return tiny_dataset({1: [train, train2], 2: [held_out]})


def test_kinds():
    assert tuple(NORMALIZATIONS) == ("none", "standardize", "minmax_batch")
    assert all(isinstance(text, str) and text for text in NORMALIZATIONS.values())


def test_standardize_uses_only_given_subjects(dataset):
    normalizer = fit_normalizer("standardize", dataset, [1])
    samples = np.concatenate([rec.signals for rec in dataset.recordings[1]]).astype(np.float64)
    np.testing.assert_allclose(normalizer.mean, samples.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(normalizer.std, samples.std(axis=0), rtol=1e-5)
    x = samples[None, :, :].astype(np.float32)
    z = normalizer(x)
    assert z.dtype == np.float32 and z.shape == x.shape
    np.testing.assert_allclose(z.reshape(-1, 2).mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.reshape(-1, 2).std(axis=0), 1.0, atol=1e-4)
    both = fit_normalizer("standardize", dataset, [1, 2])
    assert both.mean[0] > 10  # the held-out subject moves the statistics when included


def test_standardize_constant_channel_divides_by_one():
    constant = (np.column_stack([np.full(50, 3.0), np.arange(50.0)]), np.zeros(50, dtype=np.int64))
    normalizer = fit_normalizer("standardize", tiny_dataset({1: [constant]}), [1])
    assert normalizer.std[0] == 1.0
    assert np.all(normalizer(np.full((1, 5, 2), 3.0))[..., 0] == 0.0)


def test_standardize_errors(dataset):
    with pytest.raises(DataError, match="at least one subject"):
        fit_normalizer("standardize", dataset, [])
    with pytest.raises(DataError, match="no subject 9"):
        fit_normalizer("standardize", dataset, [9])
    normalizer = fit_normalizer("standardize", dataset, [1])
    with pytest.raises(DataError, match="3 channels"):
        normalizer(np.zeros((1, 4, 3)))


def test_minmax_batch_uses_one_global_min_and_max():
    x = np.array([[[0.0, 10.0], [5.0, 20.0]], [[-10.0, 0.0], [2.0, 30.0]]], dtype=np.float32)
    z = fit_normalizer("minmax_batch", None, [])(x)
    np.testing.assert_allclose(z, (x + 10.0) / 40.0)
    assert z.min() == 0.0 and z.max() == 1.0
    # per batch: the same window maps differently in another batch
    z_single = Normalizer("minmax_batch")(x[:1])
    assert not np.allclose(z_single, z[:1])
    assert np.all(Normalizer("minmax_batch")(np.full((2, 3, 1), 7.0)) == 0.0)


def test_none_is_identity_copy():
    x = np.arange(12, dtype=np.float64).reshape(1, 6, 2)
    z = fit_normalizer("none", None, ())(x)
    assert z.dtype == np.float32
    np.testing.assert_array_equal(z, x)
    z[0, 0, 0] = 99
    assert x[0, 0, 0] == 0


def test_unknown_kind(dataset):
    with pytest.raises(DataError, match="'zscore' is not one of none, standardize, minmax_batch"):
        fit_normalizer("zscore", dataset, [1])
    with pytest.raises(DataError):
        Normalizer("standardize")  # statistics missing
