"""Where fl-har looks for datasets and keeps its caches (all overridable by environment variables).

- Cache (decoded HAPT): ``$FL_HAR_CACHE``, else ``$XDG_CACHE_HOME/fl-har``, else
  ``~/.cache/fl-har``.
- User-downloaded datasets (WEAR, Wetlab): ``$FL_HAR_DATA/<name>``, else ``~/fl-har-data/<name>``.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "FL_HAR_CACHE"
DATA_ENV = "FL_HAR_DATA"


def default_cache_dir() -> Path:
    """The directory for decoded-data caches (not created here)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "fl-har"
    return Path.home() / ".cache" / "fl-har"


def default_data_dir(name: str) -> Path:
    """The default folder of dataset ``name`` (e.g. ``~/fl-har-data/wear``)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser() / name
    return Path.home() / "fl-har-data" / name
