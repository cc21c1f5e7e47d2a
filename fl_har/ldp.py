"""Local perturbation of a client's gradients (LDP in the paper; not differential privacy, no
epsilon): batch-gradient clipping and Gaussian noise, as Bock et al. ran it.

These are the two local defences studied in the paper (Sec. 3.3, there called "local differential
privacy", LDP): before every local step the client scales the gradient of the protected
parameters to an L2 norm of at most ``rho`` and adds zero-mean Gaussian noise of standard
deviation ``sigma`` to every element. It is applied to the *batch* gradient (not per example), with
an absolute ``sigma`` (not ``sigma * rho``), so no single window's influence is bounded and no
privacy budget (epsilon, delta) exists: it is a local perturbation, not a differential-privacy
guarantee. The names ``LDPConfig`` and the ``ldp_*`` config keys keep the paper's term. For
differential privacy (per-example clipping, calibrated noise, an accountant) use
:mod:`fl_har.privacy` (DP-SGD with Opacus), a different mechanism.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

# Added to the norm before dividing, as in the paper's code, so a zero gradient stays finite.
CLIP_EPS = 1e-6


@dataclass(frozen=True)
class LDPConfig:
    """Local perturbation settings (the paper's "LDP"; no epsilon): ``clip`` = rho (0 = off),
    ``noise`` = sigma, an absolute std (0 = off), ``scope`` = which parameters."""

    clip: float = 0.0
    noise: float = 0.0
    scope: str = "last_layer"

    @property
    def active(self) -> bool:
        return self.clip > 0 or self.noise > 0


def gradient_norm(params: Sequence[torch.nn.Parameter]) -> float:
    """Joint L2 norm of the gradients of ``params`` (parameters without a gradient are skipped)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))


def clip_gradients_(params: Sequence[torch.nn.Parameter], max_norm: float) -> float:
    """Scale the joint gradient to L2 norm ``max_norm`` when it is larger; returns the norm before.

    Scale factor ``max_norm / (norm + 1e-6)``, applied only when ``norm > max_norm``.
    """
    norm = gradient_norm(params)
    if norm > max_norm:
        scale = max_norm / (norm + CLIP_EPS)
        for p in params:
            if p.grad is not None:
                p.grad.mul_(scale)
    return norm


def add_gaussian_noise_(
    params: Sequence[torch.nn.Parameter], sigma: float, generator: torch.Generator
) -> None:
    """Add N(0, sigma^2) independently to every gradient element, drawn from ``generator``."""
    for p in params:
        if p.grad is not None:
            noise = torch.randn(p.grad.shape, generator=generator, dtype=p.grad.dtype)
            p.grad.add_(noise, alpha=sigma)


def perturb_gradients_(
    params: Sequence[torch.nn.Parameter], config: LDPConfig, generator: torch.Generator
) -> None:
    """Clip, then add noise (the paper's order), in place."""
    if config.clip > 0:
        clip_gradients_(params, config.clip)
    if config.noise > 0:
        add_gaussian_noise_(params, config.noise, generator)
