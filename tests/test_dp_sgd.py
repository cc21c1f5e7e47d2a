"""DP-SGD local training (fl_har.privacy): per-example clipping, noise, identities, accounting."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from opacus.accountants import PRVAccountant, RDPAccountant
from torch import nn
from torch.func import functional_call, grad, vmap

from fl_har.models import build_model
from fl_har.privacy import (
    DPSGDConfig,
    MechanismRecord,
    PrivacyConfigError,
    PrivacyLedger,
    UnsupportedModelError,
    check_delta,
    check_epsilon,
    check_noise_multiplier,
    dp_local_update,
    epsilon_spent,
    noise_multiplier_for_epsilon,
    poisson_batches,
    private_copy,
)
from fl_har.privacy.opacus_model import copy_weights_back

CLASSES = 4


class TinyLinear(nn.Module):
    """Windows [B, 5, 2] -> flatten -> linear head: per-example gradients have a closed form."""

    def __init__(self, inputs=10, classes=CLASSES, seed=0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.head = nn.Linear(inputs, classes)
        with torch.no_grad():
            self.head.weight.copy_(torch.randn(classes, inputs, generator=generator))
            self.head.bias.copy_(torch.randn(classes, generator=generator))

    def forward(self, x):
        return self.head(x.flatten(1))


class TinyLSTM(nn.Module):
    """A 2-layer nn.LSTM and a head, like DeepConvLSTM's tail."""

    def __init__(self, channels=2, hidden=5, classes=CLASSES, seed=0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.lstm = nn.LSTM(channels, hidden, num_layers=2, batch_first=True)
            self.dropout = nn.Dropout(0.5)
            self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(self.dropout(out[:, -1]))


def data(n=12, window=5, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, window, channels)).astype(np.float32)
    return x, rng.integers(0, CLASSES, n)


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def clipped_mean_step(model, x, y, clip, batch, weights=None):
    """sum_i min(1, C / (||g_i|| + 1e-6)) g_i / B, per-example gradients one at a time."""
    total = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
    factors = []
    for xi, yi in zip(x, y, strict=True):
        model.zero_grad()
        loss = F.cross_entropy(model(xi[None]), yi[None], reduction="sum")
        if weights is not None:
            loss = loss * weights[yi]
        loss.backward()
        norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters()))
        factor = min(1.0, clip / (float(norm) + 1e-6))
        factors.append(factor)
        for k, p in model.named_parameters():
            total[k] += factor * p.grad
    return {k: g / batch for k, g in total.items()}, factors


# ----- accounting -----------------------------------------------------------------------------


def test_rdp_epsilon_equals_opacus_accountant_for_a_known_schedule():
    record = MechanismRecord(noise_multiplier=1.1, sample_rate=0.01, steps=100)
    reference = RDPAccountant()
    reference.history = [(1.1, 0.01, 100)]
    epsilon = epsilon_spent([record], delta=1e-5)
    assert epsilon == reference.get_epsilon(1e-5)
    assert epsilon == pytest.approx(0.956, abs=1e-3)


def test_prv_epsilon_equals_opacus_accountant_and_is_tighter():
    record = MechanismRecord(1.1, 0.01, 100)
    reference = PRVAccountant()
    reference.history = [(1.1, 0.01, 100)]
    epsilon = epsilon_spent([record], 1e-5, "prv")
    assert epsilon == pytest.approx(reference.get_epsilon(1e-5, eps_error=0.01), rel=1e-9)
    assert epsilon == pytest.approx(0.560, abs=0.01)
    assert epsilon < epsilon_spent([record], 1e-5, "rdp")


def test_rounds_compose_like_one_long_run_and_the_ledger_adds_them():
    round_record = MechanismRecord(1.0, 0.05, 5)
    ledger = PrivacyLedger()
    epsilons = []
    for _ in range(4):
        ledger = ledger.add(round_record)
        epsilons.append(ledger.epsilon(1e-5))
    assert ledger.steps == 20
    assert epsilons == sorted(epsilons) and epsilons[0] < epsilons[-1]
    one_run = RDPAccountant()
    one_run.history = [(1.0, 0.05, 20)]
    assert epsilons[-1] == pytest.approx(one_run.get_epsilon(1e-5), rel=1e-12)
    # mixed schedules compose in any order
    mixed = [
        MechanismRecord(0.8, 0.1, 3),
        MechanismRecord(1.5, 0.02, 7),
        MechanismRecord(0.8, 0.1, 2),
    ]
    reference = RDPAccountant()
    reference.history = [(r.noise_multiplier, r.sample_rate, r.steps) for r in mixed]
    assert epsilon_spent(mixed, 1e-5) == pytest.approx(reference.get_epsilon(1e-5), rel=1e-12)


