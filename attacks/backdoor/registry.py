"""Building a trigger by name from plain options (the config's ``[adversary]`` keys)."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from typing import Any

from attacks.backdoor.base import BackdoorError, Trigger
from attacks.backdoor.stamp import StampTrigger

TRIGGERS = ("stamp", "diffusion")
DIFFUSION_MODULE = "attacks.backdoor.diffusion"
# What attacks.backdoor.diffusion must expose: build_trigger(options: Mapping) -> Trigger.
DIFFUSION_ENTRY = "build_trigger"


def diffusion_available() -> str:
    """'' when the diffusion trigger can be built, else the reason it cannot."""
    try:
        if importlib.util.find_spec(DIFFUSION_MODULE) is None:
            raise ImportError(f"no module {DIFFUSION_MODULE}")
        module = importlib.import_module(DIFFUSION_MODULE)
    except ImportError as exc:
        return (f"the diffusion trigger needs the diffusion generator ({DIFFUSION_MODULE}, "
                f"install the extra `fl-har[diffusion]`): {exc}")
    if not callable(getattr(module, DIFFUSION_ENTRY, None)):
        return f"{DIFFUSION_MODULE} does not provide {DIFFUSION_ENTRY}(options) -> Trigger"
    return ""


def check_trigger(name: str) -> None:
    """Raise :class:`BackdoorError` if trigger ``name`` is unknown or cannot be built here."""
    if name not in TRIGGERS:
        raise BackdoorError(f"trigger {name!r} is not one of {', '.join(TRIGGERS)}")
    if name == "diffusion":
        reason = diffusion_available()
        if reason:
            raise BackdoorError(reason)


def build_trigger(name: str, options: Mapping[str, Any]) -> Trigger:
    """The trigger ``name`` with ``options``.

    ``stamp`` reads ``channels``, ``amplitude``, ``duration``, ``position``, ``band``;
    ``diffusion`` hands every option to ``attacks.backdoor.diffusion.build_trigger``.
    """
    check_trigger(name)
    if name == "stamp":
        keys = ("channels", "amplitude", "duration", "position", "band")
        return StampTrigger(**{k: options[k] for k in keys if k in options})
    module = importlib.import_module(DIFFUSION_MODULE)
    return getattr(module, DIFFUSION_ENTRY)(options)
