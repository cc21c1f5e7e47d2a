"""Local training: the plain-SGD identity the server relies on, LDP mechanics, determinism."""

import numpy as np
import pytest
import torch
from torch import nn

from fl_har.ldp import LDPConfig, add_gaussian_noise_, clip_gradients_, gradient_norm
from fl_har.training import LocalTrainingConfig, local_update, step_slices


class TinyNet(nn.Module):
    """A small HAR-shaped model with dropout and a ``head`` like the real ones."""

    def __init__(self, channels=3, window=10, classes=4):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(channels * window, 16), nn.ReLU())
        self.dropout = nn.Dropout(0.5)
        self.head = nn.Linear(16, classes)

    def forward(self, x):
        return self.head(self.dropout(self.body(x)))


def data(n=12, window=10, channels=3, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, window, channels)).astype(np.float32), rng.integers(0, classes, n)


def test_step_slices_split_the_batch_consecutively():
    assert step_slices(10, 2) == [slice(0, 5), slice(5, 10)]
    with pytest.raises(ValueError, match="cannot be split"):
        step_slices(10, 3)


def test_returned_weights_encode_the_sum_of_step_gradients():
    x, y = data()
    model = TinyNet()
    sent = {k: v.clone() for k, v in model.state_dict().items()}
    config = LocalTrainingConfig(lr=0.1, local_steps=3, train_mode=False)
    update = local_update(model, x, y, config, num_classes=4, seed=1)

    # Recompute the three step gradients by hand, each at the weights of that step.
    ref = TinyNet()
    ref.load_state_dict(sent)
    ref.eval()
    total = {k: torch.zeros_like(v) for k, v in ref.named_parameters()}
    for part in step_slices(12, 3):
        ref.zero_grad()
        nn.functional.cross_entropy(ref(torch.as_tensor(x[part])), torch.as_tensor(y[part])).backward()
        with torch.no_grad():
            for k, p in ref.named_parameters():
                total[k] += p.grad
                p -= 0.1 * p.grad
    for k, step_sum in total.items():
        delta = (sent[k] - update.state_dict[k]) / 0.1
        torch.testing.assert_close(delta, step_sum, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(update.label_counts, np.bincount(y, minlength=4))


def test_same_seed_same_update_and_global_rng_untouched():
    x, y = data()
    config = LocalTrainingConfig(lr=0.05, local_steps=2, ldp=LDPConfig(clip=0.5, noise=0.1))
    model = TinyNet()
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = local_update(model, x, y, config, num_classes=4, seed=7)
    after = torch.rand(1)
    b = local_update(TinyNet(), x, y, config, num_classes=4, seed=7)
    c = local_update(TinyNet(), x, y, config, num_classes=4, seed=8)
    assert torch.equal(before, after)  # dropout/noise streams are private
    for k in a.state_dict:
        assert torch.equal(a.state_dict[k], b.state_dict[k])
    assert any(not torch.equal(a.state_dict[k], c.state_dict[k]) for k in a.state_dict)


def test_clipping_scales_to_rho_and_leaves_small_gradients():
    p = nn.Parameter(torch.zeros(3))
    p.grad = torch.tensor([3.0, 4.0, 0.0])
    assert clip_gradients_([p], 1.0) == pytest.approx(5.0)
    assert gradient_norm([p]) == pytest.approx(1.0, abs=1e-5)
    p.grad = torch.tensor([0.3, 0.4, 0.0])
    clip_gradients_([p], 1.0)
    torch.testing.assert_close(p.grad, torch.tensor([0.3, 0.4, 0.0]))


def test_noise_has_the_requested_std():
    p = nn.Parameter(torch.zeros(20000))
    p.grad = torch.zeros(20000)
    add_gaussian_noise_([p], 0.1, torch.Generator().manual_seed(0))
    assert float(p.grad.std()) == pytest.approx(0.1, rel=0.03)
    assert abs(float(p.grad.mean())) < 0.005


def test_ldp_scope_last_layer_only_perturbs_the_head():
    x, y = data()
    clean = local_update(TinyNet(), x, y, LocalTrainingConfig(lr=0.1, train_mode=False),
                         num_classes=4, seed=0)
    noisy_cfg = LocalTrainingConfig(lr=0.1, train_mode=False, ldp=LDPConfig(noise=1.0))
    noisy = local_update(TinyNet(), x, y, noisy_cfg, num_classes=4, seed=0)
    assert torch.equal(clean.state_dict["body.1.weight"], noisy.state_dict["body.1.weight"])
    assert not torch.equal(clean.state_dict["head.weight"], noisy.state_dict["head.weight"])
    all_cfg = LocalTrainingConfig(lr=0.1, train_mode=False, ldp=LDPConfig(noise=1.0, scope="all"))
    everywhere = local_update(TinyNet(), x, y, all_cfg, num_classes=4, seed=0)
    assert not torch.equal(clean.state_dict["body.1.weight"], everywhere.state_dict["body.1.weight"])