def test_no_steps_cost_nothing_and_no_noise_costs_everything():
    assert epsilon_spent([], 1e-5) == 0.0
    assert epsilon_spent([MechanismRecord(0.0, 0.1, 1)], 1e-5) == math.inf
    assert epsilon_spent([MechanismRecord(0.0, 0.1, 1)], 1e-5, "prv") == math.inf


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_noise_for_a_target_epsilon_meets_it_within_tolerance(accountant):
    tolerance = 0.01 if accountant == "rdp" else 0.05  # each PRV probe costs ~0.2 s
    sigma = noise_multiplier_for_epsilon(
        1.0, 1e-5, 0.01, 100, accountant=accountant, epsilon_tolerance=tolerance
    )
    spent = epsilon_spent([MechanismRecord(sigma, 0.01, 100)], 1e-5, accountant)
    assert 1.0 - tolerance <= spent <= 1.0
    if accountant == "rdp":
        assert sigma == pytest.approx(1.084, abs=1e-3)  # Opacus' get_noise_multiplier


def test_privacy_validation_errors_name_the_value():
    with pytest.raises(PrivacyConfigError, match="dp_epsilon"):
        check_epsilon(0.0)
    with pytest.raises(PrivacyConfigError, match="dp_epsilon"):
        check_epsilon(-1.0)
    with pytest.raises(PrivacyConfigError, match="finite"):
        check_epsilon(float("nan"))
    with pytest.raises(PrivacyConfigError, match="1/1000"):
        check_delta(1e-3, client_windows=1000)
    check_delta(9.9e-4, client_windows=1000)
    for bad in (0.0, 1.0, float("inf")):
        with pytest.raises(PrivacyConfigError, match="dp_delta"):
            check_delta(bad)
    with pytest.raises(PrivacyConfigError, match="without clipping"):
        check_noise_multiplier(1.0, 0.0)
    with pytest.raises(PrivacyConfigError, match="dp_clip"):
        DPSGDConfig(lr=0.1, batch_size=4, clip=0.0, noise_multiplier=0.0)
    with pytest.raises(PrivacyConfigError, match="dp_clip"):
        DPSGDConfig(lr=0.1, batch_size=4, clip=-1.0, noise_multiplier=1.0)
    with pytest.raises(PrivacyConfigError, match="finite"):
        DPSGDConfig(lr=0.1, batch_size=4, clip=float("inf"), noise_multiplier=1.0)
    with pytest.raises(PrivacyConfigError, match="dp_noise_multiplier"):
        DPSGDConfig(lr=0.1, batch_size=4, clip=1.0, noise_multiplier=float("nan"))
    with pytest.raises(PrivacyConfigError, match="lr"):
        DPSGDConfig(lr=float("nan"), batch_size=4, clip=1.0, noise_multiplier=1.0)
    with pytest.raises(PrivacyConfigError, match="local_steps=3"):
        DPSGDConfig(lr=0.1, batch_size=4, clip=1.0, noise_multiplier=1.0, local_steps=3)
    with pytest.raises(PrivacyConfigError, match="sampling"):
        DPSGDConfig(lr=0.1, batch_size=4, clip=1.0, noise_multiplier=1.0, sampling="shuffle")
    with pytest.raises(PrivacyConfigError, match="out of reach"):
        noise_multiplier_for_epsilon(1e-9, 1e-5, 1.0, 1000)


