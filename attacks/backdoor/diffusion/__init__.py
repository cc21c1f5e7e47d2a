"""Generated IMU backdoor triggers after IMU-DM-CLIP (arXiv 2606.22837): a text-conditioned
diffusion model with CLIP guidance renders a physical trigger into HAR windows.

Entry point::

    from attacks.backdoor.diffusion import fit_diffusion_trigger
    trigger = fit_diffusion_trigger(x, y, class_names, target=1, seed=0, cache_dir="cache")
    x_poisoned, y_poisoned = trigger.poison(x, y, target=1, rate=0.1, rng=rng)
    x_triggered = trigger.apply(x_test, rng)

Design and choices: :mod:`attacks.backdoor.diffusion.trigger`. Imports numpy, torch, diffusers.
"""

from attacks.backdoor.diffusion.text import (
    DEFAULT_TRIGGER_PHRASE,
    TEXT_ENCODERS,
    TextEncoderError,
    activity_prompt,
    encode_prompts,
    minilm_available,
    trigger_prompt,
)
from attacks.backdoor.diffusion.trigger import (
    DiffusionTrigger,
    DiffusionTriggerConfig,
    DiffusionTriggerError,
    fit_diffusion_trigger,
)

__all__ = [
    "DEFAULT_TRIGGER_PHRASE",
    "TEXT_ENCODERS",
    "DiffusionTrigger",
    "DiffusionTriggerConfig",
    "DiffusionTriggerError",
    "TextEncoderError",
    "activity_prompt",
    "encode_prompts",
    "fit_diffusion_trigger",
    "minilm_available",
    "trigger_prompt",
]
