"""A client's local work for one federated round: S plain-SGD steps on its batch of N windows.

With plain SGD (no momentum, no weight decay) the weights a client returns encode the sum of its
step gradients exactly, ``(theta_sent - theta_returned) / lr = sum_t grad_t``, which is what an
honest-but-curious server inverts (see ``attacks.pseudo_gradient``). That is why the update here
is written out instead of using an optimiser with state.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from fl_har.ldp import LDPConfig, perturb_gradients_
from fl_har.seeding import Stream, derive_seed


@dataclass(frozen=True)
class LocalTrainingConfig:
    """Public hyper-parameters the server sets for every client (it knows them all)."""

    lr: float
    local_steps: int = 1
    train_mode: bool = True  # dropout active, as the paper computed its gradients
    ldp: LDPConfig = field(default_factory=LDPConfig)


@dataclass
class LocalUpdate:
    """What a client produced: new weights, plus facts for scoring that never reach an attack."""

    state_dict: dict[str, torch.Tensor]
    label_counts: np.ndarray  # true histogram of the batch, length C
    mean_loss: float
    seconds: float


def step_slices(num_samples: int, local_steps: int) -> list[slice]:
    """Consecutive, equal slices of the batch, one per local step (B = N / S)."""
    if local_steps < 1 or num_samples % local_steps:
        raise ValueError(
            f"a batch of {num_samples} windows cannot be split into {local_steps} equal local steps"
        )
    per_step = num_samples // local_steps
    return [slice(t * per_step, (t + 1) * per_step) for t in range(local_steps)]


def _protected_parameters(model: torch.nn.Module, scope: str) -> Sequence[torch.nn.Parameter]:
    if scope == "all":
        return [p for p in model.parameters() if p.requires_grad]
    if scope == "last_layer":
        return list(model.head.parameters())
    raise ValueError(f"LDP scope {scope!r} is not one of last_layer, all")


def local_update(
    model: torch.nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    config: LocalTrainingConfig,
    *,
    num_classes: int,
    seed: int,
    class_weights: torch.Tensor | None = None,
) -> LocalUpdate:
    """Train ``model`` in place on windows ``x`` [N, window, ch] with labels ``y`` [N].

    Each of the S steps takes the next N / S windows, computes the mean cross-entropy
    (class-weighted when ``class_weights`` is given), perturbs the gradient with local clipping
    and noise when configured, and applies ``theta -= lr * grad``. ``seed`` fixes dropout masks
    and noise; the global torch RNG is left as it was.
    """
    start = time.perf_counter()
    inputs = torch.as_tensor(x, dtype=torch.float32)
    targets = torch.as_tensor(y, dtype=torch.long)
    if inputs.shape[0] != targets.shape[0]:
        raise ValueError(f"{inputs.shape[0]} windows but {targets.shape[0]} labels")
    params = [p for p in model.parameters() if p.requires_grad]
    protected = _protected_parameters(model, config.ldp.scope)
    noise_generator = torch.Generator().manual_seed(derive_seed(seed, Stream.NOISE))
    was_training = model.training
    model.train(config.train_mode)
    losses = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, Stream.DROPOUT))
        for part in step_slices(len(targets), config.local_steps):
            for p in params:
                p.grad = None
            logits = model(inputs[part])
            loss = F.cross_entropy(logits, targets[part], weight=class_weights)
            loss.backward()
            if config.ldp.active:
                perturb_gradients_(protected, config.ldp, noise_generator)
            with torch.no_grad():
                for p in params:
                    if p.grad is not None:
                        p.sub_(p.grad, alpha=config.lr)
            losses.append(float(loss.detach()))
    model.train(was_training)
    for p in params:
        p.grad = None
    return LocalUpdate(
        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        label_counts=np.bincount(y, minlength=num_classes).astype(np.int64),
        mean_loss=float(np.mean(losses)),
        seconds=time.perf_counter() - start,
    )
