"""The curious server's label reconstruction turned into a poisoning detector (``label_histogram``).

Not an attack: a defence built from one. The curious server already reconstructs every client's
label histogram from its last-layer update (any attack of :mod:`attacks.registry`). A backdoor
client trains on many windows relabelled with its target class, so its reconstructed histogram
is skewed toward the target, unlike the same person's earlier rounds and unlike the other
participants this round. This module scores that skew; it sees only reconstructed counts (what
the server computes from the updates), never a true label or which client is malicious.

The score (:func:`label_histogram_scores`), for client i in one round with reconstructed counts
``k_i`` (``N_i = sum_c k_i[c] > 0``) and shares ``p_i = k_i / N_i``:

- own history: ``h_i[c]`` = the mean over the client's earlier histograms of their shares of c
  (each earlier histogram normalised by its own total, all weighted equally);
- population: ``m_i[c]`` = the median over the *other* clients scored this round of their shares
  of c (leave-one-out, so a client is not its own reference; the median, so that a few attackers
  do not move it);
- excesses ``dH_i[c] = p_i[c] - h_i[c]`` and ``dP_i[c] = p_i[c] - m_i[c]``, combined
  ``d_i[c] = w * dH_i[c] + (1 - w) * dP_i[c]`` with ``w = history_weight`` (default 0.5);
- score ``s_i = d_i[t]`` for a suspected target class t, or without one ``s_i = max_c d_i[c]``
  (the class with the largest excess is the suspect; ties: the lowest class index);
- flagged iff ``s_i > threshold``.

The score is a difference of shares, in [-1, 1]: 0.3 means the suspect class takes 30
percentage points more of the update's windows than this person usually has and than the others
have now (averaged). Missing references: in a client's first scored round (no history) the score
is the population excess alone, ``d_i = dP_i``; alone in its round (no other scored client) it is
the history excess alone, ``d_i = dH_i``; with neither, or when the attack gave no counts (an
error, or N = 0), there is no score (NaN) and the client is not flagged.

:class:`LabelHistogramDetector` keeps each client's history across rounds: a round in which the
client is flagged does not enter its history (so a persistent attacker is compared with its
honest rounds, not with its own poisoned ones).

Where it fails (expected from the construction; see the README's defences section):

- an attacker whose poisoned windows keep the labels' distribution (a clean-label attack, or one
  that relabels windows of every class in proportion, or mixes extra windows with the true-label
  distribution into its batch so the target's share stays within the threshold) leaves no skew
  to see;
- ``adversary.mode = "constrain"`` projects the update into a small L2 ball: bias-gradient
  attacks read the shrunken gradient as smaller label effects, so the target's excess shrinks
  with the projection and may fall under the threshold (boosting, the opposite, exaggerates it);
- an attacker present from its first round has no honest history, and once flagged rounds are
  left out that is permanent: only the population term can catch it, and a target class that is
  common for everyone (NULL) gives a small population excess;
- honest clients whose label mix changes between rounds (``client.sampler = "sequential"``,
  short sessions, a person whose activities differ from the others') get large excesses: false
  positives. The threshold trades these against missed attackers; AUROC measures the score
  independently of it;
- the reconstruction must be good: with an attack that recovers little (trained models, many
  local steps, privacy noise), the score measures the attack's errors as much as the data.

numpy only.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# The weight w of the client's own history in the combined excess (1 - w: the population's).
HISTORY_WEIGHT = 0.5
# A starting point for the threshold on the score (a share, in [-1, 1]).
DEFAULT_THRESHOLD = 0.1


@dataclass(frozen=True)
class HistogramScore:
    """One client's score in one round.

    ``score``: the combined excess share of ``suspect_class`` (NaN: not scorable);
    ``history_excess`` / ``population_excess``: that class's excess over the client's own history
    / over the other clients' median (NaN when that reference is missing).
    """

    score: float
    suspect_class: int
    history_excess: float
    population_excess: float

    @property
    def scored(self) -> bool:
        return bool(np.isfinite(self.score))


UNSCORED = HistogramScore(float("nan"), -1, float("nan"), float("nan"))


def _shares(counts: object, num_classes: int | None, what: str) -> np.ndarray | None:
    """Counts as shares of their total (None for missing or empty counts)."""
    if counts is None:
        return None
    array = np.asarray(counts, dtype=np.float64)
    if array.size == 0:
        return None
    if array.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D array of label counts, got shape {array.shape}")
    if num_classes is not None and array.size != num_classes:
        raise ValueError(f"{what}: {array.size} classes, the round's other histograms have "
                         f"{num_classes}")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"{what}: label counts must be finite and >= 0")
    total = array.sum()
    return None if total <= 0 else array / total


def _num_classes(counts: Sequence[object], histories: Sequence[Sequence[object]]) -> int | None:
    for item in (*counts, *(h for history in histories for h in history)):
        if item is not None and np.asarray(item).size:
            return int(np.asarray(item).size)
    return None


def label_histogram_scores(
    counts: Sequence[object],
    histories: Sequence[Sequence[object]] | None = None,
    *,
    suspect_class: int | None = None,
    history_weight: float = HISTORY_WEIGHT,
) -> list[HistogramScore]:
    """Score every client of one round by the excess share of its suspect class (module docstring).

    Parameters
    ----------
    counts : sequence of [C] arrays (or None)
        The round's reconstructed label counts, one per client; None or an empty array when the
        attack gave none (that client is not scored and not part of the population).
    histories : sequence of sequences of [C] arrays, optional
        Per client (same order), its reconstructed histograms of earlier rounds; None = no
        history for anyone (a first round).
    suspect_class : int, optional
        Score this class (a suspected backdoor target); None = the class with the largest excess.
    history_weight : float (default: 0.5)
        w in [0, 1]: the weight of the own-history excess where both references exist.

    Returns
    -------
    list of HistogramScore
        One per client, in input order.
    """
    counts = list(counts)
    histories = [[] for _ in counts] if histories is None else [list(h) for h in histories]
    if len(histories) != len(counts):
        raise ValueError(f"histories: expected one per client ({len(counts)}), got "
                         f"{len(histories)}")
    if not 0.0 <= history_weight <= 1.0:
        raise ValueError(f"history_weight must be in [0, 1], got {history_weight}")
    num_classes = _num_classes(counts, histories)
    if num_classes is None:
        return [UNSCORED for _ in counts]
    if suspect_class is not None and not 0 <= suspect_class < num_classes:
        raise ValueError(f"suspect_class {suspect_class}: the histograms have classes "
                         f"0..{num_classes - 1}")
    current = [_shares(c, num_classes, f"counts[{i}]") for i, c in enumerate(counts)]
    scored = [i for i, p in enumerate(current) if p is not None]
    matrix = np.stack([current[i] for i in scored]) if scored else np.empty((0, num_classes))
    out = []
    for i, shares in enumerate(current):
        if shares is None:
            out.append(UNSCORED)
            continue
        earlier = [p for j, h in enumerate(histories[i])
                   if (p := _shares(h, num_classes, f"histories[{i}][{j}]")) is not None]
        d_history = shares - np.mean(earlier, axis=0) if earlier else None
        others = matrix[[k for k, j in enumerate(scored) if j != i]]
        d_population = shares - np.median(others, axis=0) if len(others) else None
        if d_history is not None and d_population is not None:
            combined = history_weight * d_history + (1.0 - history_weight) * d_population
        elif d_history is not None or d_population is not None:
            combined = d_history if d_history is not None else d_population
        else:
            out.append(UNSCORED)
            continue
        c = int(np.argmax(combined)) if suspect_class is None else int(suspect_class)
        out.append(HistogramScore(
            score=float(combined[c]),
            suspect_class=c,
            history_excess=float(d_history[c]) if d_history is not None else float("nan"),
            population_excess=float(d_population[c]) if d_population is not None else float("nan"),
        ))
    return out


@dataclass(frozen=True)
class Detection:
    """The detector's verdict on one client's update: its score and whether it is flagged."""

    score: HistogramScore
    flagged: bool


class LabelHistogramDetector:
    """Scores rounds with :func:`label_histogram_scores` and keeps every client's history.

    Parameters
    ----------
    threshold : float (default: 0.1)
        A client is flagged when its score exceeds it.
    suspect_class : int, optional
        Score this class only (a suspected target); None = the class with the largest excess.
    history_weight : float (default: 0.5)
        w of the own-history excess.
    """

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, *, suspect_class: int | None = None,
                 history_weight: float = HISTORY_WEIGHT) -> None:
        if not np.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number, got {threshold}")
        if not 0.0 <= history_weight <= 1.0:
            raise ValueError(f"history_weight must be in [0, 1], got {history_weight}")
        self.threshold = float(threshold)
        self.suspect_class = suspect_class
        self.history_weight = history_weight
        self._history: dict[Hashable, list[np.ndarray]] = {}

    def history(self, client: Hashable) -> list[np.ndarray]:
        """The client's histograms that entered its history (oldest first; a copy)."""
        return [h.copy() for h in self._history.get(client, [])]

    def remember(self, client: Hashable, counts: object) -> None:
        """Add one histogram to a client's history (e.g. rebuilding it when a run resumes)."""
        array = np.asarray(counts, dtype=np.float64)
        if array.size and array.sum() > 0:
            self._history.setdefault(client, []).append(array)

    def score_round(self, counts: Mapping[Hashable, object]) -> dict[Hashable, Detection]:
        """Score one round's reconstructed counts by client; then each client that was scored and
        not flagged has this round's histogram added to its history."""
        clients = list(counts)
        scores = label_histogram_scores(
            [counts[c] for c in clients], [self._history.get(c, []) for c in clients],
            suspect_class=self.suspect_class, history_weight=self.history_weight,
        )
        out = {}
        for client, score in zip(clients, scores, strict=True):
            flagged = score.scored and score.score > self.threshold
            out[client] = Detection(score, flagged)
            if score.scored and not flagged:
                self.remember(client, counts[client])
        return out
