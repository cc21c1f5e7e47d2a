"""Flower's own robust strategies, unchanged in what they aggregate, plus per-client decisions.

- :class:`RecordingFedMedian` / :class:`RecordingFedTrimmedAvg` (coordinate-wise median and
  trimmed mean, Yin et al., ICML 2018): every reply enters the coordinate-wise statistic, so
  every client is ``selected``; score = the L2 distance of its weights (equivalently its update)
  to the aggregate.
- :class:`RecordingKrum` / :class:`RecordingMultiKrum` (Blanchard et al., NeurIPS 2017): the
  clients Flower's ``select_multikrum`` keeps are ``selected``, the rest ``excluded``; score =
  the Krum score (:func:`strategies.robust.krum.krum_scores`).
- :class:`RecordingBulyan` (El Mhamdi et al., ICML 2018): the ``n - 2f`` clients of the
  Multi-Krum selection stage are ``selected`` (the coordinate-wise trimmed stage then uses
  parts of each), the rest ``excluded``; score = the Krum score. Flower's selection stage takes
  the ``n - 2f`` lowest Krum scores in one pass, where the paper re-runs Krum after each pick.

The weights Flower's code pops out of the replies are read (as flat vectors over trainable
parameters) before it runs.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
from flwr.app.message import arrayrecord as flower_arrayrecord
from flwr.serverapp.strategy import Bulyan, FedMedian, FedTrimmedAvg, Krum, MultiKrum
from flwr.serverapp.strategy.multikrum import select_multikrum
from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

from strategies.robust.arrays import parameter_keys, record_vector
from strategies.robust.common import EXCLUDED, SELECTED, Decision
from strategies.robust.decisions import DecisionRecorder
from strategies.robust.krum import krum_scores


def _valid(replies: Iterable[Message]) -> list[Message]:
    return [msg for msg in replies if not msg.has_error()]


def _vectors(replies: Sequence[Message], keys: Sequence[str]) -> list[np.ndarray]:
    return [record_vector(next(iter(m.content.array_records.values())), keys) for m in replies]


class _DistanceToAggregate(DecisionRecorder):
    """Every client ``selected``, scored by its distance to the aggregate Flower computed."""

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        keys = parameter_keys(self.sent_state(server_round))
        replies = list(replies)
        valid = _valid(replies)
        vectors = _vectors(valid, keys) if valid else None
        arrays, metrics = super().aggregate_train(server_round, replies)  # type: ignore[misc]
        if arrays is not None and vectors is not None:
            aggregate = record_vector(arrays, keys)
            # row by row: one [n, d] difference matrix costs more than the median itself
            self.record_decisions(server_round, valid, [
                Decision(SELECTED, float(np.linalg.norm(vector - aggregate)))
                for vector in vectors
            ])
        return arrays, metrics


class RecordingFedMedian(_DistanceToAggregate, FedMedian):
    """Flower's ``FedMedian`` (Yin et al. 2018) recording per-client decisions."""


class RecordingFedTrimmedAvg(_DistanceToAggregate, FedTrimmedAvg):
    """Flower's ``FedTrimmedAvg`` (Yin et al. 2018) recording per-client decisions."""


class _KrumSelection(DecisionRecorder):
    """Multi-Krum as Flower's ``MultiKrum.aggregate_train`` does it (Flower's selection and
    weighted average), noting which replies the selection kept."""

    num_malicious_nodes: int
    num_nodes_to_select: int

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        keys = parameter_keys(self.sent_state(server_round))
        valid, _ = self._check_and_log_replies(replies, is_train=True)  # type: ignore[attr-defined]
        if not valid:
            return None, None
        contents = [msg.content for msg in valid]
        chosen = select_multikrum(contents, self.num_malicious_nodes, self.num_nodes_to_select)
        scores = krum_scores(_vectors(valid, keys), self.num_malicious_nodes)
        kept = {id(content) for content in chosen}
        self.record_decisions(server_round, valid, [
            Decision(SELECTED if id(content) in kept else EXCLUDED, float(score))
            for content, score in zip(contents, scores, strict=True)
        ])
        arrays = aggregate_arrayrecords(chosen, self.weighted_by_key)  # type: ignore[attr-defined]
        metrics = self.train_metrics_aggr_fn(chosen, self.weighted_by_key)  # type: ignore[attr-defined]
        return arrays, metrics


class RecordingMultiKrum(_KrumSelection, MultiKrum):
    """Flower's ``MultiKrum`` (Blanchard et al. 2017) recording per-client decisions."""


class RecordingKrum(_KrumSelection, Krum):
    """Flower's ``Krum`` (Blanchard et al. 2017) recording per-client decisions."""


@contextlib.contextmanager
def without_forced_gc() -> Iterator[None]:
    """Skip the full ``gc.collect()`` Flower forces after converting a record with
    ``ArrayRecord.to_numpy_ndarrays(keep_input=False)``, as Bulyan does for every selected reply:
    each collection walks the whole server heap (about 0.1 s here), which made up 2.6 s of
    Bulyan's 3.9 s on 30 DeepConvLSTM updates (``benchmarks/aggregators.py``). The freed arrays
    are reclaimed by reference counting anyway; only Flower's module sees the change, and only
    for the duration of the block."""
    forced = flower_arrayrecord.gc
    flower_arrayrecord.gc = types.SimpleNamespace(collect=lambda *args, **kwargs: 0)
    try:
        yield
    finally:
        flower_arrayrecord.gc = forced


class RecordingBulyan(DecisionRecorder, Bulyan):
    """Flower's ``Bulyan`` (El Mhamdi et al. 2018) recording per-client decisions; takes
    Flower's ``Bulyan`` arguments except ``selection_rule`` (Flower's Multi-Krum, observed)."""

    def __init__(self, **kwargs) -> None:
        if "selection_rule" in kwargs:
            raise TypeError("RecordingBulyan records Flower's Multi-Krum selection; "
                            "selection_rule cannot be replaced")
        super().__init__(**kwargs, selection_rule=self._observed_multikrum)
        self._kept: set[int] = set()

    def _observed_multikrum(
        self, contents: list[RecordDict], num_malicious_nodes: int, num_nodes_to_select: int
    ) -> list[RecordDict]:
        chosen = select_multikrum(contents, num_malicious_nodes, num_nodes_to_select)
        self._kept = {id(content) for content in chosen}
        return chosen

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        keys = parameter_keys(self.sent_state(server_round))
        replies = list(replies)
        valid = _valid(replies)
        vectors = _vectors(valid, keys) if valid else None
        self._kept = set()
        with without_forced_gc():
            arrays, metrics = super().aggregate_train(server_round, replies)
        if vectors is not None:  # too few replies: Flower skips the round, all excluded
            scores = krum_scores(vectors, self.num_malicious_nodes)
            self.record_decisions(server_round, valid, [
                Decision(SELECTED if id(msg.content) in self._kept else EXCLUDED, float(score))
                for msg, score in zip(valid, scores, strict=True)
            ])
        return arrays, metrics
