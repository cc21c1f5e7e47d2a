"""From per-round label counts to an activity timeline of one client (sequential sampling).

Under sequential sampling (``client.sampler = "sequential"``) round r of a client trains on the
next N windows of its recording, in time order. A label attack gives each round's histogram
k_r; the order of the windows inside a round is not in the update. Human activities last for many
windows and change rarely, so a plausible timeline puts each round's classes in contiguous blocks
and chooses the block order so that activities continue across round boundaries. Two decoders:

- :func:`greedy_timeline`: round by round; the first block is the class that ended the previous
  round (if present), the last block is the class present in the next round with the largest
  count there, the other blocks in between by decreasing count (ties: lower class index).
- :func:`viterbi_timeline`: the most probable timeline under a first-order Markov prior on the
  window labels (``transition[a, b]`` = P(next window is b | this window is a)). With every
  round's counts fixed and each class one block per round (a partition into fewer blocks is never
  less probable when transitions are rarer than stays), a round's contribution depends on its
  block order only, so a Viterbi recursion over rounds with state (first block, last block) finds
  the best order globally; within a round the inner order for a given (first, last) is found by
  enumeration (up to ``EXACT_INNER`` inner blocks) or nearest-neighbour on the prior beyond.
  :func:`duration_prior` builds the default prior ("activities last": stay probability
  ``1 - 1 / mean_duration``, other classes equally likely); :func:`transition_prior` estimates one
  from labelled sequences the server holds (its own subjects).

Both return one label per window, length ``sum_r N_r``. Timeline metrics live in
:mod:`fl_har.metrics` (per-window accuracy, segment precision/recall, edit distance).
"""

from __future__ import annotations

import itertools

import numpy as np

from attacks.inputs import AttackError

#: Inner blocks of a round ordered by exhaustive enumeration up to this many (5! = 120 orders).
EXACT_INNER = 5


