"""Behaviour of the HAR models: shapes, parameter counts, the exposed head, seeded init, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fl_har.models import (
    HEAD_BIAS_KEY,
    HEAD_WEIGHT_KEY,
    MODELS,
    DeepConvLSTM,
    HARModel,
    ModelConfigError,
    ModelInputError,
    TinyHAR,
    build_model,
    count_parameters,
    init_untrained,
    last_layer,
    minimum_window,
)

NAMES = ("deepconvlstm", "tinyhar")
EMBEDDING_DIM = {"deepconvlstm": 128, "tinyhar": 40}


def windows(batch: int, window: int, channels: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, window, channels, generator=generator)


def labels(batch: int, num_classes: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, num_classes, (batch,), generator=generator)


def xavier_std(weight: torch.Tensor) -> float:
    receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive
    return math.sqrt(2.0 / (fan_in + fan_out))


def initialised_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter init_untrained draws from Xavier-normal (conv, linear, LSTM matrices)."""
    return {
        name: p.detach()
        for name, p in model.named_parameters()
        if p.dim() >= 2 and "weight" in name
    }


# ----- registry and parameter counts ----------------------------------------------------------


def test_registry_lists_both_models_with_descriptions() -> None:
    assert set(MODELS) == set(NAMES)
    assert all(isinstance(text, str) and text for text in MODELS.values())
    assert isinstance(build_model("deepconvlstm", 3, 9), DeepConvLSTM)
    assert isinstance(build_model("tinyhar", 3, 9), TinyHAR)


@pytest.mark.parametrize(
    ("name", "channels", "classes", "expected"),
    [
        ("deepconvlstm", 12, 19, 705_747),  # WEAR, as reported by the paper's code
        ("deepconvlstm", 3, 9, 409_545),  # Wetlab
        ("deepconvlstm", 3, 13, 410_061),  # HAPT
        ("tinyhar", 12, 19, 36_001),  # WEAR ("about 36 k")
        ("tinyhar", 3, 13, 28_555),  # HAPT
        ("tinyhar", 3, 9, 28_391),  # Wetlab
    ],
)
def test_parameter_counts(name: str, channels: int, classes: int, expected: int) -> None:
    model = build_model(name, channels, classes)
    assert count_parameters(model) == expected


def test_deepconvlstm_count_matches_its_layer_arithmetic() -> None:
    channels, classes = 12, 19
    conv = (9 * 64 + 64) + 3 * (64 * 64 * 9 + 64)
    lstm = 4 * 128 * (64 * channels + 128 + 2) + 4 * 128 * (128 + 128 + 2)
    head = 128 * classes + classes
    assert count_parameters(build_model("deepconvlstm", channels, classes)) == conv + lstm + head


def test_count_parameters_trainable_only_skips_frozen() -> None:
    model = build_model("tinyhar", 3, 9)
    total = count_parameters(model)
    model.head.weight.requires_grad_(False)
    assert count_parameters(model) == total
    assert count_parameters(model, trainable_only=True) == total - 40 * 9


# ----- shapes, head, forward/backward ---------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("channels", "classes"), [(3, 9), (12, 19)])
def test_forward_shapes(name: str, channels: int, classes: int) -> None:
    model = build_model(name, channels, classes)
    x = windows(5, 50, channels)
    logits = model(x)
    assert logits.shape == (5, classes) and logits.dtype == torch.float32
    assert model.features(x).shape == (5, EMBEDDING_DIM[name])
    assert model.embedding_dim == EMBEDDING_DIM[name]


@pytest.mark.parametrize("name", NAMES)
def test_head_is_the_last_linear_layer_under_uniform_keys(name: str) -> None:
    model = build_model(name, 3, 13)
    head = last_layer(model)
    assert head is model.head and isinstance(head, nn.Linear)
    assert head.weight.shape == (13, EMBEDDING_DIM[name])
    keys = list(model.state_dict())
    assert keys[-2:] == [HEAD_WEIGHT_KEY, HEAD_BIAS_KEY]
    assert torch.equal(model.state_dict()[HEAD_WEIGHT_KEY], head.weight)


def test_last_layer_rejects_models_without_head() -> None:
    with pytest.raises(TypeError, match="head"):
        last_layer(nn.Sequential(nn.Linear(2, 2)))


