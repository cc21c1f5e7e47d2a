"""The label-histogram poisoning detector as a Flower strategy wrapper (``server.detector``).

:class:`LabelHistogramDefence` is composed around whatever aggregation strategy the run uses, the
way Flower's ``DifferentialPrivacyServerSideFixedClipping(strategy, ...)`` is, and sits directly
inside the curious server::

    CuriousStrategy(LabelHistogramDefence(aggregator, detector=..., attack="llbg", exclude=True))

Each round the curious server hands it the reconstructed label counts of every reply
(:meth:`LabelHistogramDefence.observe_reconstructions`: the attacks' predictions only, never the
simulation's truth); the Flower-free :class:`attacks.label_histogram.LabelHistogramDetector`
scores them against each client's history and the round's population. With ``exclude`` the
flagged replies are then withheld from the wrapped strategy, which aggregates the rest as it
would; without it the detector only watches. The curious server records per client
``detector_score`` and ``detector_flagged`` (:meth:`take_detections`) and, with ``exclude``, the
pipeline's ``decision`` (:meth:`take_decisions`): ``excluded`` with the detector's score for a
flagged update, else the wrapped robust aggregator's own decision, else ``selected`` with the
detector's score (the wrapped strategy records none, e.g. FedAvg).

A client whose update the attack could not reconstruct is not scored and not flagged. With
``exclude`` and every reply flagged, the wrapped strategy gets no reply and the global model
stays as it was that round.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from logging import INFO

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from attacks.label_histogram import Detection, LabelHistogramDetector
from fl_har.config import ExperimentConfig
from strategies.robust.common import EXCLUDED, SELECTED, Decision

# Columns of the updates table the curious server fills from take_detections().
SCORE_COLUMN, FLAGGED_COLUMN = "detector_score", "detector_flagged"


class LabelHistogramDefence(Strategy):
    """A Flower strategy wrapper that scores each reply's reconstructed label histogram and
    optionally leaves flagged replies out of the wrapped strategy's aggregation.

    Parameters
    ----------
    strategy : Strategy
        The aggregation strategy (FedAvg, a robust rule, a central DP wrapper...).
    detector : LabelHistogramDetector
        Scores and keeps the clients' histories (keyed by node id).
    attack : str
        The attack whose reconstructed counts are scored (one the curious server runs).
    exclude : bool (default: False)
        Withhold flagged replies from ``strategy``.
    """

    def __init__(self, strategy: Strategy, *, detector: LabelHistogramDetector, attack: str,
                 exclude: bool = False) -> None:
        self.strategy = strategy
        self.detector = detector
        self.attack = attack
        self.exclude = exclude
        self._detections: dict[int, dict[int, Detection]] = {}
        self._decisions: dict[int, dict[int, Decision]] = {}

    # The curious server checks the cohort against what the wrapped strategy needs.
    @property
    def min_available_nodes(self) -> int:
        return getattr(self.strategy, "min_available_nodes", 0)

    @property
    def min_train_nodes(self) -> int:
        return getattr(self.strategy, "min_train_nodes", 0)

    def summary(self) -> None:
        log(INFO, "\t├──> Label-histogram detector: attack %s, threshold %s, %s", self.attack,
            self.detector.threshold, "flagged updates excluded" if self.exclude else "watch only")
        self.strategy.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.strategy.configure_train(server_round, arrays, config, grid)

    def observe_reconstructions(
        self, server_round: int, reconstructions: Mapping[int, Mapping[str, object]]
    ) -> dict[int, Detection]:
        """Score the round: ``reconstructions`` = by node id, each attack's predicted counts
        (empty or missing for an attack that failed on that update)."""
        counts = {node: by_attack.get(self.attack) for node, by_attack in reconstructions.items()}
        detections = self.detector.score_round(counts)
        self._detections[server_round] = detections
        return detections

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Withhold the flagged replies (with ``exclude``), let the wrapped strategy aggregate."""
        replies = list(replies)
        detections = self._detections.get(server_round, {})
        flagged = {node for node, d in detections.items() if d.flagged}
        admitted = replies
        if self.exclude:
            admitted = [m for m in replies if m.metadata.src_node_id not in flagged]
            log(INFO, "label_histogram: %d of %d updates flagged and excluded",
                len(replies) - len(admitted), len(replies))
        arrays, metrics = self.strategy.aggregate_train(server_round, admitted)
        take_inner = getattr(self.strategy, "take_decisions", None)
        inner = take_inner(server_round) if take_inner is not None else {}
        if self.exclude:
            decisions = {}
            for msg in replies:
                if msg.has_error():
                    continue
                node = msg.metadata.src_node_id
                score = detections[node].score.score if node in detections else float("nan")
                if node in flagged:
                    decisions[node] = Decision(EXCLUDED, score)
                elif node in inner:
                    decisions[node] = inner[node]
                elif take_inner is None:
                    decisions[node] = Decision(SELECTED, score)
            self._decisions[server_round] = decisions
        else:
            self._decisions[server_round] = inner
        return arrays, metrics

    def take_decisions(self, server_round: int) -> dict[int, Decision]:
        """What happened to each update in ``server_round``, by node id (forgotten once taken)."""
        return self._decisions.pop(server_round, {})

    def take_detections(self, server_round: int) -> dict[int, dict[str, float | bool]]:
        """The round's ``detector_score`` / ``detector_flagged`` by node id (forgotten once
        taken)."""
        return {node: {SCORE_COLUMN: d.score.score, FLAGGED_COLUMN: d.flagged}
                for node, d in self._detections.pop(server_round, {}).items()}

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        return self.strategy.aggregate_evaluate(server_round, replies)


def wrap_detector(strategy: Strategy, config: ExperimentConfig) -> Strategy:
    """``strategy`` inside the detector ``server.detector`` selects (unchanged for none)."""
    server = config.server
    if server.detector == "none":
        return strategy
    return LabelHistogramDefence(
        strategy,
        detector=LabelHistogramDetector(server.detector_threshold),
        attack=server.detector_attack_in(config.attacks.names),
        exclude=server.detector_exclude,
    )


def rebuild_histories(
    defence: LabelHistogramDefence,
    attack_rows: Iterable[Mapping[str, object]],
    flagged: Iterable[tuple[int, int]],
    node_of: Mapping[int, int],
) -> int:
    """Refill the detector's histories from a resumed run's finished rounds.

    ``attack_rows``: the run's attack rows (``round``, ``partition``, ``attack``,
    ``pred_counts``); ``flagged``: the (round, partition) pairs the detector flagged (they stay
    out of the history, as they did in the run); ``node_of``: partition -> this run's node id.
    Returns the number of histograms remembered.
    """
    skip = {(int(r), int(p)) for r, p in flagged}
    rows = sorted(
        ((int(row["round"]), int(row["partition"]), row["pred_counts"]) for row in attack_rows
         if row["attack"] == defence.attack and int(row["partition"]) in node_of),
        key=lambda item: item[:2],
    )
    remembered = 0
    for run_round, partition, counts in rows:
        array = np.asarray(counts if counts is not None else [], dtype=np.float64)
        if (run_round, partition) in skip or not array.size:
            continue
        defence.detector.remember(node_of[partition], array)
        remembered += 1
    return remembered
