"""The physical trigger the generator learns to render: a smooth, band-limited additive burst.

A Hann-windowed sinusoid (e.g. a short wrist tremor) added to chosen channels, with amplitude in
units of each channel's standard deviation. Its spectrum is concentrated within about
``2 / length`` cycles per sample of ``frequency``, so it is "band-limited" in the practical sense
and has no step edges a detector could key on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _physical_mark(
    x: np.ndarray,
    rng: np.random.Generator,
    *,
    channel_std: np.ndarray,
    channels: Sequence[int] | None = None,
    amplitude: float = 0.6,
    frequency: float = 0.16,
    length: float = 0.5,
) -> np.ndarray:
    """Windows ``x`` (n, T, C) with one burst each (a new float32 array).

    Args:
        x: windows to mark.
        rng: draws each burst's start (uniform over the positions where it fits) and phase.
        channel_std: per-channel standard deviation (C,) of the attacker's data; the burst's peak
            on channel c is ``amplitude * channel_std[c]``.
        channels: channels that carry the burst (default: all).
        amplitude: peak amplitude in channel-std units.
        frequency: carrier frequency in cycles per sample (0.16 = 8 Hz at 50 Hz).
        length: burst duration as a fraction of the window (at least 4 samples).
    """
    x = np.asarray(x, dtype=np.float32)
    n, steps, num_channels = x.shape
    chosen = list(range(num_channels)) if channels is None else [int(c) for c in channels]
    burst_len = int(min(steps, max(4, round(length * steps))))
    envelope = np.hanning(burst_len + 2)[1:-1]  # strictly positive inside, zero just outside
    t = np.arange(burst_len)
    out = x.copy()
    starts = rng.integers(0, steps - burst_len + 1, size=n)
    phases = rng.uniform(0.0, 2.0 * np.pi, size=n)
    scale = amplitude * np.asarray(channel_std, dtype=np.float64)[chosen]
    for i in range(n):
        wave = envelope * np.sin(2.0 * np.pi * frequency * t + phases[i])
        window = out[i]  # a view: basic then advanced indexing keeps the (time, channel) order
        window[starts[i] : starts[i] + burst_len, chosen] += (wave[:, None] * scale).astype(
            np.float32
        )
    return out