@pytest.mark.parametrize("name", NAMES)
def test_eval_forward_is_head_of_features(name: str) -> None:
    model = build_model(name, 3, 9).eval()
    x = windows(4, 50, 3)
    assert torch.allclose(model(x), model.head(model.features(x)))


@pytest.mark.parametrize("name", NAMES)
def test_head_gradient_is_error_times_features(name: str) -> None:
    """The identity the label attacks rely on: dL/dW = (p - y)^T h / B, dL/db = mean(p - y)."""
    model = build_model(name, 3, 9, seed=4).eval()
    x, y = windows(6, 50, 3), labels(6, 9)
    F.cross_entropy(model(x), y).backward()
    with torch.no_grad():
        h = model.features(x)
        error = torch.softmax(model.head(h), dim=1) - F.one_hot(y, 9).float()
    assert torch.allclose(model.head.weight.grad, error.T @ h / 6, atol=1e-6)
    assert torch.allclose(model.head.bias.grad, error.mean(dim=0), atol=1e-6)


@pytest.mark.parametrize(
    ("name", "window", "expected_dead"),
    [
        ("deepconvlstm", 50, set()),
        # gamma = 0 at init gates the attention path off, so its projections get no gradient;
        # with a single time step left (T' = 1) the temporal softmax is constant and the LSTM's
        # recurrent matrix only ever multiplies the zero initial state.
        (
            "tinyhar",
            50,
            {
                "channel_interaction.query.weight",
                "channel_interaction.key.weight",
                "channel_interaction.value.weight",
                "temporal_lstm.weight_hh_l0",
                "temporal_attention.weight",
                "temporal_attention.bias",
            },
        ),
        (
            "tinyhar",
            100,
            {
                "channel_interaction.query.weight",
                "channel_interaction.key.weight",
                "channel_interaction.value.weight",
            },
        ),
    ],
)
def test_backward_reaches_every_live_parameter(
    name: str, window: int, expected_dead: set[str]
) -> None:
    model = build_model(name, 3, 9, window=window).train()
    x, y = windows(8, window, 3), labels(8, 9)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # dropout masks
        F.cross_entropy(model(x), y).backward()
    dead = set()
    for param_name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), param_name
        if not p.grad.abs().sum() > 0:
            dead.add(param_name)
    assert dead == expected_dead


