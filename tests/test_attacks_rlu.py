"""RLU (Chen & Vikalo 2024): exact where its confidence model is exact, accurate on untrained
models with one and several local steps, and the identities of attacks.md."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attacks import (
    AttackContext,
    AttackError,
    LastLayerUpdate,
    clear_calibration_cache,
    last_layer_update,
    reconstruct_labels,
    reconstruct_labels_with_diagnostics,
)
from attacks.rlu import erroneous_confidence, rlu_solve, rlu_system
from fl_har.metrics import ln_acc

WINDOW, CHANNELS, C = 10, 3, 6


class TanhNet(nn.Module):
    def __init__(self, hidden: int = 64, num_classes: int = C):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(WINDOW * CHANNELS, hidden), nn.Tanh())
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.head(self.body(x))


def synthetic(generator: torch.Generator, labels: torch.Tensor) -> torch.Tensor:
    """Windows whose mean depends on the class (a learnable, HAR-like toy problem)."""
    means = torch.linspace(-1.0, 1.0, C)[labels]
    return means[:, None, None] + torch.randn(labels.shape[0], WINDOW, CHANNELS,
                                              generator=generator)


def aux_set(seed: int, per_class: int = 40):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(C).repeat_interleave(per_class)
    return synthetic(generator, labels).numpy(), labels.numpy()


def local_training(model, x, y, steps, lr):
    """Plain SGD, S steps of B = N / S windows: the client's side; returns (sent, returned)."""
    sent = {k: v.detach().clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    batch = x.shape[0] // steps
    for t in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(x[t * batch:(t + 1) * batch]),
                        y[t * batch:(t + 1) * batch]).backward()
        optimizer.step()
    returned = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(sent)
    return sent, returned


def constant_softmax_model(logits: torch.Tensor) -> TanhNet:
    model = TanhNet()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(logits)
    return model


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_calibration_cache()
    yield
    clear_calibration_cache()


@pytest.mark.parametrize("bias", [torch.zeros(C), torch.tensor([0.5, -1.0, 2.0, 0.0, 0.3, -0.7])])
def test_constant_softmax_single_step_is_exact(bias):
    """Softmax equal to one vector q for every input (uniform = untrained-like): the erroneous
    confidences are q, RLU's confidence model is exact, so every count is recovered exactly."""
    generator = torch.Generator().manual_seed(1)
    model = constant_softmax_model(bias)
    truth = np.array([7, 0, 13, 1, 0, 19])
    y = torch.from_numpy(np.repeat(np.arange(C), truth))
    x = synthetic(generator, y)
    sent, returned = local_training(model, x, y, steps=1, lr=0.1)
    update = last_layer_update(sent, returned, lr=0.1, local_steps=1, num_samples=len(y))
    aux_x, aux_y = aux_set(2, per_class=5)
    context = AttackContext(model=model, aux_windows=aux_x, aux_labels=aux_y)
    result = reconstruct_labels_with_diagnostics("rlu", update, context)
    np.testing.assert_array_equal(result.counts, truth)
    np.testing.assert_allclose(result.diagnostics["raw_estimate"], truth, atol=1e-4)
    np.testing.assert_allclose(result.diagnostics["erroneous_confidence"],
                               torch.softmax(bias.double(), 0).numpy(), atol=1e-6)
    assert result.diagnostics["residual"] < 1e-4  # float32 weights


def test_system_columns_sum_to_zero_and_the_closed_form_holds():
    """Every column of A sums to 0 (as the bias gradient does); without clipping the solution is
    the closed form k_j = N (s_j - g_j) / sum(s)."""
    rng = np.random.default_rng(0)
    s = rng.dirichlet(np.ones(C)) * 0.9
    np.testing.assert_allclose(rlu_system(s).sum(axis=0), 0.0, atol=1e-12)
    truth = np.array([5.0, 9.0, 2.0, 11.0, 3.0, 10.0])
    g = rlu_system(s) @ truth / truth.sum()
    estimate, residual = rlu_solve(s, g, int(truth.sum()))
    np.testing.assert_allclose(estimate, truth.sum() * (s - g) / s.sum(), atol=1e-8)
    np.testing.assert_allclose(estimate, truth, atol=1e-8)
    assert residual < 1e-8


def test_erroneous_confidence_excludes_the_true_class():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
    labels = np.array([0, 1, 1])
    np.testing.assert_allclose(erroneous_confidence(probs, labels),
                               [(0.1 + 0.3) / 2, 0.2, (0.1 + 0.1 + 0.4) / 3])