def _check_counts(round_counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(round_counts)
    if counts.ndim != 2 or counts.shape[0] < 1 or counts.shape[1] < 1:
        raise AttackError(f"round_counts: expected [rounds, classes], got shape {counts.shape}")
    if not np.issubdtype(counts.dtype, np.integer) and (
        not np.all(np.isfinite(counts)) or np.any(counts != np.round(counts))
    ):
        raise AttackError("round_counts: expected whole-number counts")
    counts = counts.astype(np.int64)
    if np.any(counts < 0):
        raise AttackError("round_counts: counts must be >= 0")
    return counts


def _expand(order: list[int], counts: np.ndarray) -> list[int]:
    return [c for c in order for _ in range(int(counts[c]))]


def greedy_timeline(round_counts: np.ndarray) -> np.ndarray:
    """Greedy block order per round (module docstring); labels [sum of counts]."""
    counts = _check_counts(round_counts)
    labels: list[int] = []
    previous_last: int | None = None
    for r, row in enumerate(counts):
        present = [int(c) for c in np.flatnonzero(row)]
        if not present:
            continue
        first = previous_last if previous_last in present else None
        last = None
        if r + 1 < counts.shape[0]:
            following = [c for c in present if counts[r + 1, c] > 0 and c != first]
            if following:
                last = max(following, key=lambda c: (counts[r + 1, c], -c))
        middle = sorted((c for c in present if c not in (first, last)),
                        key=lambda c: (-row[c], c))
        order = ([first] if first is not None else []) + middle + (
            [last] if last is not None else [])
        labels.extend(_expand(order, row))
        previous_last = order[-1]
    return np.asarray(labels, dtype=np.int64)


def duration_prior(num_classes: int, mean_duration: float) -> np.ndarray:
    """Transition matrix: stay with probability ``1 - 1/mean_duration``, else any other class."""
    if num_classes < 2:
        raise AttackError(f"duration_prior: need >= 2 classes, got {num_classes}")
    if not mean_duration > 1:
        raise AttackError(f"mean_duration: expected > 1 window, got {mean_duration}")
    stay = 1.0 - 1.0 / mean_duration
    matrix = np.full((num_classes, num_classes), (1.0 - stay) / (num_classes - 1))
    np.fill_diagonal(matrix, stay)
    return matrix


def transition_prior(sequences: list[np.ndarray], num_classes: int, smoothing: float = 1.0
                     ) -> np.ndarray:
    """Row-stochastic transition matrix counted from labelled window sequences (+ smoothing)."""
    matrix = np.full((num_classes, num_classes), float(smoothing))
    for sequence in sequences:
        seq = np.asarray(sequence, dtype=np.int64)
        if seq.size and (seq.min() < 0 or seq.max() >= num_classes):
            raise AttackError(f"transition_prior: labels outside [0, {num_classes})")
        np.add.at(matrix, (seq[:-1], seq[1:]), 1.0)
    sums = matrix.sum(axis=1, keepdims=True)
    if np.any(sums <= 0):
        raise AttackError("transition_prior: a class has no transitions and smoothing is 0")
    return matrix / sums


def _path_cost(order: tuple[int, ...], cost: np.ndarray) -> float:
    return float(sum(cost[a, b] for a, b in itertools.pairwise(order)))


def _best_inner(first: int, last: int, inner: list[int], cost: np.ndarray
                ) -> tuple[float, tuple[int, ...]]:
    """Cheapest block order starting at ``first`` and ending at ``last`` through ``inner``."""
    if len(inner) <= EXACT_INNER:
        best: tuple[float, tuple[int, ...]] | None = None
        for perm in itertools.permutations(inner):
            order = (first, *perm, last) if first != last else (first,)
            value = _path_cost(order, cost)
            if best is None or value < best[0] - 1e-12:
                best = (value, order)
        assert best is not None
        return best
    order = [first]
    remaining = list(inner)
    while remaining:  # nearest neighbour under the prior
        nxt = min(remaining, key=lambda c: (cost[order[-1], c], c))
        order.append(nxt)
        remaining.remove(nxt)
    order.append(last)
    return _path_cost(tuple(order), cost), tuple(order)


def viterbi_timeline(round_counts: np.ndarray, transition: np.ndarray | None = None, *,
                     mean_duration: float = 20.0) -> np.ndarray:
    """Most probable timeline under a Markov prior with each round's counts fixed.

    Args:
        round_counts: [R, C] counts of consecutive rounds of one client.
        transition: [C, C] row-stochastic prior (default :func:`duration_prior` with
            ``mean_duration`` windows).
        mean_duration: mean activity length in windows for the default prior.
    """
    counts = _check_counts(round_counts)
    num_classes = counts.shape[1]
    prior = duration_prior(num_classes, mean_duration) if transition is None else np.asarray(
        transition, dtype=np.float64)
    if prior.shape != (num_classes, num_classes) or np.any(prior < 0):
        raise AttackError(f"transition: expected a non-negative [{num_classes}, {num_classes}] matrix")
    with np.errstate(divide="ignore"):
        cost = -np.log(prior)
    cost = np.where(np.isfinite(cost), cost, 1e12)  # impossible transitions: huge, not inf
    rounds = [r for r in range(counts.shape[0]) if counts[r].any()]
    # per round: {(first, last): (within-round cost, order)}
    options: list[dict[tuple[int, int], tuple[float, tuple[int, ...]]]] = []
    for r in rounds:
        present = [int(c) for c in np.flatnonzero(counts[r])]
        table = {}
        for first in present:
            for last in present:
                if (first == last) != (len(present) == 1):
                    continue
                inner = [c for c in present if c not in (first, last)]
                table[(first, last)] = _best_inner(first, last, inner, cost)
        options.append(table)
    # Viterbi over rounds: score[state] = best cost of rounds so far ending in state.
    score = {state: value for state, (value, _) in options[0].items()}
    back: list[dict[tuple[int, int], tuple[int, int]]] = []
    for table in options[1:]:
        new_score, pointers = {}, {}
        for state, (value, _) in table.items():
            prev = min(score, key=lambda p: (score[p] + cost[p[1], state[0]], p))
            new_score[state] = score[prev] + cost[prev[1], state[0]] + value
            pointers[state] = prev
        score = new_score
        back.append(pointers)
    state = min(score, key=lambda s: (score[s], s))
    states = [state]
    for pointers in reversed(back):
        state = pointers[state]
        states.append(state)
    states.reverse()
    labels: list[int] = []
    for r, table, chosen in zip(rounds, options, states):
        labels.extend(_expand(list(table[chosen][1]), counts[r]))
    return np.asarray(labels, dtype=np.int64)
