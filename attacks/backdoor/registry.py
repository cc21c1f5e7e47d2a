"""Building a trigger by name from plain options (the config's ``[adversary]`` keys)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attacks.backdoor.base import AttackerData, BackdoorError, Trigger
from attacks.backdoor.stamp import StampTrigger

TRIGGERS = ("stamp", "diffusion")

# [adversary] options of the diffusion trigger -> fit_diffusion_trigger's option names.
DIFFUSION_TRAINING_OPTIONS = {"denoiser_steps": "denoiser_steps", "clip_epochs": "clip_epochs"}


def check_trigger(name: str, options: Mapping[str, Any] | None = None) -> None:
    """Raise :class:`BackdoorError` if trigger ``name`` is unknown or cannot be built here with
    ``options`` (e.g. the MiniLM text encoder asked for but not installed)."""
    if name not in TRIGGERS:
        raise BackdoorError(f"trigger {name!r} is not one of {', '.join(TRIGGERS)}")
    if name == "diffusion" and options is not None:
        from attacks.backdoor.diffusion.text import TextEncoderError, resolve_encoder

        try:
            resolve_encoder(str(options.get("text_encoder", "auto")))
        except TextEncoderError as exc:
            raise BackdoorError(str(exc)) from None


def build_trigger(
    name: str, options: Mapping[str, Any], data: AttackerData | None = None
) -> Trigger:
    """The trigger ``name`` with ``options``.

    ``stamp`` reads ``channels``, ``amplitude``, ``duration``, ``position``, ``band``.
    ``diffusion`` is trained on the attacker's own windows ``data`` (required) with
    :func:`attacks.backdoor.diffusion.fit_diffusion_trigger`, reading ``cache_dir``,
    ``text_encoder``, ``denoiser_steps`` and ``clip_epochs``; a trained generator is loaded from
    ``cache_dir`` when the same data, seed and options were fitted before.
    """
    check_trigger(name, options)
    if name == "stamp":
        keys = ("channels", "amplitude", "duration", "position", "band")
        return StampTrigger(**{k: options[k] for k in keys if k in options})
    if data is None:
        raise BackdoorError(
            "trigger 'diffusion' is trained on the attacker's own windows: pass them as data")
    from attacks.backdoor.diffusion import fit_diffusion_trigger

    training = {fit_name: options[key] for key, fit_name in DIFFUSION_TRAINING_OPTIONS.items()
                if key in options}
    return fit_diffusion_trigger(
        data.x, data.y, data.class_names, target=data.target, seed=data.seed,
        cache_dir=options.get("cache_dir"), text_encoder=str(options.get("text_encoder", "auto")),
        progress=options.get("progress"), **training,
    )
