"""Flower strategies for the robust rules Flower does not ship: FLAME, FLTrust, norm clipping.

Each subclasses Flower's ``FedAvg`` (sampling, configuration, reply validation and metric
aggregation are FedAvg's) and replaces the averaging of weights by its rule applied to the
clients' updates (returned minus sent weights, trainable parameters only; normalisation buffers
are averaged over the admitted clients). Each records its per-client decisions
(:class:`strategies.robust.decisions.DecisionRecorder`).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable, Sequence
from logging import INFO

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.common.logger import log
from flwr.serverapp.strategy import FedAvg

from fl_har.seeding import Stream, stream_rng
from strategies.robust.arrays import (
    State,
    apply_update,
    flatten,
    parameter_keys,
    record_vector,
    to_numpy,
)
from strategies.robust.clipping import norm_clipping
from strategies.robust.common import EXCLUDED, AggregationResult
from strategies.robust.decisions import DecisionRecorder
from strategies.robust.flame import DEFAULT_LAMBDA, flame
from strategies.robust.fltrust import fltrust

# (Flower's server round, the weights sent) -> the weights after the server's own training pass.
RootUpdateFn = Callable[[int, State], State]


class UpdateAggregation(DecisionRecorder, FedAvg):
    """FedAvg whose weight averaging is replaced by a rule on the clients' flat updates.

    Parameters (besides FedAvg's)
    -----------------------------
    seed : int (default: 0)
        Run seed; the rule's noise in a round derives from it (``Stream.AGGREGATION_NOISE``).
    round_offset : int (default: 0)
        Run round = Flower's round + offset (a resumed run keeps its noise stream).
    """

    def __init__(self, *, seed: int = 0, round_offset: int = 0, **fedavg) -> None:
        super().__init__(**fedavg)
        self.seed = seed
        self.round_offset = round_offset

    def noise_rng(self, server_round: int) -> np.random.Generator:
        return stream_rng(self.seed, Stream.AGGREGATION_NOISE, server_round + self.round_offset)

    @abstractmethod
    def aggregate_updates(
        self, server_round: int, updates: np.ndarray, replies: Sequence[Message],
        sent: State, keys: Sequence[str],
    ) -> AggregationResult:
        """The rule: the round's updates [n, d] (rows in reply order) -> aggregate, decisions."""

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Apply the rule to the updates of the valid replies; record its decisions."""
        valid, _ = self._check_and_log_replies(replies, is_train=True)
        sent = self.sent_state(server_round)
        if not valid:
            return None, None
        keys = parameter_keys(sent)
        base = flatten(sent, keys)
        records = [_array_record(msg) for msg in valid]
        updates = np.stack([record_vector(record, keys) - base for record in records])
        result = self.aggregate_updates(server_round, updates, valid, sent, keys)
        self.record_decisions(server_round, valid, result.decisions)
        admitted = [i for i, d in enumerate(result.decisions) if d.status != EXCLUDED]
        log(INFO, "%s: %d of %d updates admitted", type(self).__name__, len(admitted), len(valid))
        if result.aggregate is None or not admitted:
            return None, None
        buffers = [to_numpy(records[i]) for i in admitted] if len(keys) < len(sent) else []
        arrays = apply_update(sent, keys, result.aggregate, buffers)
        metrics = self.train_metrics_aggr_fn(
            [valid[i].content for i in admitted], self.weighted_by_key)
        return arrays, metrics


def _array_record(msg: Message) -> ArrayRecord:
    return next(iter(msg.content.array_records.values()))


class Flame(UpdateAggregation):
    """FLAME (Nguyen et al., USENIX Security 2022): HDBSCAN filtering on cosine distances,
    clipping to the median norm of all updates, Gaussian noise ``lambda * S``
    (:func:`strategies.robust.flame.flame`). Decisions: excluded / clipped / selected, score =
    the update's L2 norm.

    Parameters (besides FedAvg's and :class:`UpdateAggregation`'s)
    ---------------------------------------------------------------
    noise_lambda : float (default: 0.001)
        lambda of the adaptive noise (0 = no noise).
    """

    def __init__(self, *, noise_lambda: float = DEFAULT_LAMBDA, **kwargs) -> None:
        super().__init__(**kwargs)
        if noise_lambda < 0:
            raise ValueError(f"noise_lambda must be >= 0, got {noise_lambda}")
        self.noise_lambda = noise_lambda

    def summary(self) -> None:
        log(INFO, "\t├──> FLAME settings: lambda = %s", self.noise_lambda)
        super().summary()

    def aggregate_updates(self, server_round, updates, replies, sent, keys) -> AggregationResult:
        return flame(updates, noise_lambda=self.noise_lambda, rng=self.noise_rng(server_round))


class FLTrust(UpdateAggregation):
    """FLTrust (Cao et al., NDSS 2021): ReLU(cosine) trust of each update against the server's
    root update, updates rescaled to the root update's norm, trust-weighted average
    (:func:`strategies.robust.fltrust.fltrust`). No update when every trust score is 0.
    Decisions: selected (trust > 0) / excluded, score = trust.

    Parameters (besides FedAvg's and :class:`UpdateAggregation`'s)
    ---------------------------------------------------------------
    root_update_fn : Callable[[int, State], State]
        Given Flower's round and the weights sent, the weights after the server's own training
        pass on its root data (the root update is their difference from the sent weights).
    """

    def __init__(self, *, root_update_fn: RootUpdateFn, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root_update_fn = root_update_fn

    def summary(self) -> None:
        log(INFO, "\t├──> FLTrust: trust against the server's root update")
        super().summary()

    def aggregate_updates(self, server_round, updates, replies, sent, keys) -> AggregationResult:
        trained = self.root_update_fn(server_round, sent)
        missing = [key for key in keys if key not in trained]
        if missing:
            raise ValueError(f"FLTrust: the root update lacks {missing[:3]}")
        root = flatten(trained, keys) - flatten(sent, keys)
        return fltrust(updates, root)


class NormClipping(UpdateAggregation):
    """Norm clipping with optional Gaussian noise (Sun et al. 2019, arXiv 1911.07963): every
    update clipped to L2 norm ``clip_norm``, FedAvg's weighted mean, noise
    ``noise_multiplier * clip_norm / n`` (:func:`strategies.robust.clipping.norm_clipping`).
    Decisions: clipped / selected, score = the update's norm before clipping.

    Parameters (besides FedAvg's and :class:`UpdateAggregation`'s)
    ---------------------------------------------------------------
    clip_norm : float
        The L2 bound (> 0).
    noise_multiplier : float (default: 0)
        z >= 0 (0 = clipping only).
    """

    def __init__(self, *, clip_norm: float, noise_multiplier: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if not clip_norm > 0:
            raise ValueError(f"clip_norm must be > 0, got {clip_norm}")
        if noise_multiplier < 0:
            raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier}")
        self.clip_norm = clip_norm
        self.noise_multiplier = noise_multiplier

    def summary(self) -> None:
        log(INFO, "\t├──> Norm clipping: bound %s, noise multiplier %s",
            self.clip_norm, self.noise_multiplier)
        super().summary()

    def aggregate_updates(self, server_round, updates, replies, sent, keys) -> AggregationResult:
        weights = [float(next(iter(msg.content.metric_records.values()))[self.weighted_by_key])
                   for msg in replies]
        return norm_clipping(updates, self.clip_norm, weights=weights,
                             noise_multiplier=self.noise_multiplier,
                             rng=self.noise_rng(server_round))
