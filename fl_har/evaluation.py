"""Classification quality of a HAR model on held-out windows: accuracy, macro-F1, confusion.

The server evaluates the global model each round on held-out subjects, and ``fl-har pretrain``
reports the same numbers for its checkpoint. Following the evaluation protocol of Bock et al.'s
HAR pipeline, the NULL class (label 0) is an ordinary class here: it counts towards accuracy and
has its own F1 in the macro average.

Macro-F1 is the unweighted mean of the per-class F1 scores over every class that occurs in the
true labels *or* in the predictions; classes in neither are left out rather than counted as 0 or 1.
F1 of a class is the harmonic mean of precision ``P = TP / (TP + FP)`` and recall
``R = TP / (TP + FN)``, ``F1 = 2PR / (P + R)``, taken as 0 when undefined (no true positive). It is
computed in the equivalent form ``F1 = 2 TP / (2 TP + FP + FN)``, which equals ``2PR / (P + R)``
whenever ``TP > 0`` and is 0 when ``TP = 0``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


class EvaluationInputError(ValueError):
    """Labels, predictions or windows handed to an evaluation are malformed."""


@dataclass(frozen=True)
class EvalResult:
    """Quality of predictions on ``num_windows`` windows; ``confusion[t, p]``: true t, pred. p."""

    accuracy: float
    macro_f1: float
    num_windows: int
    confusion: np.ndarray  # [C, C] int64, rows = true class, columns = predicted class

    @property
    def macro_f1_no_null(self) -> float:
        """Macro-F1 over the activity classes only (NULL = class 0 left out of the average;
        windows predicted as NULL still count as misses of their activity)."""
        return macro_f1_from_confusion(self.confusion, skip_null=True)


def _as_label_vector(values: np.ndarray, name: str, num_classes: int) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise EvaluationInputError(
            f"{name} must be a 1-D array of class ids, got shape {array.shape}"
        )
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise EvaluationInputError(f"{name} must hold integer class ids, got dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise EvaluationInputError(
            f"{name} holds class ids from {array.min()} to {array.max()}; "
            f"expected ids in [0, {num_classes - 1}] for {num_classes} classes"
        )
    return array.astype(np.int64, copy=False)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``[C, C]`` counts of (true class, predicted class) pairs of already validated labels."""
    flat = y_true * num_classes + y_pred
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def macro_f1_from_confusion(confusion: np.ndarray, *, skip_null: bool = False) -> float:
    """Mean F1 over the classes that occur as a true label or as a prediction (module docstring);
    ``skip_null`` leaves class 0 out of the mean."""
    true_positives = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0)  # TP + FP per class
    actual = confusion.sum(axis=1)  # TP + FN per class
    present = (predicted + actual) > 0
    if skip_null:
        present[0] = False
    if not present.any():
        return 0.0
    # 2TP + FP + FN = predicted + actual, which is > 0 for every present class.
    per_class_f1 = 2.0 * true_positives[present] / (predicted[present] + actual[present])
    return float(per_class_f1.mean())


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> EvalResult:
    """Accuracy, macro-F1 (NULL included) and confusion matrix of predictions ``y_pred``.

    Raises :class:`EvaluationInputError` if the arrays are not 1-D integer vectors of equal,
    non-zero length with ids in ``[0, num_classes)``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise EvaluationInputError(f"num_classes must be an integer, got {num_classes!r}")
    if num_classes < 1:
        raise EvaluationInputError(f"num_classes must be at least 1, got {num_classes}")
    truth = _as_label_vector(y_true, "y_true", num_classes)
    predictions = _as_label_vector(y_pred, "y_pred", num_classes)
    if truth.shape != predictions.shape:
        raise EvaluationInputError(
            f"y_true has {truth.size} labels but y_pred has {predictions.size} predictions"
        )
    if truth.size == 0:
        raise EvaluationInputError("no windows to evaluate: y_true and y_pred are empty")
    confusion = confusion_matrix(truth, predictions, int(num_classes))
    return EvalResult(
        accuracy=float(np.trace(confusion) / truth.size),
        macro_f1=macro_f1_from_confusion(confusion),
        num_windows=int(truth.size),
        confusion=confusion,
    )


def _num_classes_of(logits: torch.Tensor) -> int:
    if logits.ndim != 2:
        raise EvaluationInputError(
            f"the model returned logits of shape {tuple(logits.shape)}; expected [batch, classes]"
        )
    return int(logits.shape[1])


def predict(
    model: torch.nn.Module,
    x: np.ndarray,
    *,
    batch_size: int = 512,
    normalizer: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, int]:
    """Arg-max class of every window of ``x`` [n, window, ch] and the model's number of classes.

    ``normalizer``, if given, is applied to each batch of windows before the forward pass.
    Runs in eval mode (no dropout) without autograd, ``batch_size`` windows at a time, and puts
    the model back into the train/eval mode it was in.
    """
    if batch_size < 1:
        raise EvaluationInputError(f"batch_size must be at least 1, got {batch_size}")
    was_training = model.training
    model.eval()
    predictions: list[np.ndarray] = []
    num_classes = 0
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                windows = x[start : start + batch_size]
                if normalizer is not None:
                    windows = normalizer(windows)
                batch = torch.as_tensor(windows, dtype=torch.float32)
                logits = model(batch)
                num_classes = _num_classes_of(logits)
                predictions.append(logits.argmax(dim=1).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(predictions).astype(np.int64), num_classes


def evaluate_model(
    model: torch.nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int = 512,
    normalizer: Callable[[np.ndarray], np.ndarray] | None = None,
) -> EvalResult:
    """Evaluate ``model`` on windows ``x`` [n, window, ch] with labels ``y`` [n].

    ``normalizer`` (e.g. a :class:`fl_har.data.Normalizer` fitted on the training subjects) is
    applied to each batch of ``batch_size`` windows just before the forward pass. For
    ``none`` and ``standardize`` that is the same as normalising all windows at once; the
    ``minmax_batch`` rule scales by the min and max of the batch it is given, so with it the
    result depends on ``batch_size`` by definition (use the training batch size to match how the
    model was trained). The number of classes is the width of the model's output.
    """
    windows = np.asarray(x)
    labels = np.asarray(y)
    if windows.ndim != 3:
        raise EvaluationInputError(
            f"x must be windows of shape [n, window, channels], got shape {windows.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(windows):
        raise EvaluationInputError(
            f"y must hold one label per window: {len(windows)} windows, "
            f"labels of shape {labels.shape}"
        )
    if len(windows) == 0:
        raise EvaluationInputError("no windows to evaluate: x is empty")
    predictions, num_classes = predict(model, windows, batch_size=batch_size, normalizer=normalizer)
    return classification_metrics(labels, predictions, num_classes)
