"""A client's local work for one round with DP-SGD (Abadi et al., CCS 2016) through Opacus 1.6.

Every one of the S local steps:

1. takes a batch: a *Poisson* sample of the client's windows (each window independently with
   probability ``q = B / n``, B = N / S the expected step batch, n the client's windows; Opacus'
   ``UniformWithReplacementSampler``), or with ``sampling="fixed"`` the next N / S windows of the
   round's batch, as :func:`fl_har.training.local_update` does;
2. computes every window's gradient of its own loss ``w_y * CE`` (Opacus' hooks; ``nn.LSTM`` runs
   as the equal ``opacus.layers.DPLSTM``), scales each to L2 norm at most ``C``
   (factor ``min(1, C / (norm + 1e-6))``, Opacus' rule), sums them, adds ``N(0, (sigma C)^2)`` to
   every coordinate and divides by the *expected* batch size B, not the drawn one;
3. applies plain SGD, ``theta -= lr * g_hat`` (no momentum, no weight decay).

So ``(theta_sent - theta_returned) / (lr * S)`` is exactly the average of the S noisy steps
``g_hat_t = (sum_i clip(g_i) + z_t) / B`` that were applied, the identity the server's pseudo-
gradient relies on. Under Poisson sampling a step may draw more or fewer than B windows, or none
(then ``g_hat`` is noise only); dividing by the fixed B keeps a window's influence at ``C / B``.

Deviations from :func:`fl_har.training.local_update`, all forced by the per-example bound:

- with class weights the per-example loss is ``w_y * CE`` and steps divide by B, where
  ``local_update`` divides the weighted sum by the batch's ``sum w_y`` (that normaliser depends on
  the other windows' labels, so no per-example bound would hold);
- ``sampling="poisson"`` trains on the client's whole pool ``x`` (not on a sampler's batch); the
  reported ``label_counts`` are the windows actually drawn, repeats included;
- ``mean_loss`` is the (weighted) mean loss over all windows drawn in the round, and NaN when
  Poisson sampling drew no window at all (then there was no loss to report).

With ``sampling="fixed"`` the round's batches are fixed-size slices of a shuffled (or sequential)
batch, not Poisson samples; the accountant's Poisson epsilon at ``q = B / n`` is then only an
approximation (fixed-size shuffled batches can be less private than the Poisson analysis says:
Chua et al., "How Private are DP-SGD Implementations?", ICML 2024) and is flagged as such.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
from opacus.utils.uniform_sampler import UniformWithReplacementSampler

from fl_har.privacy.accounting import (
    MechanismRecord,
    check_accountant,
    check_clip,
    check_delta,
    check_noise_multiplier,
    epsilon_spent,
)
from fl_har.privacy.errors import PrivacyConfigError, UnsupportedModelError
from fl_har.privacy.opacus_model import (
    WRAPPER_PREFIX,
    copy_weights_back,
    private_copy,
    set_training_mode,
)
from fl_har.seeding import Stream, derive_seed
from fl_har.training import LocalUpdate

SAMPLING = ("poisson", "fixed")
# "hooks": Opacus' per-layer grad samplers; "functorch": torch.func vmap per layer (same result).
GRAD_SAMPLE_MODES = ("hooks", "functorch")


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise PrivacyConfigError(f"{name}={value!r} must be an integer >= 1")
    return int(value)


@dataclass(frozen=True)
class DPSGDConfig:
    """Public hyper-parameters of DP-SGD local training (the server knows them all).

    Parameters
    ----------
    lr:
        SGD learning rate (plain SGD: no momentum, no weight decay).
    batch_size:
        N, windows per round (expected windows under Poisson sampling); B = N / S per step.
    clip:
        C, the per-example L2 bound (``dp_clip``), > 0.
    noise_multiplier:
        sigma (``dp_noise_multiplier``), >= 0; the noise std on the summed clipped gradients is
        ``sigma * C`` (sigma = 0: clipping only, epsilon infinite).
    local_steps:
        S, steps per round; must divide N.
    delta:
        Target delta of the reported epsilon; must be below 1 / (client's windows).
    sampling:
        ``"poisson"`` (default; what the accountant assumes) or ``"fixed"`` (consecutive slices of
        the round's batch, epsilon approximate).
    accountant:
        ``"rdp"`` or ``"prv"`` (see :mod:`fl_har.privacy.accounting`).
    train_mode:
        Dropout active during the steps, as in :class:`fl_har.training.LocalTrainingConfig`.
    grad_sample_mode:
        ``"hooks"`` (default) or ``"functorch"``: how Opacus computes per-example gradients.
    """

    lr: float
    batch_size: int
    clip: float
    noise_multiplier: float
    local_steps: int = 1
    delta: float = 1e-5
    sampling: str = "poisson"
    accountant: str = "rdp"
    train_mode: bool = True
    grad_sample_mode: str = "hooks"

    def __post_init__(self) -> None:
        if isinstance(self.lr, bool) or not isinstance(self.lr, int | float):
            raise PrivacyConfigError(f"lr={self.lr!r} must be a number")
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise PrivacyConfigError(f"lr={self.lr!r} must be finite and > 0")
        batch = _positive_int("batch_size", self.batch_size)
        steps = _positive_int("local_steps", self.local_steps)
        if batch % steps:
            raise PrivacyConfigError(
                f"batch_size={batch} cannot be split into local_steps={steps} equal steps"
            )
        check_clip(self.clip)
        check_noise_multiplier(self.noise_multiplier, self.clip)
        check_delta(self.delta)
        if self.sampling not in SAMPLING:
            raise PrivacyConfigError(f"sampling={self.sampling!r} is not one of {SAMPLING}")
        check_accountant(self.accountant)
        if not isinstance(self.train_mode, bool):
            raise PrivacyConfigError(f"train_mode={self.train_mode!r} must be True or False")
        if self.grad_sample_mode not in GRAD_SAMPLE_MODES:
            raise PrivacyConfigError(
                f"grad_sample_mode={self.grad_sample_mode!r} is not one of {GRAD_SAMPLE_MODES}"
            )

    @property
    def step_batch_size(self) -> int:
        """B = N / S, the (expected) windows per step and the divisor of every step's sum."""
        return self.batch_size // self.local_steps

    def sample_rate(self, client_windows: int) -> float:
        """q = B / n for a client with ``client_windows`` windows."""
        n = _positive_int("client_windows", client_windows)
        if self.step_batch_size > n:
            raise PrivacyConfigError(
                f"step batch B = batch_size / local_steps = {self.step_batch_size} exceeds the "
                f"client's {n} windows (sample rate would be > 1)"
            )
        return self.step_batch_size / n


@dataclass(frozen=True)
class PrivacySpent:
    """The privacy cost of one round on one client.

    ``epsilon`` is this round alone at ``delta``; compose rounds with
    :class:`fl_har.privacy.PrivacyLedger` (add ``record`` each round). ``poisson_sampled`` is False
    for ``sampling="fixed"``, where epsilon is the Poisson analysis applied as an approximation.
    """

    record: MechanismRecord
    delta: float
    epsilon: float
    accountant: str
    sampling: str
    poisson_sampled: bool
    step_sizes: tuple[int, ...]


@dataclass
class PrivateLocalUpdate(LocalUpdate):
    """A :class:`fl_har.training.LocalUpdate` plus the privacy it spent."""

    privacy: PrivacySpent


def poisson_batches(
    num_windows: int, sample_rate: float, steps: int, seed: int
) -> list[np.ndarray]:
    """The S Poisson batches (sorted int64 indices) DP-SGD draws for ``seed``; may be empty."""
    generator = torch.Generator().manual_seed(derive_seed(seed, Stream.DP_SAMPLING))
    sampler = UniformWithReplacementSampler(
        num_samples=num_windows, sample_rate=sample_rate, generator=generator, steps=steps
    )
    return [np.asarray(indices, dtype=np.int64) for indices in sampler]


def _check_every_parameter_sampled(wrapped: GradSampleModule, step: int) -> None:
    # Opacus' optimiser would fail with "Per sample gradient is not initialized" without a name.
    unused = [
        name.removeprefix(WRAPPER_PREFIX)
        for name, p in wrapped.named_parameters()
        if p.requires_grad and getattr(p, "grad_sample", None) is None
    ]
    if unused:
        raise UnsupportedModelError(
            f"trainable parameters without a per-example gradient at local step {step} (not "
            f"used by the forward pass; freeze them with requires_grad=False): {unused}"
        )


def _check_inputs(
    inputs: torch.Tensor, targets: torch.Tensor, num_classes: int, class_weights
) -> torch.Tensor | None:
    if targets.dim() != 1 or inputs.shape[0] != targets.shape[0]:
        raise PrivacyConfigError(
            f"{inputs.shape[0]} windows but labels of shape {list(targets.shape)}"
        )
    if not torch.isfinite(inputs).all():
        raise PrivacyConfigError("the windows contain NaN or infinite values")
    if len(targets) and (targets.min() < 0 or targets.max() >= num_classes):
        raise PrivacyConfigError(f"labels must lie in [0, {num_classes}), got {targets.unique()}")
    if class_weights is None:
        return None
    weights = torch.as_tensor(class_weights, dtype=torch.float32)
    if weights.shape != (num_classes,) or not torch.isfinite(weights).all() or (weights < 0).any():
        raise PrivacyConfigError(
            f"class_weights must be {num_classes} finite non-negative numbers, got {weights}"
        )
    return weights


def _step_batches(
    config: DPSGDConfig, num_windows: int, client_windows: int | None, seed: int
) -> tuple[list[np.ndarray], int]:
    """The steps' window indices and the n that the sample rate refers to."""
    steps = config.local_steps
    if config.sampling == "poisson":
        if client_windows is not None and client_windows != num_windows:
            raise PrivacyConfigError(
                f"sampling='poisson' trains on the client's whole pool: got {num_windows} "
                f"windows but client_windows={client_windows}"
            )
        rate = config.sample_rate(num_windows)
        return poisson_batches(num_windows, rate, steps, seed), num_windows
    if client_windows is None:
        raise PrivacyConfigError(
            "sampling='fixed' needs client_windows (all of the client's windows, for q = B / n)"
        )
    if num_windows != config.batch_size:
        raise PrivacyConfigError(
            f"sampling='fixed' expects the round's batch of batch_size={config.batch_size} "
            f"windows, got {num_windows}"
        )
    config.sample_rate(client_windows)  # B <= n
    per_step = config.step_batch_size
    batches = [np.arange(t * per_step, (t + 1) * per_step, dtype=np.int64) for t in range(steps)]
    return batches, int(client_windows)


def dp_local_update(
    model: torch.nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    config: DPSGDConfig,
    *,
    num_classes: int,
    seed: int,
    class_weights: torch.Tensor | None = None,
    client_windows: int | None = None,
) -> PrivateLocalUpdate:
    """Train ``model`` in place with S DP-SGD steps; return its weights and the privacy spent.

    Parameters
    ----------
    model:
        The received global model (e.g. DeepConvLSTM); left with the trained weights, its state
        dict keys unchanged. Modules Opacus cannot handle raise :class:`UnsupportedModelError`.
    x, y:
        Windows [n, window, channels] and labels [n]. ``sampling="poisson"``: all the client's
        windows (the pool every step samples from). ``sampling="fixed"``: the round's batch of N.
    config:
        :class:`DPSGDConfig`.
    num_classes:
        C, length of ``label_counts`` and of ``class_weights``.
    seed:
        Fixes the Poisson batches, the dropout masks and the noise; the global torch RNG is left
        as it was.
    class_weights:
        Optional per-class loss weights [C] (per-example loss ``w_y * CE``).
    client_windows:
        n, the client's number of windows; required for ``sampling="fixed"``, and must equal
        ``len(x)`` if given with Poisson sampling. ``config.delta`` must be below ``1 / n``.
    """
    start = time.perf_counter()
    inputs = torch.as_tensor(x, dtype=torch.float32)
    targets = torch.as_tensor(y, dtype=torch.long)
    weights = _check_inputs(inputs, targets, num_classes, class_weights)
    batches, pool = _step_batches(config, len(targets), client_windows, seed)
    check_delta(config.delta, pool)
    record = MechanismRecord(config.noise_multiplier, config.sample_rate(pool), config.local_steps)

    loss_sum, weight_sum = 0.0, 0.0
    with torch.random.fork_rng(devices=[]):  # DPLSTM's constructor draws from the global RNG
        private = private_copy(model)
        set_training_mode(private, dropout=config.train_mode)
        wrapped = GradSampleModule(
            private,
            batch_first=True,
            loss_reduction="sum",  # per-example gradients of the per-example losses, unscaled
            force_functorch=config.grad_sample_mode == "functorch",
        )
        params = [p for p in wrapped.parameters() if p.requires_grad]
        sgd = torch.optim.SGD(params, lr=config.lr, momentum=0.0, dampening=0.0, weight_decay=0.0)
        optimizer = DPOptimizer(
            sgd,
            noise_multiplier=config.noise_multiplier,
            max_grad_norm=config.clip,
            expected_batch_size=config.step_batch_size,
            loss_reduction="mean",  # divide the noisy sum by expected_batch_size
            generator=torch.Generator().manual_seed(derive_seed(seed, Stream.NOISE)),
        )
        torch.manual_seed(derive_seed(seed, Stream.DROPOUT))
        for step, indices in enumerate(batches, start=1):
            optimizer.zero_grad(set_to_none=True)
            index = torch.from_numpy(indices)
            batch_targets = targets[index]
            per_example = F.cross_entropy(wrapped(inputs[index]), batch_targets, reduction="none")
            example_weights = (
                torch.ones_like(per_example) if weights is None else weights[batch_targets]
            )
            per_example = per_example * example_weights
            if not torch.isfinite(per_example).all():
                raise PrivacyConfigError(f"non-finite loss at local step {step}")
            with warnings.catch_warnings():
                # The first layer's input needs no gradient; Opacus' hooks do not need it either.
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                per_example.sum().backward()
            _check_every_parameter_sampled(wrapped, step)
            optimizer.step()
            loss_sum += float(per_example.detach().sum())
            weight_sum += float(example_weights.sum())
    wrapped.remove_hooks()
    copy_weights_back(model, private)

    used = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
    privacy = PrivacySpent(
        record=record,
        delta=config.delta,
        epsilon=epsilon_spent([record], config.delta, config.accountant),
        accountant=config.accountant,
        sampling=config.sampling,
        poisson_sampled=config.sampling == "poisson",
        step_sizes=tuple(len(b) for b in batches),
    )
    return PrivateLocalUpdate(
        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        label_counts=np.bincount(np.asarray(y)[used], minlength=num_classes).astype(np.int64),
        mean_loss=loss_sum / weight_sum if weight_sum > 0 else math.nan,
        seconds=time.perf_counter() - start,
        privacy=privacy,
    )
