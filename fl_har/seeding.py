"""Derived seeds: one run seed fixes every random choice, keyed by what the choice is for."""

from __future__ import annotations

import numpy as np

# Distinct stream tags so that, e.g., the noise of (subject 3, round 2) never reuses the
# dropout stream of the same client and round.
STREAM_DROPOUT = 1
STREAM_NOISE = 2
STREAM_MODEL_INIT = 3
STREAM_ATTACK = 4
STREAM_DP_SAMPLING = 5  # Poisson sampling of DP-SGD steps (fl_har.privacy)


def derive_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed determined by ``seed`` and ``keys`` alone (numpy ``SeedSequence`` mixing)."""
    state = np.random.SeedSequence([int(seed), *(int(k) for k in keys)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)
