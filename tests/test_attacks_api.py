"""The entry point: no label channel, documented errors, and side-effect-free cached calibration."""

import dataclasses
import inspect

import numpy as np
import pytest
import torch
from torch import nn

import attacks
from attacks import AttackContext, AttackError, LastLayerUpdate, reconstruct_labels
from attacks.calibration import class_confidences, clear_calibration_cache, llg_calibration

NAMES = [
    "llg", "llg_plus", "llg_star", "ebi", "llbg", "llbg_trained", "ilrg", "rlu", "idlg",
    "leakage_har.llg", "leakage_har.llg_star", "leakage_har.ebi", "leakage_har.llbg",
    "leakage_har.ilrg",
]
BIAS_READERS = ["ebi", "llbg", "llbg_trained", "ilrg", "rlu", "idlg",
                "leakage_har.ebi", "leakage_har.llbg", "leakage_har.ilrg"]


class CountingMLP(nn.Module):
    """ReLU MLP with dropout and a `head`, counting its forward calls."""

    def __init__(self, window=5, channels=2, hidden=12, num_classes=4, bias=True, batchnorm=False):
        super().__init__()
        layers = [nn.Flatten(), nn.Linear(window * channels, hidden)]
        layers += [nn.BatchNorm1d(hidden)] if batchnorm else []
        self.body = nn.Sequential(*layers, nn.ReLU(), nn.Dropout(0.3))
        self.head = nn.Linear(hidden, num_classes, bias=bias)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.head(self.body(x))


class ConstantFeatureNet(nn.Module):
    """Ignores its input: head input is a fixed non-negative vector, so calibration is analytic."""

    def __init__(self, hidden=6, num_classes=4):
        super().__init__()
        self.feature = nn.Parameter(torch.rand(hidden, generator=torch.Generator().manual_seed(0)))
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.head(self.feature.expand(x.shape[0], -1))


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_calibration_cache()
    yield
    clear_calibration_cache()


