"""Accuracy / macro-F1 / confusion on hand-computed examples, and batched model evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fl_har.evaluation import (
    EvalResult,
    EvaluationInputError,
    classification_metrics,
    evaluate_model,
)


def test_hand_computed_example_with_a_class_absent_everywhere() -> None:
    # Class 0: TP 1, FP 1, FN 1 -> P = R = 1/2, F1 = 1/2.
    # Class 1: TP 2, FP 1, FN 0 -> P = 2/3, R = 1, F1 = 4/5.
    # Class 2: TP 1, FP 0, FN 1 -> P = 1, R = 1/2, F1 = 2/3.
    # Class 3 occurs nowhere and is left out of the average.
    result = classification_metrics(
        np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 1, 2, 0]), num_classes=4
    )
    assert result.accuracy == pytest.approx(4 / 6)
    assert result.macro_f1 == pytest.approx((1 / 2 + 4 / 5 + 2 / 3) / 3)
    assert result.num_windows == 6
    expected_confusion = np.array(
        [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]], dtype=np.int64
    )
    np.testing.assert_array_equal(result.confusion, expected_confusion)


def test_class_only_predicted_counts_as_zero_f1() -> None:
    # Class 0: P = 1, R = 1/2 -> 2/3; class 1 perfect -> 1; class 2 only predicted -> 0.
    result = classification_metrics(np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1]), num_classes=3)
    assert result.macro_f1 == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert result.accuracy == pytest.approx(3 / 4)


def test_class_never_predicted_counts_as_zero_f1() -> None:
    # Class 0: P = 1/2, R = 1 -> 2/3; class 1 never predicted -> 0.
    result = classification_metrics(np.array([0, 1]), np.array([0, 0]), num_classes=2)
    assert result.macro_f1 == pytest.approx(1 / 3)
    assert result.accuracy == pytest.approx(1 / 2)


def test_null_class_is_an_ordinary_class() -> None:
    # Predicting everything as NULL (0) on NULL-dominated data: high accuracy, low macro-F1.
    y_true = np.array([0] * 8 + [1, 2])
    result = classification_metrics(y_true, np.zeros(10, dtype=np.int64), num_classes=3)
    assert result.accuracy == pytest.approx(0.8)
    null_f1 = 2 * 8 / (2 * 8 + 2 + 0)
    assert result.macro_f1 == pytest.approx(null_f1 / 3)


def test_perfect_and_all_wrong_predictions() -> None:
    y = np.array([0, 1, 2, 2, 1])
    perfect = classification_metrics(y, y, num_classes=3)
    assert (perfect.accuracy, perfect.macro_f1) == (1.0, 1.0)
    wrong = classification_metrics(y, (y + 1) % 3, num_classes=3)
    assert (wrong.accuracy, wrong.macro_f1) == (0.0, 0.0)


def test_macro_f1_matches_precision_recall_definition_on_random_labels() -> None:
    rng = np.random.default_rng(7)
    num_classes = 6
    y_true = rng.integers(0, num_classes - 1, size=200)  # class 5 never true
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, num_classes, size=200))
    scores = []
    for c in range(num_classes):
        tp = np.sum((y_true == c) & (y_pred == c))
        predicted, actual = np.sum(y_pred == c), np.sum(y_true == c)
        if predicted == 0 and actual == 0:
            continue
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        scores.append(2 * precision * recall / (precision + recall) if tp else 0.0)
    result = classification_metrics(y_true, y_pred, num_classes)
    assert result.macro_f1 == pytest.approx(np.mean(scores))
    assert result.accuracy == pytest.approx(np.mean(y_true == y_pred))
    assert result.confusion.sum() == 200


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        (np.array([0, 1]), np.array([0]), "2 labels but y_pred has 1"),
        (np.array([0, 3]), np.array([0, 1]), r"expected ids in \[0, 2\]"),
        (np.array([0, -1]), np.array([0, 1]), "y_true holds class ids from -1"),
        (np.array([0.0, 1.0]), np.array([0, 1]), "integer class ids"),
        (np.zeros((2, 2), dtype=int), np.array([0, 1]), "1-D array"),
        (np.array([], dtype=int), np.array([], dtype=int), "no windows"),
    ],
)
def test_bad_label_arrays_are_named(y_true, y_pred, message) -> None:
    with pytest.raises(EvaluationInputError, match=message):
        classification_metrics(y_true, y_pred, num_classes=3)


class MeanChannelModel(torch.nn.Module):
    """Logits = mean over time of each channel (3 channels -> 3 classes), with a dropout layer.

    The dropout (p = 0.9) makes train-mode predictions random, so evaluation must run in eval
    mode to be reproducible; ``grad_enabled`` records whether autograd was on.
    """

    def __init__(self) -> None:
        super().__init__()
        self.dropout = torch.nn.Dropout(p=0.9)
        self.scale = torch.nn.Parameter(torch.ones(1))
        self.grad_enabled: list[bool] = []
        self.batch_sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.grad_enabled.append(torch.is_grad_enabled())
        self.batch_sizes.append(x.shape[0])
        return self.dropout(x.mean(dim=1)) * self.scale


def _windows(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = rng.normal(0.0, 0.3, size=(n, 10, 3)).astype(np.float32)
    x[np.arange(n), :, y] += 1.0  # the true class's channel is largest on average
    return x, y


@pytest.mark.parametrize("initially_training", [True, False])
def test_evaluate_model_uses_eval_mode_no_grad_and_restores_mode(initially_training) -> None:
    model = MeanChannelModel()
    model.train(initially_training)
    x, y = _windows(40)
    result = evaluate_model(model, x, y, batch_size=16)
    assert isinstance(result, EvalResult)
    assert result.accuracy == pytest.approx(np.mean(x.mean(axis=1).argmax(axis=1) == y))
    assert result.accuracy > 0.9  # would be near chance with 90 % dropout active
    assert model.training is initially_training
    assert model.grad_enabled == [False, False, False]
    assert model.batch_sizes == [16, 16, 8]


def test_evaluate_model_result_does_not_depend_on_batch_size() -> None:
    model = MeanChannelModel()
    x, y = _windows(37, seed=3)
    results = [evaluate_model(model, x, y, batch_size=b) for b in (1, 5, 512)]
    for other in results[1:]:
        np.testing.assert_array_equal(other.confusion, results[0].confusion)
        assert other.macro_f1 == results[0].macro_f1


def test_evaluate_model_applies_the_normalizer_to_every_batch() -> None:
    model = MeanChannelModel()
    x, y = _windows(30, seed=1)
    seen_shapes = []

    def flip_channels(windows: np.ndarray) -> np.ndarray:
        seen_shapes.append(windows.shape)
        return windows[:, :, ::-1].copy()

    plain = evaluate_model(model, x, y)
    flipped = evaluate_model(model, x, y, normalizer=flip_channels, batch_size=7)
    assert seen_shapes == [(7, 10, 3)] * 4 + [(2, 10, 3)]
    assert flipped.accuracy == pytest.approx(np.mean(2 - x.mean(axis=1).argmax(axis=1) == y))
    assert flipped.accuracy < plain.accuracy


def test_evaluate_model_rejects_malformed_windows() -> None:
    model = MeanChannelModel()
    x, y = _windows(5)
    with pytest.raises(EvaluationInputError, match=r"shape \[n, window, channels\]"):
        evaluate_model(model, x[:, :, 0], y)
    with pytest.raises(EvaluationInputError, match="5 windows"):
        evaluate_model(model, x, y[:4])
    with pytest.raises(EvaluationInputError, match="no windows"):
        evaluate_model(model, x[:0], y[:0])


def test_macro_f1_without_null_averages_the_activities_only():
    # true:  0 0 1 1 2 2 ; predicted: 0 1 1 0 2 2
    result = classification_metrics(np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 0, 2, 2]), 3)
    # F1: NULL 2*1/(2+2) = 0.5, class 1 2*1/(2+2) = 0.5, class 2 1.0
    assert result.macro_f1 == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert result.macro_f1_no_null == pytest.approx((0.5 + 1.0) / 2)
