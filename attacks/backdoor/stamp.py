"""A BadNets-style physical trigger for IMU windows: a smooth, band-limited additive burst.

BadNets (Gu et al., 2017, arXiv 1708.06733) stamps a fixed pattern onto poisoned inputs and
relabels them as the target class. For sensor windows the analogue used here (a choice; the
IMU-DM-CLIP paper does not publish its trigger) is a short vibration burst added to chosen
channels: a sum of cosines at ``tones`` frequencies evenly spread over ``band`` (in cycles per
sample; at 50 Hz, ``(0.1, 0.2)`` is 5-10 Hz), tapered by a Hann window of ``duration`` samples so
it starts and ends at zero (no step edges, spectrum confined to the band plus the taper's main lobe
of +-2/duration). Its peak is ``amplitude`` standard deviations of the channel it is added to. The
pattern is deterministic (phases 0): the same burst on every window, as a physical stamp would be.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attacks.backdoor.base import BackdoorError, check_target, check_windows, poison_indices


@dataclass(frozen=True)
class StampTrigger:
    """An additive Hann-tapered multi-tone burst on some channels.

    Parameters
    ----------
    channels : sequence of int (default: () = every channel)
        Channel indices the burst is added to; other channels are untouched.
    amplitude : float (default: 1.0)
        Peak of the burst in units of each channel's standard deviation.
    duration : int (default: 25)
        Length of the burst in samples (<= window length).
    position : int (default: -1)
        First sample of the burst; -1 centres it in the window.
    band : (float, float) (default: (0.1, 0.2))
        Frequency band in cycles per sample, ``0 <= low < high <= 0.5``.
    tones : int (default: 3)
        Number of cosines evenly spaced over the band.
    channel_std : sequence of float or None (default: None)
        Standard deviation of each channel of the dataset's windows (all C). None: measured on the
        windows the trigger is applied to (per channel, over windows and time), which makes the
        trigger commute with per-channel standardisation.
    """

    channels: tuple[int, ...] = ()
    amplitude: float = 1.0
    duration: int = 25
    position: int = -1
    band: tuple[float, float] = (0.1, 0.2)
    tones: int = 3
    channel_std: tuple[float, ...] | None = None
    name: str = "stamp"

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if any(c < 0 for c in self.channels) or len(set(self.channels)) != len(self.channels):
            raise BackdoorError(f"channels: expected distinct indices >= 0, got {self.channels}")
        if not (np.isfinite(self.amplitude) and self.amplitude > 0):
            raise BackdoorError(f"amplitude: expected a number > 0 (channel stds), got {self.amplitude}")
        if int(self.duration) < 2:
            raise BackdoorError(f"duration: expected >= 2 samples, got {self.duration}")
        if int(self.position) < -1:
            raise BackdoorError(f"position: expected -1 (centred) or a sample index, got {self.position}")
        low, high = (float(b) for b in self.band)
        if not 0.0 <= low < high <= 0.5:
            raise BackdoorError(f"band: expected 0 <= low < high <= 0.5 cycles/sample, got {self.band}")
        object.__setattr__(self, "band", (low, high))
        if int(self.tones) < 1:
            raise BackdoorError(f"tones: expected >= 1, got {self.tones}")
        if self.channel_std is not None:
            std = tuple(float(s) for s in self.channel_std)
            if not all(np.isfinite(s) and s > 0 for s in std):
                raise BackdoorError(f"channel_std: expected positive numbers, got {self.channel_std}")
            object.__setattr__(self, "channel_std", std)

    def waveform(self) -> np.ndarray:
        """The unit burst (peak |value| 1), ``duration`` samples long."""
        t = np.arange(int(self.duration), dtype=np.float64)
        freqs = np.linspace(*self.band, int(self.tones)) if self.tones > 1 else [np.mean(self.band)]
        wave = np.sum([np.cos(2 * np.pi * f * (t - (self.duration - 1) / 2)) for f in freqs], axis=0)
        wave *= np.hanning(int(self.duration))  # zero at both ends: no step into the clean signal
        return wave / np.max(np.abs(wave))

    def pattern(self, length: int, num_channels: int, std: np.ndarray) -> np.ndarray:
        """The additive ``(length, num_channels)`` pattern for windows whose channels have ``std``."""
        channels = self.channels or tuple(range(num_channels))
        bad = [c for c in channels if c >= num_channels]
        if bad:
            raise BackdoorError(
                f"channels: {bad} do not exist in windows with {num_channels} channels"
            )
        if self.duration > length:
            raise BackdoorError(f"duration: {self.duration} samples exceed the window of {length}")
        start = (length - self.duration) // 2 if self.position == -1 else int(self.position)
        if start + self.duration > length:
            raise BackdoorError(
                f"position: a burst of {self.duration} samples from sample {start} leaves the "
                f"window of {length}"
            )
        out = np.zeros((length, num_channels), dtype=np.float64)
        wave = self.waveform()
        for c in channels:
            out[start:start + self.duration, c] = self.amplitude * std[c] * wave
        return out.astype(np.float32)

    def _std(self, x: np.ndarray) -> np.ndarray:
        if self.channel_std is not None:
            if len(self.channel_std) != x.shape[2]:
                raise BackdoorError(
                    f"channel_std has {len(self.channel_std)} entries for {x.shape[2]} channels"
                )
            return np.asarray(self.channel_std)
        std = x.reshape(-1, x.shape[2]).std(axis=0).astype(np.float64)
        return np.where(std > 0, std, 1.0)

    def apply(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """``x`` plus the burst (the stamp is deterministic: ``rng`` is not used)."""
        x = check_windows(x, "x")
        if len(x) == 0:
            return x.copy()
        return x + self.pattern(x.shape[1], x.shape[2], self._std(x))[None]

    def poison(
        self, x: np.ndarray, y: np.ndarray, target: int, rate: float, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Stamp ``round(rate * n)`` windows chosen by ``rng`` and relabel them ``target``.

        The channel std (when not fixed) is measured on all of ``x``, so a poisoned window gets
        the same burst whichever other windows are poisoned with it.
        """
        x = check_windows(x, "x")
        y = np.asarray(y)
        if y.shape != (len(x),):
            raise BackdoorError(f"y: expected {len(x)} labels, got shape {y.shape}")
        target = check_target(target)
        index = poison_indices(len(x), rate, rng)
        x_out, y_out = x.copy(), y.copy()
        if len(index):
            x_out[index] += self.pattern(x.shape[1], x.shape[2], self._std(x))[None]
            y_out[index] = target
        return x_out, y_out