def real_update(model, num_samples=8, local_steps=1, seed=0):
    """A genuine head gradient of `model` (in eval mode) on random windows."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(num_samples, 5, 2, generator=generator)
    y = torch.randint(0, model.head.out_features, (num_samples,), generator=generator)
    was_training = model.training
    model.eval()
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    model.train(was_training)
    bias_grad = None if model.head.bias is None else model.head.bias.grad
    update = LastLayerUpdate(model.head.weight.grad, bias_grad, num_samples, local_steps=local_steps)
    model.zero_grad()
    return update


def full_context(model, **options):
    generator = torch.Generator().manual_seed(7)
    return AttackContext(model=model, input_shape=(5, 2),
                         aux_windows=torch.randn(20, 5, 2, generator=generator),
                         aux_labels=np.arange(20) % 4, calibration_repeats=2, **options)


# --- the attack API cannot receive labels -------------------------------------------------------

def test_update_and_context_have_no_label_channel():
    assert not any("label" in f.name for f in dataclasses.fields(LastLayerUpdate))
    # the only label field is the server's OWN auxiliary data
    assert {f.name for f in dataclasses.fields(AttackContext) if "label" in f.name} == {"aux_labels"}
    assert list(inspect.signature(reconstruct_labels).parameters) == ["name", "update", "context"]
    with pytest.raises(TypeError):
        LastLayerUpdate(np.zeros((3, 2)), np.zeros(3), 4, labels=np.array([0, 1, 1, 2]))
    with pytest.raises(TypeError):
        AttackContext(labels=np.array([0, 1]))
    with pytest.raises(TypeError):
        reconstruct_labels("ebi", LastLayerUpdate(np.zeros((3, 2)), np.zeros(3), 4),
                           labels=np.array([0, 1, 1, 2]))


def test_documented_signatures():
    update_params = inspect.signature(LastLayerUpdate).parameters
    assert list(update_params) == ["weight_grad", "bias_grad", "num_samples", "local_steps", "weight", "bias"]
    assert all(update_params[p].kind is inspect.Parameter.KEYWORD_ONLY for p in ("local_steps", "weight", "bias"))
    context_params = list(inspect.signature(AttackContext).parameters)
    assert context_params[:5] == ["model", "input_shape", "aux_windows", "aux_labels", "seed"]
    assert list(inspect.signature(attacks.pseudo_gradient).parameters) == [
        "sent_state", "returned_state", "lr", "local_steps"]


def test_available_lists_every_name_with_one_line():
    listing = attacks.available()
    assert list(listing) == NAMES
    assert all(text and "\n" not in text for text in listing.values())


@pytest.mark.parametrize("name", NAMES)
def test_every_attack_returns_int_counts_summing_to_n(name):
    model = CountingMLP()
    update = real_update(model, num_samples=12, local_steps=3)
    counts = reconstruct_labels(name, update, full_context(model))
    assert counts.dtype == np.int64 and counts.shape == (4,)
    assert counts.sum() == 12 and np.all(counts >= 0)


def test_inputs_are_copied_read_only_float64():
    grad_w = torch.ones(3, 2)
    update = LastLayerUpdate(grad_w, torch.zeros(3), 4)
    grad_w.add_(5.0)
    assert update.weight_grad.dtype == np.float64 and update.weight_grad[0, 0] == 1.0
    with pytest.raises(ValueError):
        update.weight_grad[0, 0] = 2.0


# --- documented errors --------------------------------------------------------------------------

@pytest.mark.parametrize("name", BIAS_READERS)
def test_bias_attacks_refuse_a_bias_free_head(name):
    model = CountingMLP(bias=False)
    update = real_update(model)
    with pytest.raises(AttackError, match="no bias"):
        reconstruct_labels(name, update, full_context(model, llbg_confidence=0.5))


def test_row_sum_attacks_work_without_bias():
    model = CountingMLP(bias=False)
    update = real_update(model)
    for name in ("llg", "llg_star", "llg_plus", "leakage_har.llg", "leakage_har.llg_star"):
        assert reconstruct_labels(name, update, full_context(model)).sum() == 8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_samples": 0}, "num_samples"),
        ({"num_samples": 10, "local_steps": 3}, "not divisible"),
        ({"num_samples": 2.0}, "integer"),
        ({"bias_grad": np.zeros(4)}, "shape"),
        ({"weight_grad": np.array([[np.nan, 0.0]] * 3)}, "NaN"),
        ({"bias_grad": np.array([np.inf, 0.0, 0.0])}, "NaN"),
        ({"weight": np.zeros((2, 2))}, "disagrees"),
        ({"bias_grad": None, "bias": np.zeros(3)}, "bias_grad is None"),
        ({"weight_grad": np.zeros(3)}, "2-D"),
    ],
)
def test_bad_updates_raise_attack_error(kwargs, message):
    arguments = {"weight_grad": np.zeros((3, 2)), "bias_grad": np.zeros(3), "num_samples": 4}
    arguments.update(kwargs)
    weight_grad, bias_grad, num_samples = (arguments.pop(k) for k in ("weight_grad", "bias_grad", "num_samples"))
    with pytest.raises(AttackError, match=message):
        LastLayerUpdate(weight_grad, bias_grad, num_samples, **arguments)


def test_missing_knowledge_raises_attack_error():
    update = LastLayerUpdate(np.ones((3, 2)), np.array([0.1, -0.2, 0.1]), 4)
    with pytest.raises(AttackError, match="unknown attack"):
        reconstruct_labels("nope", update)
    with pytest.raises(AttackError, match="needs the current model"):
        reconstruct_labels("llg_star", update)
    with pytest.raises(AttackError, match="auxiliary"):
        reconstruct_labels("llg_plus", update, AttackContext(model=CountingMLP(hidden=2, num_classes=3)))
    with pytest.raises(AttackError, match="current last layer"):
        reconstruct_labels("ilrg", update)
    with pytest.raises(AttackError, match="needs the current model"):
        reconstruct_labels("llbg_trained", update)
    with pytest.raises(AttackError, match="shape"):
        reconstruct_labels("llg_star", update, AttackContext(model=CountingMLP(), input_shape=(5, 2)))
    assert issubclass(AttackError, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dummy_kind": "uniform"}, "dummy_kind"),
        ({"calibration_repeats": 0}, "calibration_repeats"),
        ({"llbg_confidence": 1.0}, "llbg_confidence"),
        ({"seed": -1}, "seed"),
        ({"input_shape": (5,)}, "input_shape"),
        ({"aux_windows": np.zeros((3, 5, 2))}, "together"),
        ({"aux_windows": np.zeros((3, 5, 2)), "aux_labels": np.zeros(2, dtype=int)}, "aux_labels"),
        ({"aux_windows": np.zeros((3, 5, 2)), "aux_labels": np.zeros(3, dtype=int), "input_shape": (4, 2)},
         "disagrees"),
        ({"model_version": [1]}, "hashable"),
    ],
)
def test_bad_context_raises_attack_error(kwargs, message):
    with pytest.raises(AttackError, match=message):
        AttackContext(**kwargs)


# --- calibration: analytic values, caching, no side effects -------------------------------------

def test_llg_calibration_matches_the_analytic_row_sums():
    """Constant head input f: rowsum_i[j] = (p_j - [i == j]) * sum(f) for every batch."""
    model = ConstantFeatureNet()
    context = AttackContext(model=model, input_shape=(5, 2), calibration_repeats=3)
    with torch.no_grad():
        probs = torch.softmax(model.head(model.feature), 0).double().numpy()
        total = float(model.feature.double().sum())
    mean_self, offsets = llg_calibration(context, "dummy", 7, 4, 6, "llg_star")
    assert mean_self == pytest.approx(np.mean(probs - 1.0) * total, rel=1e-6)
    np.testing.assert_allclose(offsets, probs * total, rtol=1e-6)
    aux = AttackContext(model=model, aux_windows=np.zeros((6, 5, 2)), aux_labels=[0, 0, 1, 1, 3, 3])
    mean_self, offsets = llg_calibration(aux, "aux", 7, 4, 6, "llg_plus")
    assert mean_self == pytest.approx(np.mean(probs[[0, 1, 3]] - 1.0) * total, rel=1e-6)
    np.testing.assert_allclose(offsets, probs * total, rtol=1e-6)  # class 2 offset from others
    confidence = class_confidences(aux, 3, 4, 6, "llbg_trained")
    np.testing.assert_allclose(confidence, [probs[0], probs[1], np.mean(probs[[0, 1, 3]]), probs[3]],
                               rtol=1e-6)


def test_forward_only_row_sums_equal_autograd():
    """Calibration's analytic head gradient equals backpropagation's (mean cross-entropy)."""
    from attacks.calibration import one_class_row_sums

    model = CountingMLP().double().eval()
    x = torch.randn(9, 5, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    captured = {}
    handle = model.head.register_forward_hook(lambda m, i, o: captured.update(h=i[0], z=o))
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), torch.full((9,), 2)).backward()
    handle.remove()
    analytic = one_class_row_sums(captured["h"].detach().numpy(), captured["z"].detach().numpy(), 2)
    np.testing.assert_allclose(analytic, model.head.weight.grad.sum(1).numpy(), rtol=1e-10, atol=1e-14)
    # and the same through llg_calibration on a float64 model with dropout off
    context = AttackContext(model=model, input_shape=(5, 2), dummy_kind="ones",
                            calibration_repeats=1, model_train_mode=False)
    mean_self, offsets = llg_calibration(context, "dummy", 9, 4, 12, "llg_star")
    ones = torch.ones(9, 5, 2, dtype=torch.float64)
    rows = []
    for cls in range(4):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(ones), torch.full((9,), cls)).backward()
        rows.append(model.head.weight.grad.sum(1).numpy().copy())
    rows = np.array(rows)
    assert mean_self == pytest.approx(np.mean(np.diag(rows)), rel=1e-9)
    np.testing.assert_allclose(offsets, [np.mean(np.delete(rows[:, j], j)) for j in range(4)], rtol=1e-9)


def test_llg_star_is_exact_with_the_analytic_model():
    """Row sums r = (p - k/N) s; with offsets p s and impact ~ -s/N the counts are recovered."""
    model = ConstantFeatureNet(num_classes=5)
    counts = np.array([3, 0, 2, 1, 0])
    with torch.no_grad():
        probs = torch.softmax(model.head(model.feature), 0).double().numpy()
        feature = model.feature.double().numpy()
    num_samples = counts.sum()
    grad_b = probs - counts / num_samples
    update = LastLayerUpdate(np.outer(grad_b, feature), grad_b, int(num_samples))
    context = AttackContext(model=model, input_shape=(5, 2), calibration_repeats=1)
    np.testing.assert_array_equal(reconstruct_labels("llg_star", update, context), counts)


def test_calibration_is_cached_per_model_version():
    model = CountingMLP()
    update = real_update(model)
    context = full_context(model, model_version=("round", 1))
    first = reconstruct_labels("llg_star", update, context)
    calls_after_first = model.calls
    assert calls_after_first > 0
    # a second client of the same round, even with a freshly built context, reuses the calibration
    other_client = real_update(model, seed=1)
    model.calls = 0
    reconstruct_labels("llg_star", other_client, full_context(model, model_version=("round", 1)))
    reconstruct_labels("llg_plus", other_client, full_context(model, model_version=("round", 1)))
    reconstruct_labels("llg_plus", update, full_context(model, model_version=("round", 1)))
    assert model.calls == 1  # only llg_plus's own first calibration ran
    np.testing.assert_array_equal(reconstruct_labels("llg_star", update, context), first)
    model.calls = 0
    reconstruct_labels("llg_star", update, full_context(model, model_version=("round", 2)))
    assert model.calls > 0


def test_calibration_fingerprint_detects_changed_parameters():
    model = CountingMLP()
    update = real_update(model)
    reconstruct_labels("llbg_trained", update, full_context(model))
    model.calls = 0
    reconstruct_labels("llbg_trained", update, full_context(model))  # new context, same weights
    assert model.calls == 0
    with torch.no_grad():
        model.head.weight.data.add_(0.5)  # an untracked in-place change
    reconstruct_labels("llbg_trained", update, full_context(model))
    assert model.calls > 0


def test_calibration_leaves_model_and_global_rngs_untouched():
    model = CountingMLP(batchnorm=True)
    model.eval()
    model.body[0].train()  # a mixed-mode model must come back exactly as it was
    modes = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch_rng, numpy_rng = torch.get_rng_state(), np.random.get_state()[1].copy()
    update = real_update(model, num_samples=8, local_steps=2)
    model.body[0].train()
    context = full_context(model, model_train_mode=True)
    for name in ("llg_star", "llg_plus", "llbg_trained"):
        reconstruct_labels(name, update, context)
    assert [m.training for m in model.modules()] == modes
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key  # BatchNorm running stats restored
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), torch_rng)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_rng)


def test_calibration_is_reproducible_and_seed_dependent():
    model = CountingMLP()
    update = real_update(model, num_samples=12)
    first = llg_calibration(full_context(model, seed=5), "dummy", 12, 4, 12, "llg_star")
    clear_calibration_cache()
    again = llg_calibration(full_context(model, seed=5), "dummy", 12, 4, 12, "llg_star")
    other = llg_calibration(full_context(model, seed=6), "dummy", 12, 4, 12, "llg_star")
    assert first[0] == again[0] and np.array_equal(first[1], again[1])
    assert first[0] != other[0]
    assert update.num_samples == 12


def test_ilrg_reads_the_last_layer_from_the_model_or_the_update():
    model = CountingMLP()
    update = real_update(model)
    with_params = LastLayerUpdate(update.weight_grad, update.bias_grad, update.num_samples,
                                  weight=model.head.weight, bias=model.head.bias)
    np.testing.assert_array_equal(reconstruct_labels("ilrg", update, AttackContext(model=model)),
                                  reconstruct_labels("ilrg", with_params))


def test_ilrg_unadjusted_rounding_is_an_option():
    model = CountingMLP(num_classes=4)
    update = real_update(model, num_samples=16)
    forced = reconstruct_labels("ilrg", update, AttackContext(model=model))
    plain = reconstruct_labels("ilrg", update, AttackContext(model=model, ilrg_force_sum=False))
    assert forced.sum() == 16 and plain.dtype == np.int64 and np.all(plain >= 0)
    assert np.abs(forced - plain).sum() <= 4  # same solution, only the rounding differs
