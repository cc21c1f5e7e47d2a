"""What a run records about where it came from: its config (TOML), package versions, timestamps.

Also decides whether a config given to resume a run is the one it ran with
(:func:`config_differences`).
"""

from __future__ import annotations

import math
import platform
import tomllib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import tomli_w
import torch

from fl_har.results.layout import ResultsError

# Config keys (dotted paths) allowed to differ between a run and its resumption.
RESUME_IGNORED_KEYS = ("run.out", "run.resume")

# The repository root of a source checkout (fl_har/results/provenance.py -> three levels up).
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------------------------
# Config (TOML)
# ----------------------------------------------------------------------------------------------


def _toml_plain(value: Any, where: str) -> Any:
    """``value`` with tuples as lists, refusing what TOML cannot store (e.g. None)."""
    if isinstance(value, Mapping):
        plain = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ResultsError(f"config key {key!r} under {where or 'top level'}: expected str")
            plain[key] = _toml_plain(item, f"{where}.{key}" if where else key)
        return plain
    if isinstance(value, list | tuple):
        return [_toml_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str | int | float | bool):
        return value
    raise ResultsError(f"config {where} = {value!r}: TOML cannot store a {type(value).__name__}")


def config_toml(config: Mapping[str, Any]) -> str:
    """``config`` as the text of ``config.toml``."""
    if not isinstance(config, Mapping):
        raise ResultsError(f"config = {config!r}: expected a nested dict")
    return tomli_w.dumps(_toml_plain(config, ""))


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            flat.update(flatten_config(value, path))
        else:
            flat[path] = value
    return flat


_ABSENT = object()


def _same_config_value(old: Any, new: Any) -> bool:
    """Equal TOML values: 1 == 1.0 and NaN == NaN, but a bool never equals a number."""
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(map(_same_config_value, old, new))
    if isinstance(old, bool) or isinstance(new, bool):
        return type(old) is type(new) and old == new
    if isinstance(old, float) and isinstance(new, float) and math.isnan(old) and math.isnan(new):
        return True
    if isinstance(old, int | float) and isinstance(new, int | float):
        return old == new
    return type(old) is type(new) and old == new


def config_differences(stored: Mapping[str, Any], given: Mapping[str, Any],
                       ignored: Iterable[str] = RESUME_IGNORED_KEYS) -> list[str]:
    """``"key: stored X, given Y"`` for every dotted key that differs, except ``ignored`` ones.

    An ignored key also covers its sub-keys. ``given`` is compared after a TOML round trip, so a
    tuple equals the list stored for it.
    """
    ignored = tuple(ignored)
    stored_flat = flatten_config(stored)
    given_flat = flatten_config(tomllib.loads(config_toml(given)))
    differences = []
    for key in sorted(set(stored_flat) | set(given_flat)):
        if any(key == skip or key.startswith(skip + ".") for skip in ignored):
            continue
        old, new = stored_flat.get(key, _ABSENT), given_flat.get(key, _ABSENT)
        if old is _ABSENT or new is _ABSENT or not _same_config_value(old, new):
            shown = ["absent" if value is _ABSENT else repr(value) for value in (old, new)]
            differences.append(f"{key}: stored {shown[0]}, given {shown[1]}")
    return differences


# ----------------------------------------------------------------------------------------------
# Versions and time
# ----------------------------------------------------------------------------------------------


def now() -> str:
    """The current UTC time as recorded in ``meta.json`` (ISO 8601, whole seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _fl_har_version() -> str:
    """Installed version, else the version of the source checkout's pyproject.toml."""
    version = _package_version("fl-har")
    if version != "not installed":
        return version
    pyproject = _SOURCE_ROOT / "pyproject.toml"
    try:
        return str(tomllib.loads(pyproject.read_text("utf-8"))["project"]["version"]) + " (source)"
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def collect_versions() -> dict[str, str]:
    """Versions recorded in ``meta.json`` (flwr via package metadata, without importing it)."""
    return {
        "fl_har": _fl_har_version(),
        "flwr": _package_version("flwr"),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "pyarrow": pa.__version__,
        "python": platform.python_version(),
    }
