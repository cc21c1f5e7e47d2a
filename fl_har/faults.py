"""Injected client faults (``[faults]`` in the config), decided from the run seed.

A client asks :func:`client_faults` at the start of each round what happens to it; the answer
depends only on ``(run.seed, round, partition)`` through ``Stream.FAULTS``, so a run repeats its
dropouts, stragglers and crashes exactly, whichever clients share a Ray actor and in whatever
order they run. The client applies the answer (``clients.har_client``); the server records each
missing update with its cause.
"""

from __future__ import annotations

from dataclasses import dataclass

from fl_har.config import ExperimentConfig
from fl_har.seeding import Stream, stream_rng


@dataclass(frozen=True)
class ClientFaults:
    """What happens to one client in one round.

    Parameters
    ----------
    dropout : bool
        The client does not answer this round (it does not train).
    delay : float
        Seconds the client waits before training (a straggler; 0 = on time).
    crash : bool
        The client raises during the round, after local training, before replying.
    """

    dropout: bool = False
    delay: float = 0.0
    crash: bool = False


def client_faults(
    config: ExperimentConfig, partition: int, subject: int, run_round: int
) -> ClientFaults:
    """The faults of client ``subject`` (node ``partition``) in round ``run_round``.

    Two uniform draws per (round, partition) from ``Stream.FAULTS``: the first decides the
    dropout (probability ``faults.dropout``), the second the straggler (probability
    ``faults.straggler_probability``); both are drawn whatever the probabilities, so changing one
    probability does not reshuffle the other fault. A crash is not random: the listed
    ``faults.crash_clients`` crash in ``faults.crash_round``.
    """
    faults = config.faults
    u_dropout, u_straggler = stream_rng(config.run.seed, Stream.FAULTS, run_round, partition).random(2)
    straggler = u_straggler < faults.straggler_probability
    return ClientFaults(
        dropout=bool(u_dropout < faults.dropout),
        delay=float(faults.straggler_delay) if straggler else 0.0,
        crash=faults.crash_round == run_round and subject in faults.crash_clients,
    )