def test_dropout_sits_before_deepconvlstm_head_only() -> None:
    model = build_model("deepconvlstm", 3, 9).train()
    x = windows(6, 50, 3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        assert torch.equal(model.features(x), model.features(x))  # no dropout inside
        first, second = model(x), model(x)
    assert isinstance(model.head_dropout, nn.Dropout) and model.head_dropout.p == 0.5
    assert not torch.allclose(first, second)


def test_tinyhar_dropout_follows_channel_interaction_not_the_head() -> None:
    model = build_model("tinyhar", 3, 9).train()
    assert isinstance(model.head_dropout, nn.Identity)
    assert model.interaction_dropout.p == 0.5
    x = windows(6, 50, 3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        assert not torch.allclose(model.features(x), model.features(x))


# ----- faithfulness to the papers' equations --------------------------------------------------


def deepconvlstm_reference(model: DeepConvLSTM, x: torch.Tensor) -> torch.Tensor:
    """Each channel filtered on its own by 1-D convolutions; maps stacked channel-major."""
    per_channel = []
    for c in range(x.shape[2]):
        maps = x[:, :, c].unsqueeze(1)  # [B, 1, T]
        for conv in model.conv_layers:
            maps = F.relu(F.conv1d(maps, conv.weight.squeeze(-1), conv.bias))
        per_channel.append(maps.transpose(1, 2))  # [B, T', 64]
    sequence = torch.cat(per_channel, dim=2)  # feature c * 64 + f
    outputs, _ = model.lstm(sequence)
    return model.head(outputs[:, -1])


def tinyhar_reference(model: TinyHAR, x: torch.Tensor) -> torch.Tensor:
    """Zhou et al.'s steps written out per window, time step and channel (eval mode)."""
    maps = x.unsqueeze(1)
    for block in model.conv_blocks:
        maps = block(maps)
    batch, _, steps, channels = maps.shape
    attention = model.channel_interaction
    gamma = attention.gamma
    fused = torch.zeros(batch, steps, 40)
    for b in range(batch):
        for t in range(steps):
            tokens = maps[b, :, t, :].T  # [C, F]
            q, k, v = attention.query(tokens), attention.key(tokens), attention.value(tokens)
            rows = []
            for j in range(channels):
                weights = torch.softmax(torch.stack([q[i] @ k[j] for i in range(channels)]), 0)
                mixed = sum(weights[i] * v[i] for i in range(channels))
                rows.append(tokens[j] + gamma * mixed)
            fused[b, t] = F.relu(model.channel_fusion(torch.cat(rows)))
    sequence, _ = model.temporal_lstm(fused)
    embedding = torch.zeros(batch, 40)
    for b in range(batch):
        scores = torch.stack([model.temporal_attention(sequence[b, t])[0] for t in range(steps)])
        weights = torch.softmax(scores, 0)
        embedding[b] = sum(weights[t] * sequence[b, t] for t in range(steps))
    return model.head(embedding)


def test_deepconvlstm_matches_per_channel_reference() -> None:
    model = build_model("deepconvlstm", 4, 7, seed=2).eval()
    x = windows(3, 50, 4)
    with torch.no_grad():
        assert torch.allclose(model(x), deepconvlstm_reference(model, x), atol=1e-5)


@pytest.mark.parametrize("window", [50, 100])
def test_tinyhar_matches_reference_with_attention_switched_on(window: int) -> None:
    model = build_model("tinyhar", 4, 7, window=window, seed=3).eval()
    with torch.no_grad():
        model.channel_interaction.gamma.fill_(0.7)  # make the attention path matter
        model.temporal_attention.weight.mul_(5.0)  # and the temporal weights non-uniform
        x = windows(2, window, 4)
        assert torch.allclose(model(x), tinyhar_reference(model, x), atol=1e-5)


def test_time_axis_after_convolutions() -> None:
    assert DeepConvLSTM.temporal_length(50) == 18
    assert TinyHAR.temporal_length(50) == 1  # 50 -> 42 -> 17 -> 9 -> 1: the axis collapses
    assert TinyHAR.temporal_length(100) == 13
    assert minimum_window("deepconvlstm") == 33 and minimum_window("tinyhar") == 49
    model = build_model("tinyhar", 3, 9)
    maps = windows(2, 50, 3).unsqueeze(1)
    for block in model.conv_blocks:
        maps = block(maps)
    assert maps.shape == (2, 20, 1, 3)


@pytest.mark.parametrize("name", NAMES)
def test_shortest_accepted_window_runs(name: str) -> None:
    shortest = minimum_window(name)
    model = build_model(name, 2, 3, window=shortest)
    assert model(windows(2, shortest, 2)).shape == (2, 3)
    with pytest.raises(ModelConfigError, match=f"window >= {shortest}"):
        build_model(name, 2, 3, window=shortest - 1)


# ----- head_bias=False ------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_bias_free_head(name: str) -> None:
    with_bias = build_model(name, 3, 9, seed=5)
    model = build_model(name, 3, 9, head_bias=False, seed=5)
    assert model.head.bias is None and not model.head_bias
    assert HEAD_BIAS_KEY not in model.state_dict()
    assert list(model.state_dict())[-1] == HEAD_WEIGHT_KEY
    assert count_parameters(with_bias) - count_parameters(model) == 9
    # The bias never enters the random stream, so all other weights coincide.
    for key, value in model.state_dict().items():
        assert torch.equal(value, with_bias.state_dict()[key]), key
    assert model(windows(2, 50, 3)).shape == (2, 9)


# ----- seeded initialisation ------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_weights_different_seed_different(name: str) -> None:
    first = build_model(name, 3, 9, seed=11).state_dict()
    second = build_model(name, 3, 9, seed=11).state_dict()
    other = build_model(name, 3, 9, seed=12).state_dict()
    assert first.keys() == second.keys() == other.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    for key in initialised_weights(build_model(name, 3, 9)):
        assert not torch.equal(first[key], other[key]), key


@pytest.mark.parametrize("name", NAMES)
def test_building_neither_reads_nor_moves_the_global_rng(name: str) -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    model_a = build_model(name, 3, 9, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(999)
    model_b = build_model(name, 3, 9, seed=7)
    for key, value in model_a.state_dict().items():
        assert torch.equal(value, model_b.state_dict()[key]), key


@pytest.mark.parametrize("name", NAMES)
def test_init_untrained_restores_a_trained_model(name: str) -> None:
    model = build_model(name, 3, 9, seed=21).train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        F.cross_entropy(model(windows(8, 50, 3)), labels(8, 9)).backward()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)  # every parameter moved, BatchNorm statistics updated by the forward
    init_untrained(model, 21)
    fresh = build_model(name, 3, 9, seed=21).state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, fresh[key]), key


@pytest.mark.parametrize("name", NAMES)
def test_init_statistics(name: str) -> None:
    model = build_model(name, 12, 19, seed=0)
    for param_name, p in model.named_parameters():
        if "bias" in param_name:
            assert torch.count_nonzero(p) == 0, param_name
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            assert torch.all(module.weight == 1) and torch.all(module.running_var == 1)
            assert torch.count_nonzero(module.running_mean) == 0
    if name == "tinyhar":
        assert model.channel_interaction.gamma.item() == 0.0

    weights = initialised_weights(model)
    standardised = []
    for param_name, w in weights.items():
        std = xavier_std(w)
        if w.numel() >= 2000:  # per tensor: mean 0, Glorot standard deviation
            assert abs(w.mean().item()) < 0.1 * std, param_name
            assert w.std().item() == pytest.approx(std, rel=0.1), param_name
        standardised.append((w / std).flatten())
    pooled = torch.cat(standardised)
    assert pooled.std().item() == pytest.approx(1.0, rel=0.02)
    kurtosis = (pooled**4).mean().item() / pooled.var().item() ** 2
    assert kurtosis == pytest.approx(3.0, abs=0.15)  # normal (3), not uniform (1.8)


def test_init_untrained_refuses_unknown_parameter_owners() -> None:
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(3))

    with pytest.raises(TypeError, match="Scaled"):
        init_untrained(nn.Sequential(nn.Linear(3, 3), Scaled()), 0)


