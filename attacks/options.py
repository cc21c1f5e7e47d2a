"""Attack options: a name, a default, what it means and how a value is checked.

An attack declares its options next to its code (``DUMMY_KIND`` in :mod:`attacks.calibration`,
``LLBG_CONFIDENCE`` in :mod:`attacks.llbg`, ...) and lists them in its registry line. The front
door reads the schema (:func:`attacks.option_schema`) to accept ``[attacks]`` keys of a config
file, to show their documentation and to reject a bad value before a run starts; an attack reads
its value with :meth:`attacks.AttackContext.option`. A new attack with one option touches its own
file, its registry line and its tests, nothing else.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from attacks.inputs import AttackError

# Values that survive TOML and Flower's flat run config: every option is one of these.
Scalar = bool | int | float | str


@dataclass(frozen=True)
class AttackOption:
    """One setting an attack reads from :class:`attacks.AttackContext`.

    Parameters
    ----------
    name : str
        The key under ``[attacks]`` in a config file (and the context's keyword).
    default : bool | int | float | str
        The value when a config leaves the key out; also fixes the value's type.
    description : str
        One line for ``fl-har config show`` and ``fl-har attacks``.
    check : Callable[[Any], str | None] | None
        Extra range check on the typed value: returns what was expected, or None when valid.
    """

    name: str
    default: Scalar
    description: str
    check: Callable[[Any], str | None] | None = None

    def parse(self, value: Any) -> Scalar:
        """``value`` converted to the default's type and checked; :class:`AttackError` if not."""
        kind = type(self.default)
        typed: Any = None
        if kind is bool:
            if isinstance(value, bool):
                typed = value
            elif isinstance(value, str) and value.strip().lower() in ("true", "false"):
                typed = value.strip().lower() == "true"
        elif kind in (int, float) and isinstance(value, str):
            try:
                typed = kind(value.strip())
            except ValueError:
                pass
        elif kind is int:
            if isinstance(value, numbers.Integral) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer():
                typed = int(value)
        elif kind is float:
            if isinstance(value, numbers.Real) and not isinstance(value, bool):
                typed = float(value)
        elif isinstance(value, str):
            typed = value
        if kind is float and typed is not None and not math.isfinite(typed):
            raise AttackError(f"{self.name}: expected a finite number, got {value!r}")
        if typed is None:
            raise AttackError(f"{self.name}: expected {kind.__name__}, got {value!r}")
        problem = self.check(typed) if self.check is not None else None
        if problem:
            raise AttackError(f"{self.name}: expected {problem}, got {typed!r}")
        return typed


def one_of(choices: Sequence[str]) -> Callable[[Any], str | None]:
    """A check that accepts exactly ``choices``."""
    choices = tuple(choices)
    return lambda value: None if value in choices else f"one of {', '.join(choices)}"


def at_least(minimum: float) -> Callable[[Any], str | None]:
    """A check that accepts values >= ``minimum``."""
    return lambda value: None if value >= minimum else f"a value >= {minimum}"
