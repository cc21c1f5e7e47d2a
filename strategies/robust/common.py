"""What every robust aggregation rule returns: the aggregate and a decision per client.

The rules in this package are pure functions of flat numpy update vectors (a client's update is
the weights it returned minus the weights the server sent, flattened in a fixed key order), so
they can be tested on hand-made vectors and timed without Flower.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# A client's update entered the aggregate unchanged (or, for FLTrust, rescaled and weighted).
SELECTED = "selected"
# The rule left the update out of the aggregate.
EXCLUDED = "excluded"
# The update entered the aggregate after its L2 norm was clipped.
CLIPPED = "clipped"
DECISIONS = (SELECTED, EXCLUDED, CLIPPED)


@dataclass(frozen=True)
class Decision:
    """What a rule did with one client's update, and the number it decided on.

    ``score`` is rule-specific (each rule's docstring says which): a norm, a Krum score, a trust
    score or a distance to the aggregate.
    """

    status: str
    score: float

    def __post_init__(self) -> None:
        if self.status not in DECISIONS:
            raise ValueError(f"decision {self.status!r} is not one of {DECISIONS}")


@dataclass(frozen=True)
class AggregationResult:
    """The aggregated update (None: the rule makes no update this round) and one decision per
    input update, in input order."""

    aggregate: np.ndarray | None
    decisions: list[Decision]

    def statuses(self) -> list[str]:
        return [d.status for d in self.decisions]

    def scores(self) -> np.ndarray:
        return np.array([d.score for d in self.decisions], dtype=np.float64)


def stack_updates(updates: Sequence[np.ndarray] | np.ndarray, what: str = "updates") -> np.ndarray:
    """The updates as one float64 matrix [n, d]; a clear error for ragged or empty input."""
    if isinstance(updates, np.ndarray):
        matrix = np.asarray(updates, dtype=np.float64)
    else:
        if not len(updates):
            raise ValueError(f"{what}: expected at least one update vector, got none")
        sizes = {np.asarray(u).size for u in updates}
        if len(sizes) != 1:
            raise ValueError(f"{what}: update vectors have different lengths {sorted(sizes)}")
        matrix = np.stack([np.asarray(u, dtype=np.float64).ravel() for u in updates])
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ValueError(f"{what}: expected a [clients, parameters] matrix, got {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{what}: an update contains NaN or infinite values")
    return matrix


def clip_factors(norms: np.ndarray, bound: float) -> np.ndarray:
    """``min(1, bound / norm)`` per update (1 for a zero update)."""
    norms = np.asarray(norms, dtype=np.float64)
    with np.errstate(divide="ignore"):
        factors = np.where(norms > bound, bound / np.where(norms > 0, norms, 1.0), 1.0)
    return factors
