"""Label-leakage metrics on true vs. reconstructed label counts (numpy only).

Definitions follow ``shared/reference/attacks.md`` ("Metrics") and the HAR label-leakage paper
(eqs. 4-5). Per attacked update, with true counts k and predicted counts k_hat (length C, NULL
is class 0):

- :func:`ln_acc`       LnAcc (eq. 5): ``sum_c min(k[c], k_hat[c]) / N`` with ``N = sum_c k[c]``.
- :func:`le_acc`       LeAcc (eq. 4 read as an accuracy): ``mean_c [(k[c] > 0) == (k_hat[c] > 0)]``.
- :func:`le_recall`    ``|present & predicted| / |present|`` (what the paper's code logged as "LeAcc").
- :func:`le_precision` ``|present & predicted| / |predicted|``.
- :func:`count_acc`    exact-count accuracy (iLRG's "LnAcc"): ``mean_c [k[c] == k_hat[c]]``.

Per client, over all its attacked updates u:

- :func:`class_acc`    ClassAcc: for every class c present in the client's data,
  ``sum_u min(k_u[c], k_hat_u[c]) / sum_u k_u[c]``, then the mean over those classes.
- :func:`sorted_pairing_confusion`: the paper's confusion matrices, which pair each update's
  sorted true labels with its sorted predicted labels position by position.

Backdoor measurements (:func:`attack_success_rate`, trigger statistics) and a poisoning
detector's rates (:func:`detection_rates`, :func:`detection_rates_by_round`: TPR, FPR, AUROC of
scores and flags against the malicious ground truth) follow the leakage metrics.

Every metric is listed once in :data:`PER_UPDATE` / :data:`PER_CLIENT` (:class:`Metric`: column
name, display label, description); results tables, summaries and figures take names and labels
from there. Invalid input raises :class:`MetricInputError` naming the argument and what was
expected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class MetricInputError(ValueError):
    """Counts passed to a metric are malformed (shape, sign, non-integer, empty)."""


@dataclass(frozen=True)
class Metric:
    """One leakage metric as the results tables, summaries and figures name it.

    Attributes:
        column: the column in the results tables, which is also the name of the function in
            this module that computes the metric.
        label: short display name in tables and figures (the paper's name where it has one).
        description: one line saying what the number measures.
    """

    column: str
    label: str
    description: str


# The per-update metrics: what the server records for every attacked update (in this order).
PER_UPDATE = (
    Metric("ln_acc", "LnAcc",
           "share of the update's labels recovered: sum_c min(k[c], k_hat[c]) / N (eq. 5)"),
    Metric("le_acc", "LeAcc",
           "share of all C classes whose presence (k[c] > 0) is predicted right (eq. 4)"),
    Metric("le_recall", "LeRecall",
           "share of the classes present in the update that are predicted present"),
    Metric("le_precision", "LePrecision",
           "share of the classes predicted present that are present (NaN if none is)"),
    Metric("count_acc", "exact-count accuracy",
           "share of all C classes whose count is predicted exactly (iLRG's 'LnAcc')"),
)
# The per-client metrics: computed once over all attacked updates of a client.
PER_CLIENT = (
    Metric("class_acc", "ClassAcc",
           "mean over the client's classes c of sum_u min(k_u[c], k_hat_u[c]) / sum_u k_u[c]"),
)
METRICS = {metric.column: metric for metric in (*PER_UPDATE, *PER_CLIENT)}
METRIC_LABELS = {column: metric.label for column, metric in METRICS.items()}
UPDATE_METRICS = tuple(metric.column for metric in PER_UPDATE)
CLIENT_METRICS = tuple(metric.column for metric in PER_CLIENT)


def _counts(values: object, name: str, ndim: int) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != ndim:
        raise MetricInputError(f"{name}: expected a {ndim}-D array of counts, got shape {array.shape}")
    if array.size == 0:
        raise MetricInputError(f"{name}: expected at least one class, got an empty array")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise MetricInputError(f"{name}: expected numeric counts, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.floating) and (
        not np.all(np.isfinite(array)) or np.any(array != np.round(array))
    ):
        raise MetricInputError(f"{name}: expected whole-number counts, got {array}")
    if np.any(array < 0):
        raise MetricInputError(f"{name}: counts must be >= 0, got {array}")
    return array.astype(np.int64)


def _pair(true_counts: object, predicted_counts: object, ndim: int = 1) -> tuple[np.ndarray, np.ndarray]:
    true = _counts(true_counts, "true_counts", ndim)
    predicted = _counts(predicted_counts, "predicted_counts", ndim)
    if true.shape != predicted.shape:
        raise MetricInputError(
            f"true_counts shape {true.shape} and predicted_counts shape {predicted.shape} differ"
        )
    return true, predicted


def _nonempty_batch(true: np.ndarray) -> int:
    total = int(true.sum())
    if total == 0:
        raise MetricInputError("true_counts: the update has no windows (all counts are 0)")
    return total




def ln_acc(true_counts: object, predicted_counts: object) -> float:
    """LnAcc = ``sum_c min(k[c], k_hat[c]) / sum_c k[c]`` (multiset overlap; paper eq. 5)."""
    true, predicted = _pair(true_counts, predicted_counts)
    return float(np.minimum(true, predicted).sum() / _nonempty_batch(true))


def le_acc(true_counts: object, predicted_counts: object) -> float:
    """LeAcc = ``(1/C) sum_c [(k[c] > 0) == (k_hat[c] > 0)]`` over ALL C classes (eq. 4 as accuracy)."""
    true, predicted = _pair(true_counts, predicted_counts)
    _nonempty_batch(true)
    return float(np.mean((true > 0) == (predicted > 0)))


def le_recall(true_counts: object, predicted_counts: object) -> float:
    """``|{c: k[c] > 0 and k_hat[c] > 0}| / |{c: k[c] > 0}|`` (the paper code's "LeAcc")."""
    true, predicted = _pair(true_counts, predicted_counts)
    _nonempty_batch(true)
    present = true > 0
    return float(np.sum(present & (predicted > 0)) / np.sum(present))


def le_precision(true_counts: object, predicted_counts: object) -> float:
    """``|{c: k[c] > 0 and k_hat[c] > 0}| / |{c: k_hat[c] > 0}|``; NaN if nothing is predicted."""
    true, predicted = _pair(true_counts, predicted_counts)
    _nonempty_batch(true)
    predicted_present = predicted > 0
    if not predicted_present.any():
        return float("nan")
    return float(np.sum((true > 0) & predicted_present) / np.sum(predicted_present))


def count_acc(true_counts: object, predicted_counts: object) -> float:
    """Exact-count accuracy = ``(1/C) sum_c [k[c] == k_hat[c]]`` over all C classes."""
    true, predicted = _pair(true_counts, predicted_counts)
    _nonempty_batch(true)
    return float(np.mean(true == predicted))


def per_class_recall(true_counts: object, predicted_counts: object) -> np.ndarray:
    """Pooled count recall per class over updates [U, C]: ``sum_u min(k, k_hat) / sum_u k``.

    NaN for classes absent from every update of the client.
    """
    true, predicted = _pair(true_counts, predicted_counts, ndim=2)
    totals = true.sum(axis=0).astype(np.float64)
    hits = np.minimum(true, predicted).sum(axis=0).astype(np.float64)
    recall = np.full(true.shape[1], np.nan)
    present = totals > 0
    recall[present] = hits[present] / totals[present]
    return recall


def class_acc(true_counts: object, predicted_counts: object) -> float:
    """ClassAcc of one client: mean of :func:`per_class_recall` over the classes it has.

    Args:
        true_counts, predicted_counts: [U, C] counts of the client's U attacked updates.
    """
    recall = per_class_recall(true_counts, predicted_counts)
    if np.all(np.isnan(recall)):
        raise MetricInputError("true_counts: the client has no windows (all counts are 0)")
    return float(np.nanmean(recall))


def sorted_pairing_confusion(
    true_counts: object, predicted_counts: object, normalize: str | None = None
) -> np.ndarray:
    """The paper's confusion matrix: sorted true vs. sorted predicted labels, paired by position.

    For each update the true labels ``repeat(arange(C), k)`` and the predicted labels
    ``repeat(arange(C), k_hat)`` (both sorted) are paired index by index and the pairs are
    counted into ``M[true, predicted]``, summed over updates. This is NOT a per-window confusion
    matrix (the server never learns which window has which label); it only shows how counts are
    shifted between neighbouring classes.

    Args:
        true_counts, predicted_counts: [C] for one update or [U, C] for several; every update
            must have equal totals (``sum k == sum k_hat``).
        normalize: None (raw pair counts) or "true" (each row divided by its sum; rows of absent
            classes stay 0).
    """
    true = np.asarray(true_counts)
    ndim = 1 if true.ndim == 1 else 2
    true, predicted = _pair(true_counts, predicted_counts, ndim=ndim)
    true, predicted = np.atleast_2d(true), np.atleast_2d(predicted)
    if normalize not in (None, "true"):
        raise MetricInputError(f"normalize: expected None or 'true', got {normalize!r}")
    unequal = np.flatnonzero(true.sum(axis=1) != predicted.sum(axis=1))
    if unequal.size:
        raise MetricInputError(
            f"sorted pairing needs sum(true) == sum(predicted) per update; update {unequal[0]} "
            f"has {int(true[unequal[0]].sum())} vs {int(predicted[unequal[0]].sum())}"
        )
    num_classes = true.shape[1]
    classes = np.arange(num_classes)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    for true_row, predicted_row in zip(true, predicted):
        np.add.at(matrix, (np.repeat(classes, true_row), np.repeat(classes, predicted_row)), 1)
    if normalize is None:
        return matrix
    row_sums = matrix.sum(axis=1, keepdims=True).astype(np.float64)
    return np.divide(matrix, row_sums, out=np.zeros(matrix.shape), where=row_sums > 0)


# ---- timeline metrics (issue 13: activity timelines from per-round counts) -------------------
# A timeline is one activity label per window, in time order. Segments are maximal runs of one
# label. These compare a reconstructed timeline (attacks.timeline) with the true one.

TIMELINE_METRICS = (
    Metric("window_accuracy", "window accuracy",
           "share of windows whose reconstructed label equals the true label"),
    Metric("segment_precision", "segment precision",
           "share of predicted segments matching a true segment (same label, IoU >= 0.5)"),
    Metric("segment_recall", "segment recall",
           "share of true segments matched by a predicted segment (same label, IoU >= 0.5)"),
    Metric("edit_distance", "edit distance",
           "Levenshtein distance between the run-collapsed activity sequences"),
)


def _sequence(values: object, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise MetricInputError(f"{name}: expected a non-empty 1-D label sequence, got {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise MetricInputError(f"{name}: expected integer labels, got dtype {array.dtype}")
    return array.astype(np.int64)


def _sequence_pair(true_labels: object, predicted_labels: object) -> tuple[np.ndarray, np.ndarray]:
    true = _sequence(true_labels, "true_labels")
    predicted = _sequence(predicted_labels, "predicted_labels")
    if true.shape != predicted.shape:
        raise MetricInputError(
            f"true_labels ({true.size}) and predicted_labels ({predicted.size}) differ in length"
        )
    return true, predicted


def segments(labels: object) -> list[tuple[int, int, int]]:
    """Maximal runs ``(label, start, end)`` (end exclusive) of a label sequence."""
    seq = _sequence(labels, "labels")
    cuts = np.flatnonzero(np.diff(seq)) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [seq.size]])
    return [(int(seq[s]), int(s), int(e)) for s, e in zip(starts, ends)]


def window_accuracy(true_labels: object, predicted_labels: object) -> float:
    """Share of windows with the right label: ``mean_t [y_t == y_hat_t]``."""
    true, predicted = _sequence_pair(true_labels, predicted_labels)
    return float(np.mean(true == predicted))


def _matched_segments(true_labels: object, predicted_labels: object, iou: float
                      ) -> tuple[int, int, int]:
    true, predicted = _sequence_pair(true_labels, predicted_labels)
    if not 0.0 < iou <= 1.0:
        raise MetricInputError(f"iou: expected a threshold in (0, 1], got {iou}")
    true_segments, predicted_segments = segments(true), segments(predicted)
    used: set[int] = set()
    matches = 0
    for label, start, end in predicted_segments:
        for index, (t_label, t_start, t_end) in enumerate(true_segments):
            if index in used or t_label != label:
                continue
            overlap = min(end, t_end) - max(start, t_start)
            union = max(end, t_end) - min(start, t_start)
            if overlap > 0 and overlap / union >= iou:
                used.add(index)
                matches += 1
                break
    return matches, len(predicted_segments), len(true_segments)


def segment_precision(true_labels: object, predicted_labels: object, iou: float = 0.5) -> float:
    """Matched predicted segments / predicted segments (one-to-one, same label, IoU >= iou)."""
    matches, predicted, _ = _matched_segments(true_labels, predicted_labels, iou)
    return matches / predicted


def segment_recall(true_labels: object, predicted_labels: object, iou: float = 0.5) -> float:
    """Matched true segments / true segments (one-to-one, same label, IoU >= iou)."""
    matches, _, true = _matched_segments(true_labels, predicted_labels, iou)
    return matches / true


def edit_distance(true_labels: object, predicted_labels: object) -> int:
    """Levenshtein distance between the activity sequences (each run collapsed to one label).

    Insertions, deletions and substitutions cost 1; the sequences may differ in length.
    """
    a = [s[0] for s in segments(true_labels)]
    b = [s[0] for s in segments(predicted_labels)]
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]
# ---- end timeline metrics ---------------------------------------------------------------------


# ---- backdoor metrics ------------------------------------------------------------------------
# Attack success and stealth of backdoor triggers (``shared/reference/backdoor.md``, "Metrics").
# Pure numpy; windows are arrays (n, T, C).


def attack_success_rate(
    pred: object, y_true: object, target: int, exclude: object = ()
) -> float:
    """Attack success rate of a backdoor: the share of triggered windows whose true class is not
    ``target`` (nor in ``exclude``) that the model predicts as ``target``.

    Windows of the target class are left out (they would count as successes without any
    backdoor; BackFed, arXiv 2507.04903). ``exclude=(0,)`` also leaves out NULL windows (the
    "no null" ASR). NaN when no window is left.

    Args:
        pred: [n] predicted classes of the triggered windows.
        y_true: [n] true classes of the (clean) windows.
        target: the backdoor's target class.
        exclude: further true classes to leave out (None or empty: none).
    """
    predicted, truth = np.asarray(pred), np.asarray(y_true)
    if predicted.ndim != 1 or predicted.shape != truth.shape:
        raise MetricInputError(
            f"pred and y_true: expected two 1-D arrays of equal length, got shapes "
            f"{predicted.shape} and {truth.shape}"
        )
    counted = truth != target
    if exclude is not None:
        counted &= ~np.isin(truth, np.asarray(exclude).ravel())
    if not counted.any():
        return float("nan")
    return float(np.mean(predicted[counted] == target))


def _window_pair(clean: object, triggered: object) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(clean, dtype=np.float64), np.asarray(triggered, dtype=np.float64)
    if a.ndim != 3 or a.shape != b.shape or a.size == 0:
        raise MetricInputError(
            f"clean and triggered: expected equal non-empty window arrays (n, T, C), got shapes "
            f"{a.shape} and {b.shape}"
        )
    return a, b


def trigger_norm_ratio(clean: object, triggered: object) -> float:
    """How large the trigger is relative to the signal: ``||triggered - clean||_F / ||clean||_F``
    over all windows together (0 = nothing added; the same windows, paired, in both arrays)."""
    a, b = _window_pair(clean, triggered)
    norm = np.linalg.norm(a)
    if norm == 0:
        raise MetricInputError("clean: all windows are zero; the ratio is undefined")
    return float(np.linalg.norm(b - a) / norm)


def _log_power(windows: np.ndarray) -> np.ndarray:
    """Per-window log power spectrum (n, T // 2, C) in dB without the DC bin (the per-window
    mean is removed, so that bin holds nothing)."""
    centred = windows - windows.mean(axis=1, keepdims=True)
    power = np.abs(np.fft.rfft(centred, axis=1)[:, 1:]) ** 2 / windows.shape[1]
    return 10.0 * np.log10(power + 1e-8)


def spectral_distance(a: object, b: object) -> float:
    """RMS difference (dB) between the mean power spectra (per channel) of two sets of windows.

    Each set's power spectrum is averaged over its windows per frequency and channel (per-window
    mean removed), converted to dB, and the two are compared by the root mean square of their
    difference over frequencies (DC excluded) and channels. 0 for identical sets; the sets may
    differ in size but not in window length or channels.
    """
    first, second = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if first.ndim != 3 or second.ndim != 3 or first.shape[1:] != second.shape[1:] or not (
        len(first) and len(second)
    ):
        raise MetricInputError(
            f"a and b: expected non-empty window arrays (n, T, C) with equal T and C, got "
            f"shapes {first.shape} and {second.shape}"
        )

    def mean_spectrum(windows: np.ndarray) -> np.ndarray:
        centred = windows - windows.mean(axis=1, keepdims=True)
        power = (np.abs(np.fft.rfft(centred, axis=1)[:, 1:]) ** 2).mean(axis=0) / windows.shape[1]
        return 10.0 * np.log10(power + 1e-8)

    return float(np.sqrt(np.mean((mean_spectrum(first) - mean_spectrum(second)) ** 2)))


def auroc(labels: object, scores: object) -> float:
    """Area under the ROC curve = P(score of a positive > score of a negative), ties counted 1/2
    (the Mann-Whitney U statistic from average ranks). ``labels`` are 0/1, both present."""
    truth, values = np.asarray(labels).astype(bool), np.asarray(scores, dtype=np.float64)
    if truth.ndim != 1 or truth.shape != values.shape:
        raise MetricInputError(
            f"labels and scores: expected 1-D arrays of equal length, got {truth.shape} and "
            f"{values.shape}"
        )
    positives, negatives = int(truth.sum()), int((~truth).sum())
    if positives == 0 or negatives == 0:
        raise MetricInputError("labels: AUROC needs at least one positive and one negative")
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    rank_sums = np.bincount(inverse, weights=ranks)
    ranks = (rank_sums / counts)[inverse]  # ties share their average rank
    u = ranks[truth].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


@dataclass(frozen=True)
class DetectionRates:
    """How a poisoning detector did on a set of updates (e.g. one round's).

    ``positives`` / ``negatives``: malicious / honest updates; ``tpr``: share of the malicious
    ones flagged; ``fpr``: share of the honest ones flagged (NaN without malicious / honest
    updates); ``auroc``: :func:`auroc` of the scores against the truth (NaN unless both kinds
    are present).
    """

    positives: int
    negatives: int
    tpr: float
    fpr: float
    auroc: float


def detection_rates(malicious: object, scores: object, flagged: object) -> DetectionRates:
    """TPR, FPR and AUROC of a detector on one set of updates.

    Args:
        malicious: [n] ground truth, 1 / True for a malicious update (evaluation only: the
            detector never sees it).
        scores: [n] the detector's scores (higher = more suspicious). NaN = the detector could
            not score the update: it counts as not flagged and ranks below every scored update
            (ties among themselves) in the AUROC.
        flagged: [n] the detector's decisions.
    """
    truth = np.asarray(malicious).astype(bool)
    values = np.asarray(scores, dtype=np.float64)
    decided = np.asarray(flagged).astype(bool)
    if truth.ndim != 1 or values.shape != truth.shape or decided.shape != truth.shape:
        raise MetricInputError(
            f"malicious, scores and flagged: expected 1-D arrays of equal length, got shapes "
            f"{truth.shape}, {values.shape} and {decided.shape}"
        )
    positives, negatives = int(truth.sum()), int((~truth).sum())
    tpr = float(decided[truth].mean()) if positives else float("nan")
    fpr = float(decided[~truth].mean()) if negatives else float("nan")
    area = float("nan")
    if positives and negatives:
        area = auroc(truth, np.where(np.isnan(values), -np.inf, values))
    return DetectionRates(positives, negatives, tpr, fpr, area)


def detection_rates_by_round(
    rounds: object, malicious: object, scores: object, flagged: object
) -> dict[int, DetectionRates]:
    """:func:`detection_rates` per round (``rounds``: [n] round of each update), in round order."""
    index = np.asarray(rounds)
    truth, values, decided = np.asarray(malicious), np.asarray(scores), np.asarray(flagged)
    if index.ndim != 1 or not index.shape == truth.shape == values.shape == decided.shape:
        raise MetricInputError(
            f"rounds, malicious, scores and flagged: expected 1-D arrays of equal length, got "
            f"shapes {index.shape}, {truth.shape}, {values.shape} and {decided.shape}"
        )
    return {int(r): detection_rates(truth[index == r], values[index == r], decided[index == r])
            for r in np.unique(index)}


def detector_auroc(
    clean: object,
    poisoned: object,
    seed: int,
    *,
    test_fraction: float = 0.5,
    epochs: int = 300,
    l2: float = 1e-2,
) -> float:
    """Held-out AUROC of a simple poisoned-vs-clean detector (0.5 = undetectable, 1 = obvious).

    Features: each window's log power spectrum per channel (:func:`_log_power`) plus its
    per-channel mean and standard deviation, standardised with training statistics. Detector:
    L2-regularised logistic regression fitted by full-batch gradient descent (numpy). Each set is
    split at random (``seed``) into a training part and a ``test_fraction`` held-out part; the
    AUROC is computed on the held-out windows only.

    Args:
        clean: clean windows (n, T, C).
        poisoned: poisoned or triggered windows (m, T, C) with the same T and C.
        seed: fixes the split.
        test_fraction: share of each set held out for scoring (each part keeps >= 1 window).
        epochs: gradient-descent iterations; l2: weight penalty.
    """
    a, b = np.asarray(clean, dtype=np.float64), np.asarray(poisoned, dtype=np.float64)
    if a.ndim != 3 or b.ndim != 3 or a.shape[1:] != b.shape[1:] or len(a) < 2 or len(b) < 2:
        raise MetricInputError(
            f"clean and poisoned: expected window arrays (n >= 2, T, C) with equal T and C, got "
            f"shapes {a.shape} and {b.shape}"
        )
    if not 0.0 < test_fraction < 1.0:
        raise MetricInputError(f"test_fraction: expected a number in (0, 1), got {test_fraction}")

    def features(windows: np.ndarray) -> np.ndarray:
        spectrum = _log_power(windows).reshape(len(windows), -1)
        return np.concatenate([spectrum, windows.mean(axis=1), windows.std(axis=1)], axis=1)

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xBD]))
    train_x, train_y, test_x, test_y = [], [], [], []
    for label, windows in ((0, a), (1, b)):
        order = rng.permutation(len(windows))
        held = min(len(windows) - 1, max(1, round(test_fraction * len(windows))))
        feats = features(windows[order])
        test_x.append(feats[:held])
        train_x.append(feats[held:])
        test_y.append(np.full(held, label))
        train_y.append(np.full(len(windows) - held, label))
    x_train, y_train = np.concatenate(train_x), np.concatenate(train_y)
    x_test, y_test = np.concatenate(test_x), np.concatenate(test_y)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    # class-balanced logistic loss, so unequal set sizes do not decide the threshold
    weight = np.where(y_train == 1, 0.5 / y_train.mean(), 0.5 / (1 - y_train.mean()))
    w, bias = np.zeros(x_train.shape[1]), 0.0
    step = 0.5
    for _ in range(epochs):
        p = 1.0 / (1.0 + np.exp(-(x_train @ w + bias)))
        residual = weight * (p - y_train) / len(y_train)
        w -= step * (x_train.T @ residual + l2 * w)
        bias -= step * residual.sum()
    return auroc(y_test, x_test @ w + bias)