def _untrained_case(seed: int, steps: int, num_samples: int = 60, lr: float = 0.05):
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = TanhNet()
    probs = torch.tensor([0.3, 0.05, 0.2, 0.0, 0.25, 0.2])
    y = torch.multinomial(probs, num_samples, True, generator=generator)
    x = synthetic(generator, y)
    sent, returned = local_training(model, x, y, steps=steps, lr=lr)
    update = last_layer_update(sent, returned, lr=lr, local_steps=steps, num_samples=num_samples)
    truth = np.bincount(y.numpy(), minlength=C)
    return model, update, truth


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_untrained_single_step_is_near_exact(seed):
    model, update, truth = _untrained_case(seed, steps=1)
    aux_x, aux_y = aux_set(100 + seed)
    context = AttackContext(model=model, aux_windows=aux_x, aux_labels=aux_y,
                            model_train_mode=False)
    counts = reconstruct_labels("rlu", update, context)
    assert int(counts.sum()) == 60
    assert ln_acc(truth, counts) >= 0.95


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("lr", "floor"), [(0.05, 0.95), (0.2, 0.88)])
def test_five_local_steps_with_drift_correction(seed, lr, floor):
    """S = 5 local steps: near-exact at a small step size; at a larger one (the model learns the
    batch while training) the drift-corrected RLU is never worse than RLU on the sent model alone
    (measured at lr 0.2: 0.900 / 0.900 / 0.917 corrected vs 0.883 / 0.900 / 0.883 plain; LLBG
    0.867 / 0.867 / 0.900)."""
    model, update, truth = _untrained_case(seed, steps=5, lr=lr)
    aux_x, aux_y = aux_set(200 + seed)
    base = {"model": model, "aux_windows": aux_x, "aux_labels": aux_y, "model_train_mode": False}
    corrected = reconstruct_labels_with_diagnostics("rlu", update, AttackContext(**base, rlu_lr=lr))
    plain = reconstruct_labels("rlu", update, AttackContext(**base))
    assert corrected.diagnostics["drift_steps"] == 5
    assert ln_acc(truth, corrected.counts) >= floor
    assert ln_acc(truth, corrected.counts) >= ln_acc(truth, plain)


def test_rlu_needs_a_bias_a_model_and_aux_data():
    update = LastLayerUpdate(np.zeros((C, 64)), np.zeros(C), 10)
    with pytest.raises(AttackError, match="model"):
        reconstruct_labels("rlu", update, AttackContext())
    with pytest.raises(AttackError, match="auxiliary"):
        reconstruct_labels("rlu", update, AttackContext(model=TanhNet()))
    with pytest.raises(AttackError, match="no bias"):
        reconstruct_labels("rlu", LastLayerUpdate(np.zeros((C, 64)), None, 10),
                           AttackContext(model=TanhNet()))
    with pytest.raises(AttackError, match="rlu_lr"):
        AttackContext(rlu_lr=-1.0)


def test_aux_forward_is_cached_per_model_version():
    model, update, _ = _untrained_case(0, steps=1)
    aux_x, aux_y = aux_set(5)
    calls = []
    handle = model.head.register_forward_hook(lambda *a: calls.append(1))
    context = AttackContext(model=model, aux_windows=aux_x, aux_labels=aux_y, model_version=7)
    first = reconstruct_labels("rlu", update, context)
    second = reconstruct_labels("rlu", update, context)
    handle.remove()
    np.testing.assert_array_equal(first, second)
    assert len(calls) == 1  # 240 aux windows: one forward chunk, then cache hits


def test_random_int_dummies_are_integer_valued_up_to_2_pow_24():
    """LLG*'s "random_int" dummies: the LLG authors' Tensor.random_() range for float32."""
    from attacks.calibration import _dummy_batch

    batch = _dummy_batch(np.random.default_rng(0), "random_int", (64, WINDOW, CHANNELS))
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch, np.round(batch))
    assert batch.min() >= 0 and batch.max() <= 2**24 and batch.max() > 2**23
    context = AttackContext(model=TanhNet(), input_shape=(WINDOW, CHANNELS), dummy_kind="random_int")
    update = LastLayerUpdate(np.zeros((C, 64)), np.zeros(C), 12)
    assert reconstruct_labels("llg_star", update, context).sum() == 12
