"""Exact identities of last-layer gradients, the multi-step pseudo-gradient and the oracle estimator.

These are the oracles the attacks rest on (attacks.md, "Notation and exact identities").
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attacks import (
    counts_from_softmax_mass,
    last_layer_update,
    pseudo_gradient,
)


class TinyNet(nn.Module):
    """A small random network with a `head`; `activation` picks ReLU or tanh features."""

    def __init__(self, window: int, channels: int, hidden: int, num_classes: int, activation: str):
        super().__init__()
        act = nn.ReLU() if activation == "relu" else nn.Tanh()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(window * channels, hidden), act)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def make_case(seed: int, num_classes: int, num_samples: int, activation: str = "relu",
              logit_scale: float = 1.0):
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = TinyNet(6, 3, 16, num_classes, activation).double()
    with torch.no_grad():
        model.head.weight.mul_(logit_scale)
    x = torch.randn(num_samples, 6, 3, generator=generator, dtype=torch.float64)
    y = torch.randint(0, num_classes, (num_samples,), generator=generator)
    return model, x, y


def head_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """One mean cross-entropy backward: head gradients and the batch's softmax mass."""
    model.zero_grad()
    logits = model(x)
    F.cross_entropy(logits, y).backward()
    mass = torch.softmax(logits.detach(), dim=1).sum(0).numpy()
    return model.head.weight.grad.numpy().copy(), model.head.bias.grad.numpy().copy(), mass


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("seed", range(5))
def test_single_step_identities(seed, activation):
    num_classes, num_samples = 7, 23
    model, x, y = make_case(seed, num_classes, num_samples, activation, logit_scale=5.0)
    grad_w, grad_b, mass = head_step(model, x, y)
    counts = np.bincount(y.numpy(), minlength=num_classes)
    # count identity k = sum_n p - N grad_b, exact for any architecture with a bias
    np.testing.assert_allclose(mass - num_samples * grad_b, counts, atol=1e-10)
    # the bias gradient sums to zero; so does every column of the weight gradient
    assert abs(grad_b.sum()) < 1e-12
    np.testing.assert_allclose(grad_w.sum(axis=0), 0.0, atol=1e-12)


def local_sgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float,
              momentum: float = 0.0):
    """Client training: S steps on consecutive chunks of B windows; per-step grads and masses."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    batch = x.shape[0] // steps
    step_grads, total_mass = [], 0.0
    for t in range(steps):
        chunk = slice(t * batch, (t + 1) * batch)
        optimizer.zero_grad()
        logits = model(x[chunk])
        F.cross_entropy(logits, y[chunk]).backward()
        total_mass = total_mass + torch.softmax(logits.detach(), 1).sum(0).numpy()
        step_grads.append((model.head.weight.grad.numpy().copy(), model.head.bias.grad.numpy().copy()))
        optimizer.step()
    return step_grads, total_mass


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("seed", range(3))
def test_multi_step_pseudo_gradient_is_the_average_step_gradient(seed):
    num_classes, steps, batch, lr = 5, 4, 8, 0.5
    model, x, y = make_case(seed, num_classes, steps * batch)
    sent = snapshot(model)
    step_grads, total_mass = local_sgd(model, x, y, steps, lr)
    grads = pseudo_gradient(sent, snapshot(model), lr, steps)
    mean_w = np.mean([g[0] for g in step_grads], axis=0)
    mean_b = np.mean([g[1] for g in step_grads], axis=0)
    # (sent - returned) / lr is the SUM of the step gradients; / S gives their mean
    np.testing.assert_allclose(grads["head.weight"] * steps, np.sum([g[0] for g in step_grads], 0),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grads["head.bias"], mean_b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grads["head.weight"], mean_w, rtol=1e-9, atol=1e-12)
    # the count identity holds with N = all windows and the softmax mass summed over all steps
    counts = np.bincount(y.numpy(), minlength=num_classes)
    np.testing.assert_allclose(total_mass - steps * batch * grads["head.bias"], counts, atol=1e-8)
    update = last_layer_update(sent, snapshot(model), lr=lr, local_steps=steps,
                               num_samples=steps * batch)
    np.testing.assert_allclose(update.bias_grad, mean_b, rtol=1e-9, atol=1e-12)
    assert update.windows_per_step == batch
    np.testing.assert_array_equal(update.weight, sent["head.weight"].numpy())


def test_momentum_breaks_the_pseudo_gradient():
    """Documented limitation: with momentum the weight delta is not eta * sum of gradients."""
    num_classes, steps, batch, lr = 5, 4, 8, 0.5
    model, x, y = make_case(0, num_classes, steps * batch)
    sent = snapshot(model)
    step_grads, _ = local_sgd(model, x, y, steps, lr, momentum=0.9)
    grads = pseudo_gradient(sent, snapshot(model), lr, steps)
    mean_b = np.mean([g[1] for g in step_grads], axis=0)
    relative_error = np.abs(grads["head.bias"] - mean_b).max() / np.abs(mean_b).max()
    assert relative_error > 0.1


@pytest.mark.parametrize("logit_scale", [1.0, 30.0])
@pytest.mark.parametrize("seed", range(8))
def test_oracle_mass_returns_exact_counts(seed, logit_scale):
    """Fed the TRUE softmax mass, the count-identity estimator is exact (single and multi-step)."""
    num_classes, steps, batch = 9, 3, 12
    model, x, y = make_case(seed, num_classes, steps * batch, "tanh", logit_scale)
    sent = snapshot(model)
    _, total_mass = local_sgd(model, x, y, steps, lr=0.1)
    bias_grad = pseudo_gradient(sent, snapshot(model), 0.1, steps)["head.bias"]
    counts = np.bincount(y.numpy(), minlength=num_classes)
    np.testing.assert_array_equal(counts_from_softmax_mass(total_mass, bias_grad, steps * batch), counts)


def test_oracle_with_a_wrong_mass_is_wrong():
    """The estimator really uses the mass: a shifted mass moves the counts."""
    model, x, y = make_case(0, 4, 20)
    _, grad_b, mass = head_step(model, x, y)
    counts = np.bincount(y.numpy(), minlength=4)
    shifted = mass + np.array([3.0, -3.0, 0.0, 0.0])
    assert not np.array_equal(counts_from_softmax_mass(shifted, grad_b, 20), counts)


def test_pseudo_gradient_rejects_bad_input():
    from attacks import AttackError

    sent = {"head.weight": np.ones((2, 3)), "head.bias": np.zeros(2)}
    with pytest.raises(AttackError, match="different keys"):
        pseudo_gradient(sent, {"head.weight": np.ones((2, 3))}, 0.1, 1)
    with pytest.raises(AttackError, match="shape"):
        pseudo_gradient(sent, {"head.weight": np.ones((3, 2)), "head.bias": np.zeros(2)}, 0.1, 1)
    with pytest.raises(AttackError, match="lr"):
        pseudo_gradient(sent, sent, 0.0, 1)
    with pytest.raises(AttackError, match="local_steps"):
        pseudo_gradient(sent, sent, 0.1, 0)
    with pytest.raises(AttackError, match="NaN"):
        pseudo_gradient(sent, {"head.weight": np.full((2, 3), np.nan), "head.bias": np.zeros(2)}, 0.1, 1)