def test_update_rejects_inconsistent_pools_and_a_delta_too_large_for_the_client():
    x, y = data(n=12)
    model = TinyLinear()
    fixed = DPSGDConfig(lr=0.1, batch_size=12, clip=1.0, noise_multiplier=1.0, sampling="fixed")
    with pytest.raises(PrivacyConfigError, match="client_windows"):
        dp_local_update(model, x, y, fixed, num_classes=CLASSES, seed=0)
    with pytest.raises(PrivacyConfigError, match="1/50"):
        config = DPSGDConfig(
            lr=0.1, batch_size=12, clip=1.0, noise_multiplier=1.0, sampling="fixed", delta=0.05
        )
        dp_local_update(model, x, y, config, num_classes=CLASSES, seed=0, client_windows=50)
    poisson = DPSGDConfig(lr=0.1, batch_size=4, clip=1.0, noise_multiplier=1.0)
    with pytest.raises(PrivacyConfigError, match="whole pool"):
        dp_local_update(model, x, y, poisson, num_classes=CLASSES, seed=0, client_windows=100)
    too_big = DPSGDConfig(lr=0.1, batch_size=13, clip=1.0, noise_multiplier=1.0)
    with pytest.raises(PrivacyConfigError, match="exceeds"):
        dp_local_update(model, x, y, too_big, num_classes=CLASSES, seed=0)
    nan_x = x.copy()
    nan_x[0, 0, 0] = np.nan
    with pytest.raises(PrivacyConfigError, match="NaN"):
        dp_local_update(model, nan_x, y, poisson, num_classes=CLASSES, seed=0)


# ----- the update -----------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
def test_noise_free_update_is_plain_sgd_on_clipped_per_example_means(weighted):
    """S = 3 fixed steps: each applies lr * sum_i clip(g_i) / B, nothing else (no momentum)."""
    x, y = data(n=12)
    weights = torch.tensor([0.5, 1.0, 2.0, 1.5]) if weighted else None
    model = TinyLinear()
    sent = state(model)
    config = DPSGDConfig(
        lr=0.3, batch_size=12, clip=4.0, noise_multiplier=0.0, local_steps=3, sampling="fixed"
    )
    update = dp_local_update(
        model, x, y, config, num_classes=CLASSES, seed=5, class_weights=weights, client_windows=40
    )

    reference = TinyLinear()
    reference.load_state_dict(sent)
    all_factors, total = [], {k: torch.zeros_like(v) for k, v in sent.items()}
    for t in range(3):
        part = slice(4 * t, 4 * t + 4)
        step, factors = clipped_mean_step(
            reference, torch.as_tensor(x[part]), torch.as_tensor(y[part]), 4.0, 4, weights
        )
        all_factors += factors
        with torch.no_grad():
            for k, p in reference.named_parameters():
                p -= 0.3 * step[k]
                total[k] += step[k]
    assert min(all_factors) < 1.0 and max(all_factors) == 1.0  # both clipped and unclipped
    for k in sent:
        torch.testing.assert_close(update.state_dict[k], reference.state_dict()[k])
        # pseudo-gradient identity: (theta_sent - theta_returned) / (lr * S) = mean step gradient
        torch.testing.assert_close((sent[k] - update.state_dict[k]) / (0.3 * 3), total[k] / 3)
    np.testing.assert_array_equal(update.label_counts, np.bincount(y, minlength=CLASSES))
    assert update.privacy.poisson_sampled is False
    assert update.privacy.record == MechanismRecord(0.0, 4 / 40, 3)


