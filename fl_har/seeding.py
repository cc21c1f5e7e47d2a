"""Derived seeds: one run seed fixes every random choice, keyed by what the choice is for.

Every derivation starts with a named :class:`Stream`, then the keys that make the choice unique
(subject, round, epoch...): ``derive_seed(seed, Stream.SHUFFLE, subject, epoch)``. Because the
stream always comes first, no two purposes can collide (before named streams, a client's seed
``[seed, subject, round]`` for subject 4 equalled the attacker's ``[seed, 4, round]``).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    """What a random choice is for. Values are part of every derivation: never reuse one."""

    DROPOUT = 1  # dropout masks of one local update (keys: the update's seed)
    NOISE = 2  # local perturbation / DP noise of one local update
    MODEL_INIT = 3  # the global model's untrained initialisation
    ATTACK = 4  # the server's calibration inputs and attack randomness (key: model version)
    CLIENT_UPDATE = 5  # one client's local update (keys: subject, round)
    SHUFFLE = 6  # a sampler's epoch permutation (keys: subject, epoch)
    BALANCED = 7  # a balanced batch (keys: subject, round)
    PRETRAIN_ORDER = 8  # centralised pre-training: mini-batch order
    PRETRAIN_DROPOUT = 9  # centralised pre-training: dropout
    SYNTHETIC_CLASSES = 10  # the synthetic dataset's class prototypes
    SYNTHETIC_SUBJECT = 11  # one synthetic subject's recordings (key: subject)
    COHORT = 12  # which clients train in a round (key: round)
    ADVERSARY = 13  # malicious clients: choice of attackers, poisoned windows, triggers
    FAULTS = 14  # injected faults: dropouts, stragglers, crashes (keys: round, partition)
    DP_SAMPLING = 15  # Poisson sampling of DP-SGD steps (fl_har.privacy)
    DIVERSE = 16  # diverse batches: which windows are swapped in (keys: subject, round)
    LOCAL_EPOCHS = 17  # a client's window order in each local epoch (keys: subject, round, epoch)
    ROOT_UPDATE = 18  # FLTrust: the server's root-data batch and dropout (key: round)
    AGGREGATION_NOISE = 19  # robust aggregation noise, FLAME / norm clipping (key: round)
    CENTRAL_DP = 20  # central DP noise on the aggregate (Flower's wrappers; key: round)


def _entropy(seed: int, stream: Stream, keys: tuple[int, ...]) -> list[int]:
    if not isinstance(stream, Stream):
        raise TypeError(f"stream: expected a fl_har.seeding.Stream, got {stream!r}")
    if isinstance(seed, bool) or int(seed) < 0:
        raise ValueError(f"seed: expected an integer >= 0, got {seed!r}")
    return [int(seed), int(stream), *(int(k) for k in keys)]


def derive_seed(seed: int, stream: Stream, *keys: int) -> int:
    """A 63-bit seed determined by ``seed``, ``stream`` and ``keys`` alone (``SeedSequence``)."""
    state = np.random.SeedSequence(_entropy(seed, stream, keys)).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def stream_rng(seed: int, stream: Stream, *keys: int) -> np.random.Generator:
    """A numpy generator for ``(seed, stream, *keys)``, independent of every other stream."""
    return np.random.default_rng(np.random.SeedSequence(_entropy(seed, stream, keys)))
