"""Central differential privacy with Flower's own fixed-clipping wrappers, seeded and accounted.

``server.dp`` selects one of Flower's Message-API wrappers (``flwr.serverapp.strategy``; McMahan
et al., "Learning Differentially Private Recurrent Language Models", ICLR 2018; Andrew et al.
2021 for the clipping rule), placed *inside* the curious server:
``CuriousStrategy(DifferentialPrivacy...FixedClipping(FedAvg(...)))``. The curious server reads
every individual reply before the wrapper aggregates it, so central DP protects the released
*global model* from everyone who sees it later, not the clients from this server:

- ``central_fixed_server``: the server clips each update ``theta_k - theta`` to L2 norm
  ``dp_clip`` (after the curious server has already seen it unclipped), averages, and adds
  ``N(0, (dp_noise_multiplier * dp_clip / m)^2)`` to every coordinate (m = the cohort size);
- ``central_fixed_client``: each client clips its own update with Flower's
  ``flwr.clientapp.mod.fixedclipping_mod`` (the clipping norm travels in the train config), so
  the curious server sees *clipped* updates; the server adds the same noise.

Flower draws the noise from numpy's global generator; :class:`_SeededNoise` seeds it from the
run seed and the round (stream ``CENTRAL_DP``) around each aggregation and restores it after, so
runs are reproducible.

``central_epsilon`` (per round, in ``rounds.parquet``) is computed with **Opacus' RDP
accountant** through :func:`fl_har.privacy.epsilon_spent`: r rounds of the Gaussian mechanism with
noise multiplier sigma and no sampling amplification (sample rate 1: the cohort is a seeded draw
without replacement, not Poisson sampling), client-level add/remove neighbours. This equals what
Flower's ``RdpAccountant`` with ``SamplingMethod.NO_AMPLIFICATION`` reports; that accountant is not
used because it needs the ``flwr[dp]`` extra (Google's ``dp-accounting``), accepts only
equal client weights, and refuses sigma = 0. The bound assumes FedAvg's weights are equal (every
client announces the same N); with unequal N a client's share of the average exceeds 1 / m.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideFixedClipping,
    Strategy,
)

from fl_har.config import ExperimentConfig
from fl_har.privacy import MechanismRecord, epsilon_spent
from fl_har.seeding import Stream, derive_seed

# server.dp -> Flower's wrapper
WRAPPERS = {
    "central_fixed_server": DifferentialPrivacyServerSideFixedClipping,
    "central_fixed_client": DifferentialPrivacyClientSideFixedClipping,
}


class _SeededNoise:
    """Mixin: Flower's Gaussian noise drawn from ``(seed, CENTRAL_DP, run round)``."""

    seed: int
    run_round_of: Callable[[int], int]

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        state = np.random.get_state()
        key = derive_seed(self.seed, Stream.CENTRAL_DP, self.run_round_of(server_round))
        np.random.seed(key % 2**32)
        try:
            return super().aggregate_train(server_round, replies)  # type: ignore[misc]
        finally:
            np.random.set_state(state)


class SeededServerSideFixedClipping(_SeededNoise, DifferentialPrivacyServerSideFixedClipping):
    """Flower's server-side fixed clipping with seeded noise."""


class SeededClientSideFixedClipping(_SeededNoise, DifferentialPrivacyClientSideFixedClipping):
    """Flower's client-side fixed clipping (clients use ``fixedclipping_mod``), seeded noise."""


_SEEDED = {
    "central_fixed_server": SeededServerSideFixedClipping,
    "central_fixed_client": SeededClientSideFixedClipping,
}


def wrap_central_dp(
    strategy: Strategy,
    config: ExperimentConfig,
    cohort_size: int,
    run_round_of: Callable[[int], int] = lambda server_round: server_round,
) -> Strategy:
    """``strategy`` wrapped with the Flower DP wrapper ``server.dp`` selects (unchanged for none).

    ``cohort_size`` is m, the clients addressed per round (the noise std is sigma * C / m);
    ``run_round_of`` maps Flower's round to the run's round (resumed runs), for the noise seed.
    """
    server = config.server
    if server.dp == "none":
        return strategy
    wrapper = _SEEDED[server.dp](
        strategy, server.dp_noise_multiplier, server.dp_clip, cohort_size
    )
    wrapper.seed = config.run.seed
    wrapper.run_round_of = run_round_of
    return wrapper


def central_epsilon(config: ExperimentConfig, rounds: int) -> float:
    """Client-level epsilon at ``server.dp_delta`` after ``rounds`` noised aggregates (RDP,
    Gaussian mechanism without amplification; ``inf`` for sigma = 0)."""
    server = config.server
    if rounds < 1:
        return 0.0
    record = MechanismRecord(server.dp_noise_multiplier, 1.0, rounds)
    return epsilon_spent([record], server.dp_delta, "rdp")
