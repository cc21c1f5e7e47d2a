"""Backdoor poisoning: stamp trigger, attack modes, [adversary] config, malicious clients, ASR."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from attacks.backdoor import (
    BackdoorError,
    StampTrigger,
    Trigger,
    boost,
    build_trigger,
    project_to_norm_ball,
    update_norm,
)
from attacks.backdoor.diffusion import minilm_available
from clients.har_client import app as client_app
from fl_har.adversary import resolve_adversary
from fl_har.config import ConfigError, from_flat, load_config, to_flat
from fl_har.evaluation import predict
from fl_har.federation import empty_model, federation_plan
from fl_har.metrics import attack_success_rate
from fl_har.results import RunStore
from fl_har_app.run_cmd import check_adversary
from strategies.backdoor import update_statistics
from strategies.local_grid import LocalGrid
from strategies.server_app import _held_windows, run_server

RNG = np.random.default_rng(0)


def windows(n=40, t=50, c=3, scale=(1.0, 2.0, 0.5)):
    return (RNG.normal(size=(n, t, c)) * np.asarray(scale)).astype(np.float32)


# --- stamp trigger -------------------------------------------------------------------------------

def test_stamp_adds_a_smooth_burst_of_the_given_std_units_on_its_channels_only():
    x = windows()
    trigger = StampTrigger(channels=(1,), amplitude=2.0, duration=20, position=5,
                           channel_std=(1.0, 2.0, 0.5))
    assert isinstance(trigger, Trigger)
    out = trigger.apply(x, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == np.float32
    delta = out - x
    np.testing.assert_array_equal(delta[..., [0, 2]], 0)  # other channels untouched
    np.testing.assert_array_equal(delta[:, :5, 1], 0)  # only inside [position, position+duration)
    np.testing.assert_array_equal(delta[:, 25:, 1], 0)
    assert np.abs(delta[:, :, 1]).max() == pytest.approx(2.0 * 2.0, rel=1e-5)  # 2 stds of 2.0
    assert np.allclose(delta, delta[:1], atol=1e-5)  # the same stamp on every window
    wave = trigger.waveform()
    assert wave[0] == pytest.approx(0, abs=1e-12) and wave[-1] == pytest.approx(0, abs=1e-12)
    assert abs(wave[1]) < 0.05 and abs(wave[-2]) < 0.05  # eased in and out: no step edge


def test_stamp_energy_stays_in_its_band_plus_the_taper_main_lobe():
    trigger = StampTrigger(duration=40, band=(0.15, 0.25))
    spectrum = np.abs(np.fft.rfft(trigger.waveform(), n=4096)) ** 2
    freqs = np.fft.rfftfreq(4096)
    lobe = 2.0 / 40
    inside = (freqs >= 0.15 - lobe) & (freqs <= 0.25 + lobe)
    assert spectrum[inside].sum() / spectrum.sum() > 0.99
    assert spectrum[freqs < 0.05].sum() / spectrum.sum() < 1e-3  # no drift / offset


def test_stamp_amplitude_is_measured_in_the_windows_std_when_not_given():
    x = windows(scale=(3.0, 3.0, 3.0))
    delta = StampTrigger(channels=(0,), amplitude=1.0).apply(x) - x
    std = x[..., 0].std()
    assert np.abs(delta[..., 0]).max() == pytest.approx(std, rel=1e-4)


def test_poison_replaces_round_rate_n_windows_labelled_target():
    x, y = windows(n=37), RNG.integers(0, 5, 37)
    trigger = StampTrigger(channels=(0, 2))
    xp, yp = trigger.poison(x, y, target=4, rate=0.3, rng=np.random.default_rng(1))
    changed = np.flatnonzero(np.any(xp != x, axis=(1, 2)))
    assert len(changed) == round(0.3 * 37) == 11
    assert (yp[changed] == 4).all()
    rest = np.setdiff1d(np.arange(37), changed)
    np.testing.assert_array_equal(yp[rest], y[rest])
    np.testing.assert_allclose(xp[changed], trigger.apply(x)[changed], atol=1e-6)
    again = trigger.poison(x, y, 4, 0.3, np.random.default_rng(1))
    np.testing.assert_array_equal(again[0], xp)  # the rng alone chooses
    assert trigger.poison(x, y, 4, 0.0, np.random.default_rng(1))[1].tolist() == y.tolist()
    with pytest.raises(BackdoorError, match="rate"):
        trigger.poison(x, y, 4, 1.5, np.random.default_rng(1))


def test_stamp_rejects_channels_and_positions_that_do_not_fit():
    with pytest.raises(BackdoorError, match="channels"):
        StampTrigger(channels=(3,)).apply(windows())
    with pytest.raises(BackdoorError, match="position"):
        StampTrigger(duration=20, position=40).apply(windows())
    with pytest.raises(BackdoorError, match="band"):
        StampTrigger(band=(0.3, 0.2))


# --- attack modes --------------------------------------------------------------------------------

def test_boost_scales_exactly_and_leaves_integer_buffers():
    vec = np.array([1.0, -2.0, 0.5])
    np.testing.assert_array_equal(boost(vec, 4.0), [4.0, -8.0, 2.0])
    state = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(7)}
    out = boost(state, 3.0)
    assert torch.equal(out["w"], torch.tensor([3.0, 6.0])) and int(out["n"]) == 7
    with pytest.raises(BackdoorError):
        boost(vec, 0.0)


def test_constrain_projects_onto_the_ball_and_leaves_small_updates_alone():
    vec = np.array([3.0, 4.0])  # norm 5
    np.testing.assert_allclose(project_to_norm_ball(vec, 2.5), [1.5, 2.0])
    np.testing.assert_array_equal(project_to_norm_ball(vec, 5.0), vec)
    np.testing.assert_array_equal(project_to_norm_ball(vec, 10.0), vec)
    state = {"a": torch.tensor([3.0]), "b": torch.tensor([4.0]), "n": torch.tensor(2)}
    projected = project_to_norm_ball(state, 1.0)
    assert update_norm(projected) == pytest.approx(1.0)
    assert float(projected["a"]) == pytest.approx(0.6) and int(projected["n"]) == 2


# --- ASR and update statistics -------------------------------------------------------------------

def test_attack_success_rate_counts_only_non_target_sources():
    y_true = np.array([0, 0, 1, 2, 3, 3])
    pred = np.array([3, 0, 3, 2, 3, 3])
    assert attack_success_rate(pred, y_true, 3) == pytest.approx(2 / 4)
    assert attack_success_rate(pred, y_true, 3, exclude=(0,)) == pytest.approx(1 / 2)
    assert np.isnan(attack_success_rate(pred[4:], y_true[4:], 3))


def test_update_statistics_compare_each_update_with_the_other_benign_ones():
    sent = {"w": torch.zeros(2)}
    replies = [
        (0, {"w": torch.tensor([1.0, 0.0])}, None),
        (1, {"w": torch.tensor([1.0, 1.0])}, None),
        (2, {"w": torch.tensor([0.0, -3.0])}, _truth(True)),
    ]
    stats = update_statistics(sent, replies)
    assert stats[2]["update_norm"] == pytest.approx(3.0) and stats[2]["malicious"]
    # malicious vs mean of benign (1, 0.5): cos = -1.5 / (3 * sqrt(1.25))
    assert stats[2]["cosine_to_benign_mean"] == pytest.approx(-1.5 / (3 * np.sqrt(1.25)))
    assert stats[0]["cosine_to_benign_mean"] == pytest.approx(1 / np.sqrt(2))  # vs (1, 1) only
    assert stats[2]["adv_update_norm"] == 3.0


def _truth(malicious):
    from protocol import SimulationTruth

    return SimulationTruth(np.zeros(2, np.int64), malicious=malicious,
                           attack_metrics={"adv_update_norm": 3.0})


# --- config --------------------------------------------------------------------------------------

SYNTH = ["data.dataset=synthetic", "data.synthetic_subjects=4", "data.clients=1-3",
         "data.eval_subjects=4", "run.regime=train", "client.batch_size=20",
         "attacks.names=ebi"]


def config(*overrides):
    return load_config(None, [*SYNTH, *overrides])


def test_adversary_config_round_trips_and_resolves_against_the_dataset():
    c = config("adversary.clients=2", 'adversary.target="activity_3"', 'adversary.rounds="2-3,5"',
               "adversary.stamp_channels=[0,2]", "adversary.mode=boost")
    assert from_flat(to_flat(c)) == c
    assert c.adversary.attack_rounds() == (2, 3, 5) and not c.adversary.attacks_in(4)
    plan = resolve_adversary(c, federation_plan(c))
    assert plan.subjects == (2,) and plan.target == 3 and plan.target_name == "activity_3"
    assert plan.boost == 3.0  # auto: 3 clients per round / server.lr 1
    assert resolve_adversary(config(), federation_plan(config())) is None  # default: no attack
    drawn = resolve_adversary(config("adversary.fraction=0.5"), federation_plan(config()))
    assert len(drawn.subjects) == 2 and set(drawn.subjects) <= {1, 2, 3}
    assert drawn == resolve_adversary(config("adversary.fraction=0.5"), federation_plan(config()))


@pytest.mark.parametrize("override, message", [
    ("adversary.poison_rate=1.5", "poison_rate must be in"),
    ("adversary.fraction=-0.1", "fraction must be in"),
    ('adversary.rounds="0-2"', "rounds count from 1"),
    ('adversary.rounds="x"', "not a subject id or range"),
    ("adversary.mode=replace", "adversary.mode"),
    ("adversary.mode=constrain", "norm_bound > 0"),
    ("adversary.stamp_duration=60", "stamp_duration"),
    ("adversary.stamp_band_high=0.7", "stamp_band"),
])
def test_bad_adversary_settings_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        config("adversary.clients=1", override)


def test_a_stamp_longer_than_the_window_is_refused_only_when_a_stamp_attack_runs():
    with pytest.raises(ConfigError, match="stamp_duration"):
        config("adversary.clients=1", "data.window=20")  # default stamp: 25 samples
    assert config("data.window=20").adversary.stamp_duration == 25  # no attacker: no stamp


def test_adversary_needs_the_train_regime_and_one_way_to_name_attackers():
    with pytest.raises(ConfigError, match="run.regime"):
        config("adversary.clients=1", "run.regime=frozen")
    with pytest.raises(ConfigError, match="not both"):
        config("adversary.clients=1", "adversary.fraction=0.5")


@pytest.mark.parametrize("override, message", [
    ('adversary.target="jumping"', "not a class of the dataset"),
    ("adversary.target=9", "no class index 9"),
    ("adversary.clients=4", r"subjects \[4\] are not clients"),
    ("adversary.stamp_channels=[1,3]", r"channels \[3\] do not exist"),
])
def test_settings_that_need_the_dataset_fail_at_the_front_door(override, message):
    c = config("adversary.clients=1", override)
    with pytest.raises(ConfigError, match=message):
        check_adversary(c, federation_plan(c))


def test_the_diffusion_trigger_checks_its_text_encoder_and_needs_the_attackers_data():
    with pytest.raises(ConfigError, match="text_encoder: expected one of auto, hashed, minilm"):
        check_adversary(config("adversary.clients=1", "adversary.trigger=diffusion",
                               "adversary.diffusion_text_encoder=bert"))
    if not minilm_available():  # the extra is optional: asking for it without it is an error
        with pytest.raises(ConfigError, match=r"fl-har\[diffusion\]"):
            check_adversary(config("adversary.clients=1", "adversary.trigger=diffusion",
                                   "adversary.diffusion_text_encoder=minilm"))
    with pytest.raises(ConfigError, match="diffusion_denoiser_steps"):
        config("adversary.clients=1", "adversary.diffusion_denoiser_steps=0")
    with pytest.raises(BackdoorError, match="attacker's own windows"):
        build_trigger("diffusion", {"text_encoder": "hashed"})
    assert isinstance(build_trigger("stamp", {"amplitude": 2.0}), StampTrigger)


# --- malicious clients in a run ------------------------------------------------------------------

# A setting in which one data-poisoning attacker of two clients plants a real backdoor in 4 rounds
# (seed 0, measured: clean accuracy 0.91, macro-F1 0.87, ASR 0.89 in round 4).
ATTACK = ["data.clients=1-2", "data.normalization=standardize", "client.lr=0.2",
          "client.local_epochs=2", "run.rounds=4", "adversary.target=3",
          "adversary.poison_rate=0.4", "adversary.stamp_amplitude=3"]


def _run(tmp_path, c, name="run"):
    store = RunStore.create(tmp_path / name, c.to_dict(), seed=0)
    assert run_server(LocalGrid(client_app, 4), c, store) == "finished"
    return store


def _final_predictions(c, store, trigger=None):
    _, state = store.load_checkpoint()
    model = empty_model(c, 3, 6)
    model.load_state_dict(state)
    x, y = _held_windows(c, (4,))
    if trigger is not None:
        x = trigger.apply(x)
    return predict(model, x)[0], y


def test_without_an_attacker_the_trigger_does_not_steer_the_model(tmp_path):
    c = config(*ATTACK)
    store = _run(tmp_path, c)
    assert "asr" not in store.round_table()  # nothing to measure without an adversary
    pred, y = _final_predictions(c, store, StampTrigger(amplitude=3.0))
    # the same trigger, no backdoor: low ASR (measured 0.10; 0.89 with the attacker, Ray test)
    assert attack_success_rate(pred, y, 3) < 0.25


def test_a_boosting_attacker_sends_gamma_times_its_update_and_is_recorded(tmp_path):
    c = config(*ATTACK, "run.rounds=2", "client.local_epochs=1", "adversary.clients=1",
               "adversary.mode=boost", 'adversary.rounds="2"')
    store = _run(tmp_path, c)
    rounds = store.round_table().set_index("round")
    assert rounds.loc[1, "asr"] == pytest.approx(0.0, abs=0.05)  # honest round: no backdoor yet
    assert rounds[["asr", "asr_no_null"]].apply(lambda v: v.between(0, 1)).all().all()
    updates = store.update_table()
    bad = updates[updates["malicious"] == 1]
    assert list(bad["round"]) == [2] and list(bad["subject"]) == [1]
    # model replacement: gamma = n / eta = 2 clients / server lr 1
    assert float(bad["adv_update_norm"].iloc[0]) == pytest.approx(
        2 * float(bad["adv_raw_update_norm"].iloc[0]), rel=1e-5)
    assert float(bad["update_norm"].iloc[0]) == pytest.approx(
        float(bad["adv_update_norm"].iloc[0]), rel=1e-4)  # what the server measured
    assert updates["cosine_to_benign_mean"].dropna().between(-1, 1).all()
    assert updates.loc[updates["malicious"] == 0, "adv_update_norm"].isna().all()


def test_a_diffusion_attacker_poisons_with_the_generator_trained_on_its_own_windows(tmp_path):
    """The probe trains attacker 1's generator (tiny settings) before round 1; the attacker then
    loads the same generator from the content-keyed cache and poisons with it."""
    cache = tmp_path / "triggers"
    c = config(*ATTACK, "run.rounds=2", "client.local_epochs=1", "adversary.clients=1",
               "adversary.trigger=diffusion", "adversary.diffusion_text_encoder=hashed",
               "adversary.diffusion_denoiser_steps=20", "adversary.diffusion_clip_epochs=1",
               f"adversary.diffusion_cache={cache.as_posix()!r}")
    store = _run(tmp_path, c)
    assert len(list(cache.glob("diffusion-trigger-*.pt"))) == 1  # fitted once, for subject 1
    rounds = store.round_table()
    assert rounds[["asr", "asr_no_null"]].apply(lambda v: v.between(0, 1)).all().all()
    updates = store.update_table()
    bad = updates[updates["malicious"] == 1]
    assert list(bad["subject"]) == [1, 1]
    # 40 % of the windows of its epoch were generated: 88 of its 220 usable windows
    assert (bad["adv_poisoned"] == 88).all()
    # generating them takes measurable time, reported beside (not inside) the training time
    assert (bad["adv_poison_seconds"] > 0).all()
    assert updates.loc[updates["malicious"] != 1, "adv_poison_seconds"].isna().all()
    # the same config again: identical numbers (generation seeded, generator from the cache)
    again = _run(tmp_path, c, "again")
    measured = ["train_loss", "eval_accuracy", "asr", "asr_no_null"]  # not the timings
    pd.testing.assert_frame_equal(store.round_table()[measured], again.round_table()[measured])


def test_poison_once_generates_a_diffusion_attackers_windows_once_per_run_not_per_worker(
        tmp_path, monkeypatch):
    """Each simulation worker process has its own in-memory cache; the generated windows are
    also kept on disk next to the generator, so a second worker loads instead of generating."""
    from attacks.backdoor.diffusion import DiffusionTrigger
    from clients import malicious
    from fl_har.federation import Participant

    cache = tmp_path / "triggers"
    c = config(*ATTACK, "client.local_epochs=1", "adversary.clients=1", "adversary.poison_once=true",
               "adversary.trigger=diffusion", "adversary.diffusion_text_encoder=hashed",
               "adversary.diffusion_denoiser_steps=20", "adversary.diffusion_clip_epochs=1",
               f"adversary.diffusion_cache={cache.as_posix()!r}")

    def fresh_worker():
        monkeypatch.setattr(malicious, "_cache", {"config": None, "plan": None, "triggers": {},
                                                  "poisoned": {}})
        return malicious.attacker_for(Participant(c, 1))

    attacker = fresh_worker()
    first = attacker._poisoned_dataset()
    assert len(list(cache.glob("poisoned-*.npz"))) == 1
    # 40 % of all its windows, labelled with the target
    assert len(first[0]) == round(0.4 * len(attacker.participant.windows.y))
    assert (first[2] == 3).all()
    monkeypatch.setattr(DiffusionTrigger, "_sample", lambda *a, **k: pytest.fail("generated twice"))
    second = fresh_worker()._poisoned_dataset()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_a_constrained_attacker_sends_an_update_on_the_norm_ball(tmp_path):
    c = config(*ATTACK, "run.rounds=1", "client.local_epochs=1", "adversary.clients=2",
               "adversary.mode=constrain", "adversary.norm_bound=0.1")
    updates = _run(tmp_path, c).update_table().set_index("subject")
    assert updates.loc[2, "adv_raw_update_norm"] > 0.1  # it had to be projected
    assert updates.loc[2, "update_norm"] == pytest.approx(0.1, rel=1e-4)  # as the server saw it
    assert updates.loc[1, "update_norm"] > 0.1 and not updates.loc[1, "malicious"]


def test_constrain_and_scale_spends_the_whole_norm_budget(tmp_path):
    base = (*ATTACK, "run.rounds=1", "client.local_epochs=1", "adversary.clients=2",
            "adversary.mode=constrain")
    raw = _run(tmp_path, config(*base, "adversary.norm_bound=1000")).update_table()
    raw_norm = float(raw.set_index("subject").loc[2, "update_norm"])
    assert raw_norm < 1000  # inside the ball: sent as trained
    bound = 3 * raw_norm
    plain = _run(tmp_path, config(*base, f"adversary.norm_bound={bound}"), "plain")
    scaled = _run(tmp_path, config(*base, f"adversary.norm_bound={bound}", "adversary.boost=10"),
                  "scaled")
    assert plain.update_table().set_index("subject").loc[2, "update_norm"] == pytest.approx(
        raw_norm, rel=1e-5)  # without a factor, a small update is left alone
    sent = scaled.update_table().set_index("subject").loc[2]
    assert sent["update_norm"] == pytest.approx(bound, rel=1e-4)  # 10 x raw, cut back to bound
    assert sent["adv_raw_update_norm"] == pytest.approx(raw_norm, rel=1e-5)


# --- end to end on Ray ---------------------------------------------------------------------------

@pytest.mark.slow
def test_stamp_attacker_on_ray_plants_a_backdoor_without_breaking_the_clean_task(tmp_path):
    sets = [arg for item in [*SYNTH, *ATTACK, "adversary.clients=1", "adversary.mode=poison",
                             "simulation.cpus_per_client=1"]
            for arg in ("--set", item)]
    env = dict(os.environ, COLUMNS="120")
    result = subprocess.run(
        [sys.executable, "-m", "fl_har_app", "run", *sets, "--out", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = tmp_path / "hapt-default"
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "finished"
    rounds = pd.read_parquet(run_dir / "rounds.parquet").set_index("round")
    assert rounds.loc[4, "asr"] > 0.8  # vs 0.10 for the same trigger without attacker (above)
    assert rounds.loc[4, "eval_macro_f1"] > 0.7  # the clean task is still learned
    updates = pd.read_parquet(run_dir / "updates.parquet")
    assert set(updates.loc[updates["malicious"] == 1, "subject"]) == {1}
    assert (updates.loc[updates["malicious"] == 1, "adv_poisoned"] > 0).all()


class _CountingStamp(StampTrigger):
    """The stamp trigger, counting the windows it is asked to poison."""

    def __init__(self):
        super().__init__(amplitude=3.0)
        self.asked = 0

    def poison(self, x, y, target, rate, rng):
        self.asked += len(x)
        return super().poison(x, y, target, rate, rng)


def test_poison_once_poisons_a_fixed_share_of_the_windows_once_and_reuses_it(monkeypatch):
    from clients import malicious
    from fl_har.federation import Participant

    c = config(*ATTACK, "client.local_epochs=1", "adversary.clients=1", "adversary.poison_once=true")
    assert from_flat(to_flat(c)).adversary.poison_once
    plan = resolve_adversary(c, federation_plan(c))
    participant = Participant(c, 1)
    trigger = _CountingStamp()
    monkeypatch.setattr(malicious, "_cache", {"config": c, "plan": plan, "triggers": {},
                                              "poisoned": {}})
    seen = []
    for run_round in (1, 2, 3):
        attacker = malicious.MaliciousParticipant(participant, plan, trigger)
        index = participant.batch_index(run_round)
        x = participant.normalizer(participant.windows.x[index])
        x_out, y_out = attacker._poison(run_round)(x, participant.windows.y[index], index)
        changed = np.any(x_out != x, axis=(1, 2))
        seen.append((set(index[changed].tolist()), {int(i): x_out[k] for k, i in
                                                    enumerate(index) if changed[k]}))
        assert (y_out[changed] == plan.target).all() and attacker.poisoned == changed.sum()
    n = len(participant.windows.y)
    assert trigger.asked == round(0.4 * n)  # generated once, for the whole run
    # the same windows in every round (those of the round's usable windows), poisoned identically
    first, later = seen[0], seen[2]
    common = first[0] & later[0]
    assert len(common) > 0.8 * len(first[0])
    assert all(np.array_equal(first[1][i], later[1][i]) for i in common)
    # without poison_once every round draws its own share
    c2 = config(*ATTACK, "client.local_epochs=1", "adversary.clients=1")
    malicious._cache.update(config=c2, plan=plan, triggers={}, poisoned={})
    index = participant.batch_index(1)
    x = participant.normalizer(participant.windows.x[index])
    fresh = malicious.MaliciousParticipant(Participant(c2, 1), plan, _CountingStamp())
    x_a, _ = fresh._poison(1)(x, participant.windows.y[index], index)
    x_b, _ = fresh._poison(2)(x, participant.windows.y[index], index)
    assert not np.array_equal(np.any(x_a != x, axis=(1, 2)), np.any(x_b != x, axis=(1, 2)))