# ----- bad configurations and inputs ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "resnet"}, r"unknown model name 'resnet'; expected one of 'deepconvlstm'"),
        ({"in_channels": 0}, r"in_channels=0 is invalid; expected an integer >= 1"),
        ({"in_channels": True}, r"in_channels=True is invalid"),
        ({"in_channels": 2.0}, r"in_channels=2.0 is invalid"),
        ({"num_classes": 1}, r"num_classes=1 is invalid; expected an integer >= 2"),
        ({"window": 32}, r"window=32 is too short for deepconvlstm.*window >= 33"),
        ({"name": "tinyhar", "window": 48}, r"window=48 is too short for tinyhar.*window >= 49"),
        ({"seed": -1}, r"seed=-1 is invalid; expected an integer in \[0, 2\*\*64 - 1\]"),
        ({"head_bias": "no"}, r"head_bias='no' is invalid; expected True or False"),
    ],
)
def test_build_model_rejects_bad_configurations(kwargs: dict, message: str) -> None:
    arguments = {"name": "deepconvlstm", "in_channels": 3, "num_classes": 9, **kwargs}
    with pytest.raises(ModelConfigError, match=message) as raised:
        build_model(**arguments)
    assert isinstance(raised.value, ValueError)


def test_numpy_integers_are_accepted() -> None:
    np = pytest.importorskip("numpy")
    model = build_model("tinyhar", np.int64(3), np.int64(9), window=np.int64(50), seed=np.uint64(5))
    assert (model.in_channels, model.num_classes, model.window) == (3, 9, 50)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.zeros(2, 50, 4), r"shape \[batch, 50, 3\].*got a tensor of shape \[2, 50, 4\]"),
        (torch.zeros(2, 40, 3), r"got a tensor of shape \[2, 40, 3\]"),
        (torch.zeros(50, 3), r"got a tensor of shape \[50, 3\]"),
        (torch.zeros(2, 50, 3, dtype=torch.float64), r"expects torch.float32 windows"),
    ],
)
@pytest.mark.parametrize("name", NAMES)
def test_forward_rejects_mismatched_inputs(name: str, x: torch.Tensor, message: str) -> None:
    model = build_model(name, 3, 9)
    with pytest.raises(ModelInputError, match=message):
        model(x)


def test_har_model_is_the_common_base() -> None:
    for name in NAMES:
        assert isinstance(build_model(name, 3, 9), HARModel)