def test_noise_has_std_sigma_clip_over_batch_and_step_scales_with_lr():
    """S = 1: noisy minus clean update = lr * z / B with z ~ N(0, (sigma C)^2) per coordinate."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 10, 10)).astype(np.float32)
    y = rng.integers(0, 20, 10)
    sigma, clip, batch = 2.0, 0.5, 10

    def run(noise, lr=1.0):
        model = TinyLinear(inputs=100, classes=20)
        config = DPSGDConfig(
            lr=lr, batch_size=batch, clip=clip, noise_multiplier=noise, sampling="fixed"
        )
        update = dp_local_update(model, x, y, config, num_classes=20, seed=3, client_windows=1000)
        return torch.cat([update.state_dict[k].flatten() for k in ("head.weight", "head.bias")])

    sent = torch.cat(
        [p.detach().flatten() for p in TinyLinear(inputs=100, classes=20).parameters()]
    )
    noise = run(sigma) - run(0.0)
    expected = sigma * clip / batch
    assert noise.numel() == 2020
    assert float(noise.std()) == pytest.approx(expected, rel=0.06)
    assert abs(float(noise.mean())) < 4 * expected / math.sqrt(noise.numel())
    # the applied step is lr * g_hat with g_hat independent of lr (no weight decay, no extra scaling)
    torch.testing.assert_close(run(sigma, lr=0.5) - sent, 0.5 * (run(sigma) - sent))


def test_poisson_batches_are_drawn_per_seed_and_divided_by_the_expected_size():
    x, y = data(n=40)
    config = DPSGDConfig(lr=0.2, batch_size=20, clip=1.0, noise_multiplier=0.0, local_steps=2)
    batches = poisson_batches(40, 10 / 40, 2, seed=11)
    again = poisson_batches(40, 0.25, 2, seed=11)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    sizes = [len(b) for b in batches]
    assert sizes != [10, 10]  # the drawn sizes vary; the divisor stays B = 10

    model = TinyLinear()
    sent = state(model)
    update = dp_local_update(model, x, y, config, num_classes=CLASSES, seed=11)
    assert update.privacy.step_sizes == tuple(sizes)
    assert update.privacy.record == MechanismRecord(0.0, 0.25, 2)
    used = np.concatenate(batches)
    np.testing.assert_array_equal(update.label_counts, np.bincount(y[used], minlength=CLASSES))

    reference = TinyLinear()
    reference.load_state_dict(sent)
    for indices in batches:
        step, _ = clipped_mean_step(
            reference, torch.as_tensor(x[indices]), torch.as_tensor(y[indices]), 1.0, 10
        )
        with torch.no_grad():
            for k, p in reference.named_parameters():
                p -= 0.2 * step[k]
    for k in sent:
        torch.testing.assert_close(update.state_dict[k], reference.state_dict()[k])


def test_an_empty_poisson_step_applies_noise_only():
    x, y = data(n=20)
    config = DPSGDConfig(lr=0.1, batch_size=1, clip=1.0, noise_multiplier=0.0)
    seed = next(s for s in range(200) if len(poisson_batches(20, 1 / 20, 1, s)[0]) == 0)
    model = TinyLinear()
    sent = state(model)
    update = dp_local_update(model, x, y, config, num_classes=CLASSES, seed=seed)
    assert update.privacy.step_sizes == (0,)
    assert update.label_counts.sum() == 0 and math.isnan(update.mean_loss)
    for k in sent:
        assert torch.equal(update.state_dict[k], sent[k])
    noisy = DPSGDConfig(lr=0.1, batch_size=1, clip=1.0, noise_multiplier=1.0)
    moved = dp_local_update(TinyLinear(), x, y, noisy, num_classes=CLASSES, seed=seed)
    assert not torch.equal(moved.state_dict["head.bias"], sent["head.bias"])


def test_same_seed_same_weights_and_global_rng_untouched():
    x, y = data(n=30)
    config = DPSGDConfig(lr=0.1, batch_size=10, clip=0.5, noise_multiplier=1.0, local_steps=2)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = dp_local_update(TinyLSTM(), x, y, config, num_classes=CLASSES, seed=7)
    after = torch.rand(1)
    b = dp_local_update(TinyLSTM(), x, y, config, num_classes=CLASSES, seed=7)
    c = dp_local_update(TinyLSTM(), x, y, config, num_classes=CLASSES, seed=8)
    assert torch.equal(before, after)
    for k in a.state_dict:
        assert torch.equal(a.state_dict[k], b.state_dict[k])
    assert any(not torch.equal(a.state_dict[k], c.state_dict[k]) for k in a.state_dict)
    assert a.privacy == b.privacy


# ----- LSTM models ----------------------------------------------------------------------------


def test_private_copy_swaps_lstm_for_an_equal_dplstm_with_the_same_keys():
    model = TinyLSTM().eval()
    private = private_copy(model).eval()
    assert type(model.lstm) is nn.LSTM  # the original is untouched
    assert type(private.lstm).__name__ == "DPLSTM"
    x = torch.as_tensor(data(n=6)[0])
    torch.testing.assert_close(private(x), model(x), rtol=1e-5, atol=1e-6)
    # DPLSTM's own state dict has nn.LSTM's keys; the parent's also keeps its aliases, which
    # copy_weights_back drops.
    assert set(private.lstm.state_dict()) == set(model.lstm.state_dict())
    target = TinyLSTM(seed=1)
    copy_weights_back(target, private)
    for k, v in model.state_dict().items():
        assert torch.equal(target.state_dict()[k], v)


def test_copy_back_rejects_a_foreign_key():
    trained = TinyLinear()
    trained.extra = nn.Linear(1, 1)
    with pytest.raises(UnsupportedModelError, match="extra.weight"):
        copy_weights_back(TinyLinear(), trained)


@pytest.mark.filterwarnings("ignore:There is a performance drop:UserWarning")
def test_lstm_update_equals_clipped_torch_func_per_example_gradients():
    """Opacus' DPLSTM per-example gradients against vmap(grad) straight through nn.LSTM."""
    x, y = data(n=8, window=4)
    model = TinyLSTM()
    sent = state(model)
    config = DPSGDConfig(
        lr=0.5, batch_size=8, clip=0.3, noise_multiplier=0.0, sampling="fixed", train_mode=False
    )
    update = dp_local_update(model, x, y, config, num_classes=CLASSES, seed=0, client_windows=80)
    assert list(update.state_dict) == list(sent)  # exactly nn.LSTM's keys, in the model's order

    reference = TinyLSTM().eval()
    params = {k: v.detach() for k, v in reference.named_parameters()}

    def loss(p, xi, yi):
        return F.cross_entropy(functional_call(reference, p, (xi[None],)), yi[None])

    per_example = vmap(grad(loss), in_dims=(None, 0, 0))(
        params, torch.as_tensor(x), torch.as_tensor(y)
    )
    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in per_example.values()))
    factors = (0.3 / (norms + 1e-6)).clamp(max=1.0)
    assert factors.max() < 1.0  # every example clipped: the bound is what is tested
    for k, g in per_example.items():
        expected = params[k] - 0.5 * torch.einsum("i,i...->...", factors, g) / 8
        torch.testing.assert_close(update.state_dict[k], expected, rtol=1e-4, atol=1e-6)


