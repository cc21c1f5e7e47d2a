"""Decoded-data caches: plain ``.npz`` tables that are safe to read whatever is on disk.

A cache file is an uncompressed ``.npz`` of named arrays plus scalar header entries (format version,
source fingerprint). Reading never unpickles (``allow_pickle=False``) and never trusts the file: a
missing, truncated, foreign or crafted file (wrong keys, a header that is an array instead of a
scalar, wrong dtypes, inconsistent lengths, non-finite signals) is reported in a warning that names
the file, and the caller decodes the source again and overwrites it. Writes are atomic with a
temporary name unique to the writer (several simulated clients may build the same cache at once).

The per-CSV cache (:func:`cached_recordings`) is keyed by the file's CONTENT (SHA-256 of its bytes)
plus the parser version and every option that changes the result, so an edited, moved or copied
file never serves stale arrays and identical files share one entry.
"""

from __future__ import annotations

import hashlib
import io
import warnings
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from fl_har.atomic import write_bytes_atomic_unique
from fl_har.data.dataset import Recording
from fl_har.data.errors import DataError

# Errors numpy/zipfile raise on broken or hostile archives; anything else is a bug and propagates.
_READ_ERRORS = (
    OSError,
    EOFError,
    KeyError,
    ValueError,
    TypeError,
    IndexError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,  # zip entries with an unsupported compression method
    MemoryError,  # a crafted .npy header can declare an absurd shape
)

# Bump when the per-CSV cache layout changes (parsers have their own versions in the key).
RECORDINGS_CACHE_VERSION = 1
_RECORDING_KEYS = ("signals", "labels", "recording_lengths")


class CacheInvalid(Exception):
    """Raised by a cache validator: the message says what is wrong with the file."""


def header_int(archive: Mapping[str, np.ndarray], key: str) -> int:
    """The scalar integer ``archive[key]``; :class:`CacheInvalid` for anything else."""
    value = archive[key]
    if value.shape != () or value.dtype.kind not in "iu":
        raise CacheInvalid(f"{key!r} is not an integer scalar (dtype {value.dtype}, "
                           f"shape {value.shape})")
    return int(value)


def header_str(archive: Mapping[str, np.ndarray], key: str) -> str:
    """The scalar string ``archive[key]``; :class:`CacheInvalid` for anything else."""
    value = archive[key]
    if value.shape != () or value.dtype.kind != "U":
        raise CacheInvalid(f"{key!r} is not a string scalar (dtype {value.dtype}, "
                           f"shape {value.shape})")
    return str(value)


def read_npz_cache(
    path: Path,
    what: str,
    is_current: Callable[[Mapping[str, np.ndarray]], bool],
    keys: Sequence[str],
    validate: Callable[[dict[str, np.ndarray]], None],
) -> dict[str, np.ndarray] | None:
    """The arrays ``keys`` of the cache ``path``, or None when it must be rebuilt.

    ``is_current(archive)`` reads the header and says whether the file belongs to this source and
    format (False = stale, silently rebuilt); it may raise :class:`CacheInvalid` or ``KeyError``.
    ``validate(table)`` checks shapes and values and raises :class:`CacheInvalid`. Every failure but
    staleness is a warning naming ``path``; the caller then rebuilds the file.
    """
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise CacheInvalid("not an .npz archive")
            if not is_current(archive):
                return None
            missing = [key for key in keys if key not in archive.files]
            if missing:
                raise CacheInvalid(f"missing arrays {missing} (has {archive.files})")
            table = {key: archive[key] for key in keys}
        validate(table)
    except (CacheInvalid, *_READ_ERRORS) as error:
        warnings.warn(
            f"{what} cache {path} is unreadable or not fl-har's ({type(error).__name__}: "
            f"{error}); rebuilding it (delete the file if this repeats)",
            stacklevel=3,
        )
        return None
    return table


def write_npz_cache(path: Path, what: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as an uncompressed ``.npz`` atomically; failure only costs a warning."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        write_bytes_atomic_unique(path, buffer.getvalue())
    except OSError as error:
        warnings.warn(f"cannot write the {what} cache {path} ({error}); continuing without it",
                      stacklevel=3)


def file_digest(path: Path) -> str:
    """SHA-256 (hex) of the file's bytes; a :class:`DataError` naming the file if unreadable."""
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as error:
        raise DataError(f"{path}: cannot read the file ({error.strerror or error})") from None


def cache_key(*parts: str) -> str:
    """A short stable key (hex) of the given strings (content digests, versions, options)."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:40]


def _check_recordings_table(
    table: dict[str, np.ndarray], num_channels: int, num_classes: int
) -> None:
    signals, labels, lengths = table["signals"], table["labels"], table["recording_lengths"]
    if signals.dtype != np.float32 or signals.ndim != 2 or signals.shape[1] != num_channels:
        raise CacheInvalid(f"signals have dtype {signals.dtype} and shape {signals.shape}, "
                           f"expected float32 [T, {num_channels}]")
    if labels.dtype != np.int64 or labels.shape != (signals.shape[0],):
        raise CacheInvalid(f"labels have dtype {labels.dtype} and shape {labels.shape}, "
                           f"expected int64 [{signals.shape[0]}]")
    if lengths.dtype != np.int64 or lengths.ndim != 1 or (lengths < 0).any() \
            or int(lengths.sum()) != labels.shape[0]:
        raise CacheInvalid("recording_lengths do not add up to the number of samples")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise CacheInvalid(f"labels outside 0..{num_classes - 1}")
    if not np.isfinite(signals).all():
        raise CacheInvalid("non-finite signal values")


def cached_recordings(
    source: Path,
    *,
    kind: str,
    key_parts: Sequence[str],
    num_channels: int,
    num_classes: int,
    cache_dir: Path | None,
    parse: Callable[[], list[Recording]],
) -> list[Recording]:
    """The recordings parsed from ``source``, from the cache when it holds this exact content.

    ``key_parts`` must name the parser version and every option that changes the result.
    ``cache_dir=None`` disables the cache (always ``parse()``).
    """
    if cache_dir is None:
        return parse()
    digest = file_digest(source)
    key = cache_key(kind, str(RECORDINGS_CACHE_VERSION), digest, *key_parts)
    path = cache_dir / "csv" / f"{kind}-{key}.npz"
    what = f"{kind} ({source.name})"

    def is_current(archive: Mapping[str, np.ndarray]) -> bool:
        return (
            header_int(archive, "format_version") == RECORDINGS_CACHE_VERSION
            and header_str(archive, "key") == key
        )

    table = read_npz_cache(
        path, what, is_current, _RECORDING_KEYS,
        lambda t: _check_recordings_table(t, num_channels, num_classes),
    )
    if table is not None:
        bounds = np.concatenate([[0], np.cumsum(table["recording_lengths"])])
        return [
            Recording(table["signals"][a:b], table["labels"][a:b])
            for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)
        ]
    recordings = parse()
    write_npz_cache(path, what, {
        "format_version": np.int64(RECORDINGS_CACHE_VERSION),
        "key": np.str_(key),
        "signals": np.concatenate([r.signals for r in recordings]) if recordings
        else np.empty((0, num_channels), np.float32),
        "labels": np.concatenate([r.labels for r in recordings]) if recordings
        else np.empty(0, np.int64),
        "recording_lengths": np.array([r.num_samples for r in recordings], dtype=np.int64),
    })
    return recordings
