"""Atomic file replacement: a reader, or a crash, sees either the old file or the new one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through ``<path>.tmp`` in the same folder, fsync, ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + TEMP_SUFFIX)
    _write_and_replace(temp, temp, path, data)


def _write_and_replace(opened: Path | int, temp: Path, path: Path, data: bytes) -> None:
    """Write ``data`` to ``opened`` (the temporary file ``temp``, or its descriptor), fsync, rename
    it to ``path``, fsync the folder; the temporary file is removed if anything fails."""
    try:
        with open(opened, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Persist a rename (POSIX); silently skipped where directories cannot be opened."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def write_bytes_atomic_unique(path: str | os.PathLike[str], data: bytes) -> None:
    """Like :func:`write_bytes_atomic` but through a temporary name unique to this writer, for files
    that several processes may build at the same moment (decoded-data caches): each writer renames
    its own complete file into place and the last rename wins."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=TEMP_SUFFIX)
    _write_and_replace(descriptor, Path(name), path, data)