def test_functorch_mode_gives_the_hooks_result():
    x, y = data(n=8, window=4)
    results = []
    for mode in ("hooks", "functorch"):
        config = DPSGDConfig(
            lr=0.5,
            batch_size=8,
            clip=0.3,
            noise_multiplier=1.0,
            local_steps=2,
            grad_sample_mode=mode,
        )
        results.append(dp_local_update(TinyLSTM(), x, y, config, num_classes=CLASSES, seed=4))
    for k in results[0].state_dict:
        torch.testing.assert_close(results[0].state_dict[k], results[1].state_dict[k])


def test_deepconvlstm_round_trip_keeps_the_global_keys():
    model = build_model("deepconvlstm", 3, 13, 50, seed=0)
    keys = list(model.state_dict())
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 50, 3)).astype(np.float32)
    y = rng.integers(0, 13, 2)
    config = DPSGDConfig(
        lr=0.01, batch_size=2, clip=1.0, noise_multiplier=1.0, local_steps=2, sampling="fixed"
    )
    update = dp_local_update(model, x, y, config, num_classes=13, seed=0, client_windows=100)
    assert list(update.state_dict) == keys
    assert type(model.lstm) is nn.LSTM
    assert all(torch.equal(model.state_dict()[k], update.state_dict[k]) for k in keys)
    assert all(torch.isfinite(v).all() for v in update.state_dict.values())


def test_a_parameter_the_forward_pass_never_uses_is_named():
    model = TinyLinear()
    model.unused = nn.Linear(2, 2)
    x, y = data(n=4)
    config = DPSGDConfig(lr=0.1, batch_size=4, clip=1.0, noise_multiplier=1.0)
    with pytest.raises(UnsupportedModelError, match=r"unused\.weight"):
        dp_local_update(model, x, y, config, num_classes=CLASSES, seed=0)


def test_a_model_with_batchnorm_is_rejected_naming_the_module():
    model = build_model("tinyhar", 3, 13, 50, seed=0)
    with pytest.raises(UnsupportedModelError, match=r"conv_blocks\.0\.2 \(BatchNorm2d\)"):
        private_copy(model)
