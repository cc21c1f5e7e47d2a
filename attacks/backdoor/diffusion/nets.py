"""The two small networks of the generated trigger: an IMU encoder and a conditional denoiser.

- :class:`IMUEncoder`: dilated 1-D convolutions, mean+std pooling over time and a projection to a
  joint space shared with a linear head on the frozen text embeddings (:class:`TextHead`); trained
  with a symmetric InfoNCE loss (CLIP, Radford et al. 2021; for IMU, IMU2CLIP, Moon et al. 2022).
- :class:`Denoiser`: epsilon-prediction network of a DDPM (Ho et al. 2020) over windows: residual
  dilated 1-D convolutions with FiLM conditioning on the diffusion timestep and the text vector;
  a learned "null" text vector stands in for a dropped condition (classifier-free guidance, Ho &
  Salimans 2022).

Both take windows as (batch, T, C) like the rest of fl-har and transpose internally.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (batch, dim) of integer timesteps (Vaswani et al. 2017)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class IMUEncoder(nn.Module):
    """Windows (B, T, C) -> unit vectors (B, dim) in the joint IMU-text space."""

    def __init__(self, in_channels: int, hidden: int = 64, dim: int = 128) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [
                nn.Conv1d(in_channels, hidden, 5, padding=2),
                nn.Conv1d(hidden, hidden, 5, padding=4, dilation=2),
                nn.Conv1d(hidden, hidden, 5, padding=8, dilation=4),
            ]
        )
        self.norms = nn.ModuleList([nn.GroupNorm(8, hidden) for _ in self.convs])
        self.proj = nn.Linear(2 * hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)
        for conv, norm in zip(self.convs, self.norms):
            h = F.gelu(norm(conv(h)))
        pooled = torch.cat([h.mean(dim=2), h.std(dim=2)], dim=1)
        return F.normalize(self.proj(pooled), dim=1)


class TextHead(nn.Module):
    """Frozen text embeddings (B, 384) -> unit vectors (B, dim) in the joint space."""

    def __init__(self, text_dim: int, dim: int = 128) -> None:
        super().__init__()
        self.proj = nn.Linear(text_dim, dim)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(e), dim=1)


class _ResBlock(nn.Module):
    def __init__(self, hidden: int, dilation: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, hidden)
        self.conv1 = nn.Conv1d(hidden, hidden, 3, padding=dilation, dilation=dilation)
        self.film = nn.Linear(hidden, 2 * hidden)
        self.norm2 = nn.GroupNorm(8, hidden)
        self.conv2 = nn.Conv1d(hidden, hidden, 3, padding=1)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        z = self.conv1(F.silu(self.norm1(h)))
        z = self.norm2(z) * (1 + scale) + shift
        return h + self.conv2(F.silu(z))


class Denoiser(nn.Module):
    """epsilon_theta(x_t, t, text) for windows (B, T, C); ``text=None`` rows use the null vector.

    Args:
        in_channels: sensor channels C.
        text_dim: width of the text embeddings (384).
        hidden: convolution channels.
        dilations: one residual block per entry (the receptive field grows with the sum).
    """

    def __init__(
        self,
        in_channels: int,
        text_dim: int,
        hidden: int = 64,
        dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 2),
    ) -> None:
        super().__init__()
        self.hidden = hidden
        self.inp = nn.Conv1d(in_channels, hidden, 3, padding=1)
        self.time_mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.text_mlp = nn.Sequential(nn.Linear(text_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.null_text = nn.Parameter(torch.zeros(text_dim))
        self.blocks = nn.ModuleList([_ResBlock(hidden, d) for d in dilations])
        self.out_norm = nn.GroupNorm(8, hidden)
        self.out = nn.Conv1d(hidden, in_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # start as "predict zero noise": stable early training
        nn.init.zeros_(self.out.bias)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, drop: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``drop`` (B,) bool: rows whose condition is replaced by the null vector."""
        if drop is not None:
            text = torch.where(drop[:, None], self.null_text.expand_as(text), text)
        cond = F.silu(self.time_mlp(timestep_embedding(t, self.hidden)) + self.text_mlp(text))
        h = self.inp(x.transpose(1, 2))
        for block in self.blocks:
            h = block(h, cond)
        return self.out(F.silu(self.out_norm(h))).transpose(1, 2)
