"""Backdoor poisoning by malicious clients: triggers and the attack modes (numpy/torch only).

- :class:`Trigger` (protocol) and :class:`StampTrigger` (band-limited additive burst);
- :mod:`attacks.backdoor.diffusion`: the IMU-DM-CLIP-style generated trigger
  (:func:`~attacks.backdoor.diffusion.fit_diffusion_trigger`, trained on the attacker's own
  windows, :class:`AttackerData`; cached by content);
- :mod:`attacks.backdoor.modes`: :func:`boost` (model replacement) and
  :func:`project_to_norm_ball` (constrain), on flat vectors or state dicts.
"""

from attacks.backdoor.base import AttackerData, BackdoorError, Trigger, poison_indices
from attacks.backdoor.modes import (
    boost,
    cosine,
    flat_update,
    project_to_norm_ball,
    state_difference,
    state_sum,
    update_norm,
)
from attacks.backdoor.registry import TRIGGERS, build_trigger, check_trigger
from attacks.backdoor.stamp import StampTrigger

__all__ = [
    "TRIGGERS",
    "AttackerData",
    "BackdoorError",
    "StampTrigger",
    "Trigger",
    "boost",
    "build_trigger",
    "check_trigger",
    "cosine",
    "flat_update",
    "poison_indices",
    "project_to_norm_ball",
    "state_difference",
    "state_sum",
    "update_norm",
]
