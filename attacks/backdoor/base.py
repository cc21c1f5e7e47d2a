"""The trigger interface shared by every backdoor trigger (stamp, diffusion...).

A trigger is what turns a clean window into one that activates the backdoor. The attacker uses
:meth:`Trigger.poison` on its own training windows; the evaluation harness uses
:meth:`Trigger.apply` on held-out windows to measure the attack success rate. Windows are
``(n, T, C)`` float32 arrays, normalised as the model sees them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


class BackdoorError(ValueError):
    """A trigger or an attack mode got invalid parameters or inputs; the message names them."""


@runtime_checkable
class Trigger(Protocol):
    """A backdoor trigger (the attack surface of a malicious client)."""

    name: str

    def poison(
        self, x: np.ndarray, y: np.ndarray, target: int, rate: float, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Training-time poisoning of the attacker's windows ``x`` (n, T, C float32, normalised)
        with labels ``y``: returns ``(x', y')`` where ``round(rate * n)`` windows (chosen by
        ``rng``) are replaced by poisoned windows labelled ``target``."""
        ...

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Test-time: the same windows carrying the trigger (labels unchanged by the caller)."""
        ...


@dataclass(frozen=True)
class AttackerData:
    """What a data-driven trigger is built from: the malicious client's own windows.

    ``x``: (n, T, C) float32 windows, normalised as the client trains on them; ``y``: their
    labels; ``class_names``: every class's name (index = class id); ``target``: the backdoor's
    target class; ``seed``: fixes the trigger's training.
    """

    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    target: int
    seed: int


def check_windows(x: np.ndarray, where: str) -> np.ndarray:
    """``x`` as a float32 ``(n, T, C)`` array, or :class:`BackdoorError`."""
    array = np.asarray(x)
    if array.ndim != 3:
        raise BackdoorError(f"{where}: expected windows of shape (n, T, C), got {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise BackdoorError(f"{where}: expected float windows, got dtype {array.dtype}")
    return array.astype(np.float32, copy=False)


def poison_indices(n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """The sorted indices of the ``round(rate * n)`` windows to poison, drawn without
    replacement by ``rng``."""
    if not 0.0 <= rate <= 1.0:
        raise BackdoorError(f"rate: expected a poisoning rate in [0, 1], got {rate}")
    count = round(float(rate) * n)
    return np.sort(rng.choice(n, size=count, replace=False)) if count else np.zeros(0, np.int64)


def check_target(target: int, where: str = "target") -> int:
    if isinstance(target, bool) or not isinstance(target, int | np.integer) or target < 0:
        raise BackdoorError(f"{where}: expected a class index >= 0, got {target!r}")
    return int(target)
