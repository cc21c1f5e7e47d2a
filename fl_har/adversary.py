"""The backdoor adversary of a run, resolved against its dataset (plain library, no Flower).

:func:`resolve_adversary` turns the ``[adversary]`` config into an :class:`AdversaryPlan` -- which
subjects are malicious, the target class index, the trigger's options, the boost factor -- and
raises :class:`~fl_har.config.ConfigError` for everything that needs the dataset to check: an
unknown target class, attackers that are not clients, trigger channels the dataset lacks. The
front door calls it before Ray starts; the server and the malicious clients call it again to get
the same plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fl_har.config import ConfigError, ExperimentConfig
from fl_har.federation import FederationPlan, Participant, dataset_for
from fl_har.seeding import Stream, derive_seed, stream_rng

# Class 0 is NULL in every fl-har dataset (fl_har.data.dataset): the "no null" ASR leaves
# windows of this class out of its denominator.
NULL_CLASSES = (0,)


@dataclass(frozen=True)
class AdversaryPlan:
    """Who attacks, with what, towards which class."""

    subjects: tuple[int, ...]
    target: int
    target_name: str
    trigger: str
    trigger_options: dict[str, Any] = field(compare=False)
    mode: str
    poison_rate: float
    boost: float  # the factor actually used (auto resolved)
    norm_bound: float

    def is_adversary(self, subject: int) -> bool:
        return subject in self.subjects


def target_index(target: str, class_names: tuple[str, ...]) -> int:
    """The class index of ``target`` (a class name, or an index written as digits)."""
    if target in class_names:
        return class_names.index(target)
    if target.lstrip("-").isdigit():
        index = int(target)
        if 0 <= index < len(class_names):
            return index
        raise ConfigError(
            f"adversary.target = {target}: no class index {index}; the dataset has classes "
            f"0..{len(class_names) - 1}"
        )
    raise ConfigError(
        f"adversary.target = {target!r} is not a class of the dataset; classes: "
        f"{', '.join(class_names)} (or an index 0..{len(class_names) - 1})"
    )


def adversary_subjects(
    config: ExperimentConfig, clients: tuple[int, ...], owners: Mapping[int, int] | None = None
) -> tuple[int, ...]:
    """The malicious clients: ``adversary.clients``, or a seeded draw of ``fraction`` of the
    clients (at least one; stream ``ADVERSARY``, key 0; fixed for the whole run).

    With clients that are units of subjects (``owners``: unit -> subject), a subject id in
    ``adversary.clients`` makes every one of its units malicious (a unit id names one unit)."""
    adv = config.adversary
    if adv.clients:
        owners = owners or {}
        chosen_clients = tuple(c for c in clients if c in adv.clients
                               or owners.get(c) in adv.clients)
        named = set(chosen_clients) | {owners.get(c) for c in chosen_clients}
        outside = sorted(set(adv.clients) - named)
        if outside:
            raise ConfigError(
                f"adversary.clients: subjects {outside} are not clients of this run "
                f"(clients: {', '.join(map(str, sorted({owners.get(c, c) for c in clients})))})"
            )
        return tuple(sorted(chosen_clients))
    if not adv.fraction:
        return ()
    count = max(1, round(adv.fraction * len(clients)))
    chosen = stream_rng(config.run.seed, Stream.ADVERSARY, 0).choice(
        len(clients), size=count, replace=False)
    return tuple(sorted(clients[i] for i in chosen))


def trigger_options(config: ExperimentConfig) -> dict[str, Any]:
    """The options handed to ``attacks.backdoor.build_trigger``."""
    adv = config.adversary
    return {
        "channels": tuple(adv.stamp_channels),
        "amplitude": adv.stamp_amplitude,
        "duration": adv.stamp_duration,
        "position": adv.stamp_position,
        "band": (adv.stamp_band_low, adv.stamp_band_high),
        "window": config.data.window,
        "seed": config.run.seed,
        "cache_dir": diffusion_cache(config),
        "text_encoder": adv.diffusion_text_encoder,
        "denoiser_steps": adv.diffusion_denoiser_steps,
        "clip_epochs": adv.diffusion_clip_epochs,
    }


def diffusion_cache(config: ExperimentConfig) -> str:
    """Folder of trained diffusion triggers (content-keyed files, shared by runs)."""
    if config.adversary.diffusion_cache:
        return config.adversary.diffusion_cache
    return str(Path(config.run.out) / ".cache" / "diffusion-triggers")


def attacker_training_data(config: ExperimentConfig, plan: AdversaryPlan,
                           subject: int) -> dict[str, Any]:
    """What attacker ``subject`` builds a data-driven trigger from (the keyword arguments of
    ``attacks.backdoor.AttackerData``): all its windows, normalised as it trains on them, their
    labels, the class names, the target and a seed (stream ``ADVERSARY``, keys 3, subject)."""
    participant = Participant(config, subject)
    return {
        "x": participant.normalizer(participant.windows.x).astype(np.float32),
        "y": np.asarray(participant.windows.y),
        "class_names": tuple(dataset_for(config).class_names),
        "target": plan.target,
        "seed": derive_seed(config.run.seed, Stream.ADVERSARY, 3, subject),
    }


def resolve_adversary(config: ExperimentConfig, plan: FederationPlan) -> AdversaryPlan | None:
    """The run's adversary (None without one); :class:`ConfigError` for a bad ``[adversary]``."""
    adv = config.adversary
    if not adv.active:
        return None
    target = target_index(adv.target, plan.class_names)
    subjects = adversary_subjects(config, plan.clients, plan.owners)
    if adv.trigger == "stamp":
        missing = sorted(c for c in adv.stamp_channels if c >= plan.num_channels)
        if missing:
            raise ConfigError(
                f"adversary.stamp_channels: channels {missing} do not exist; the dataset has "
                f"{plan.num_channels} channels (0..{plan.num_channels - 1})"
            )
    gamma = adv.boost
    if adv.mode == "boost" and not gamma:
        # Bagdasaryan et al.: gamma = n / eta (n updates averaged, server learning rate eta)
        gamma = config.run.cohort_size(len(plan.clients)) / config.server.lr
    return AdversaryPlan(
        subjects=subjects,
        target=target,
        target_name=plan.class_names[target],
        trigger=adv.trigger,
        trigger_options=trigger_options(config),
        mode=adv.mode,
        poison_rate=adv.poison_rate,
        # poison never scales; constrain scales by a given factor before projecting
        boost=float(gamma) if adv.mode != "poison" and gamma else 1.0,
        norm_bound=adv.norm_bound,
    )
