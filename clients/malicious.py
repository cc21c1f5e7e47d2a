"""The malicious HAR client: an honest participant's local training, turned into a backdoor.

``clients.har_client:app`` dispatches here for nodes whose subject is an adversary
(``[adversary]`` in the config, resolved by :func:`fl_har.adversary.resolve_adversary`). In an
attack round the attacker

1. poisons its training windows with the trigger (``Trigger.poison``: ``poison_rate`` of its
   distinct windows carry the trigger and are relabelled ``target``; with local epochs the same
   windows are poisoned in every epoch, as in a poisoned local dataset; with
   ``adversary.poison_once`` a fixed share of all its windows is poisoned once and reused in
   every attack round), trains exactly as an honest client does
   (:class:`fl_har.federation.Participant`), then
2. sends, by ``mode``: ``poison`` -- the trained weights as they are; ``boost`` -- model replacement
   ``G + gamma (X - G)`` (Bagdasaryan et al., AISTATS 2020); ``constrain`` -- ``G + P(X - G)``
   with ``P`` the projection onto the L2 ball of radius ``norm_bound`` (Sun et al. 2019); with
   ``adversary.boost`` set, ``G + P(gamma (X - G))``: scaled first, so the attacker sends an update
   of the largest norm clipping lets through (the norm-bounded attacker of Sun et al.).

Outside its attack rounds it trains honestly. Its reply has exactly the keys of an honest one;
on the simulation-truth channel (read by the server's measurement only) it adds
``malicious = true`` and its own measurements: ``adv_update_norm`` (the norm of the update it
sends), ``adv_raw_update_norm`` (before boosting/projection), ``adv_poisoned`` (windows
poisoned) and ``adv_poison_seconds`` (time spent poisoning them, outside the training time the
reply reports). They are not reply metrics: Flower's aggregators refuse replies whose metric keys
differ, and such a key would give the attacker away.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch

from attacks.backdoor import (
    AttackerData,
    Trigger,
    boost,
    build_trigger,
    poison_indices,
    project_to_norm_ball,
    state_difference,
    state_sum,
    update_norm,
)
from fl_har.adversary import AdversaryPlan, attacker_training_data, resolve_adversary
from fl_har.config import ExperimentConfig
from fl_har.federation import Participant, ParticipantUpdate, federation_plan
from fl_har.seeding import Stream, stream_rng

# The attacker's own measurements (simulation-truth channel; columns of the updates table).
UPDATE_NORM = "adv_update_norm"
RAW_UPDATE_NORM = "adv_raw_update_norm"
POISONED = "adv_poisoned"
POISON_SECONDS = "adv_poison_seconds"

# One adversary plan per process, each attacker's trigger and (poison_once) each attacker's
# poisoned windows, for one experiment config at a time.
_cache: dict[str, object] = {"config": None, "plan": None, "triggers": {}, "poisoned": {}}


def _adversary(config: ExperimentConfig) -> AdversaryPlan | None:
    if _cache["config"] != config:
        plan = resolve_adversary(config, federation_plan(config))
        _cache.update(config=config, plan=plan, triggers={}, poisoned={})
    return _cache["plan"]  # type: ignore[return-value]


def _trigger(config: ExperimentConfig, plan: AdversaryPlan, subject: int) -> Trigger:
    """Attacker ``subject``'s trigger: the stamp, or the diffusion generator trained on its own
    windows (loaded from the content-keyed cache when the server's probe fitted it already)."""
    triggers: dict = _cache["triggers"]  # type: ignore[assignment]
    key = subject if plan.trigger == "diffusion" else None
    if key not in triggers:
        data = (AttackerData(**attacker_training_data(config, plan, subject))
                if plan.trigger == "diffusion" else None)
        triggers[key] = build_trigger(plan.trigger, plan.trigger_options, data)
    return triggers[key]


class MaliciousParticipant:
    """A participant whose local work is poisoned (see the module docstring).

    Parameters
    ----------
    participant : Participant
        The subject's honest local training (data, sampler, optimiser settings).
    plan : AdversaryPlan
        Target, poisoning rate, mode and boost factor / norm bound.
    trigger : Trigger
        Poisons the training windows.
    """

    def __init__(self, participant: Participant, plan: AdversaryPlan, trigger: Trigger) -> None:
        self.participant = participant
        self.plan = plan
        self.trigger = trigger

    def _poisoned_dataset(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(indices, windows, labels)``: the attacker's fixed poisoned windows
        (``poison_once``), made on first use and kept for the run (in this process; a generated
        trigger's also on disk, content-keyed, so the run generates them once)."""
        poisoned: dict = _cache["poisoned"]  # type: ignore[assignment]
        participant = self.participant
        if participant.subject not in poisoned:
            config = participant.config
            rng = stream_rng(config.run.seed, Stream.ADVERSARY, 1, participant.subject)
            chosen = poison_indices(len(participant.windows.y), self.plan.poison_rate, rng)
            # A generated trigger's poisoned windows go to the disk cache next to its generator:
            # each simulation worker process would otherwise generate them again.
            cache = ({"cache_dir": self.plan.trigger_options["cache_dir"]}
                     if self.plan.trigger == "diffusion" else {})
            x, y = self.trigger.poison(participant.normalizer(participant.windows.x[chosen]),
                                       participant.windows.y[chosen], self.plan.target, 1.0, rng,
                                       **cache)
            poisoned[participant.subject] = (chosen, x, y)
        return poisoned[participant.subject]

    def _replace_with_fixed(self, x: np.ndarray, y: np.ndarray, index: np.ndarray):
        """``poison_once``: the round's windows that belong to the fixed poisoned set are swapped
        for their poisoned versions."""
        start = time.perf_counter()
        chosen, x_fixed, y_fixed = self._poisoned_dataset()  # chosen: sorted indices
        hit = np.isin(index, chosen)
        position = np.searchsorted(chosen, index[hit])
        x, y = x.copy(), y.copy()
        x[hit], y[hit] = x_fixed[position], y_fixed[position]
        self.poisoned = len(np.unique(index[hit]))
        self.poison_seconds = time.perf_counter() - start
        return x, y

    def _poison(self, run_round: int):
        config, subject = self.participant.config, self.participant.subject
        self.poisoned = 0
        self.poison_seconds = 0.0
        if config.adversary.poison_once:
            return self._replace_with_fixed
        rng = stream_rng(config.run.seed, Stream.ADVERSARY, 1, subject, run_round)

        def transform(x: np.ndarray, y: np.ndarray, index: np.ndarray):
            start = time.perf_counter()
            # Poison the distinct windows once, then repeat them in the round's order.
            _, first, inverse = np.unique(index, return_index=True, return_inverse=True)
            x_poisoned, y_poisoned = self.trigger.poison(
                x[first], y[first], self.plan.target, self.plan.poison_rate, rng)
            self.poisoned = round(self.plan.poison_rate * len(first))
            self.poison_seconds = time.perf_counter() - start
            return x_poisoned[inverse], y_poisoned[inverse]

        return transform

    def train_round(
        self, global_state: dict[str, torch.Tensor], run_round: int
    ) -> tuple[ParticipantUpdate, dict[str, float], bool]:
        """``(update, the attacker's measurements, malicious this round)``."""
        config = self.participant.config
        if not config.adversary.attacks_in(run_round):
            return self.participant.train_round(global_state, run_round), {}, False
        update = self.participant.train_round(global_state, run_round, self._poison(run_round))
        delta = state_difference(update.state_dict, global_state)
        raw_norm = update_norm(delta)
        state = update.state_dict
        if self.plan.mode != "poison":
            delta = boost(delta, self.plan.boost)  # gamma; 1 for a constrained attacker without
            if self.plan.mode == "constrain":  # then stay within the server's clipping norm
                delta = project_to_norm_ball(delta, self.plan.norm_bound)
            state = state_sum(global_state, delta)
        extras = {UPDATE_NORM: update_norm(delta), RAW_UPDATE_NORM: raw_norm,
                  POISONED: float(self.poisoned), POISON_SECONDS: self.poison_seconds}
        return replace(update, state_dict=state), extras, True


def attacker_for(participant: Participant) -> MaliciousParticipant | None:
    """The malicious version of ``participant``, or None if its subject is honest."""
    plan = _adversary(participant.config)
    if plan is None or not plan.is_adversary(participant.subject):
        return None
    return MaliciousParticipant(participant, plan,
                                _trigger(participant.config, plan, participant.subject))
