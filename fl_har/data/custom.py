"""``custom``: bring your own HAR data in a documented folder layout.

Layout of ``DIR`` (``data.dataset = "custom"``, ``data.root = DIR``; check it with
``fl-har data check DIR``)::

    DIR/
      labels.toml            the label map (or labels.csv, see below)
      sbj_1.csv              one file per subject: .csv or .parquet; the subject id is the last
      subject-02.parquet     group of digits in the file name (sbj_1 -> 1, subject-02 -> 2)
      ...

Each subject file is a table with a header (CSV: first line, UTF-8, comma-separated):

- ``label`` (required): the integer label id of each sample, a key of the label map. An empty
  field (CSV) or null (Parquet) means NULL and is allowed only if the map has a ``null`` class.
- ``timestamp`` (optional): seconds, strictly increasing within a recording. A step longer than
  1.5 sample periods is a gap in time: the recording is split there, so no window spans it.
- ``recording`` (optional): any value naming the continuous recording a sample belongs to; rows
  of one recording must be consecutive. Without it the file is one recording (split at gaps).
- ``subject`` (optional): if present, it must hold the file name's subject id on every row.
- every other column is a sensor channel (numbers). All files must have the same channel names
  (in any order; the first file's order is used). Missing values (empty field, ``nan``, Parquet
  null) in runs of at most ``max_gap`` samples are interpolated; longer runs and infinite values
  are errors.

The label map gives every label id used in the files a class name. ``labels.toml``::

    sampling_rate = 50        # Hz (optional, default 50)

    [classes]                 # label id = class name
    0 = "null"                # optional: the class named "null" is NULL (no activity)
    1 = "walking"
    2 = "cycling"

or ``labels.csv`` with a header ``id,name`` and one line per class (sampling rate 50 Hz). The
activities become classes 1..K in ascending id order and NULL is class 0 (present even if the map
has no ``null`` class, then with no samples). Every problem is a :class:`DataError` naming the
file, the line (CSV, 1-based with the header as line 1) or row (Parquet, 1-based) and the column.
Parsed files are cached like WEAR/Wetlab (keyed by file content, label map and options).
"""

from __future__ import annotations

import csv
import itertools
import math
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np

from fl_har.data.cache import cached_recordings, file_digest
from fl_har.data.dataset import NULL_CLASS_NAME, HARDataset, Recording, check_finite
from fl_har.data.errors import DataError
from fl_har.data.gaps import GapTooLongError, fill_short_gaps, missing_runs
from fl_har.data.subject_csv import (
    DEFAULT_MAX_GAP,
    MISSING_TOKENS,
    _parse_sensor_column,
    _read_rows,
    check_float32_range,
)

LABEL_COLUMN = "label"
TIMESTAMP_COLUMN = "timestamp"
RECORDING_COLUMN = "recording"
SUBJECT_COLUMN = "subject"
RESERVED_COLUMNS = (LABEL_COLUMN, TIMESTAMP_COLUMN, RECORDING_COLUMN, SUBJECT_COLUMN)
LABEL_FILES = ("labels.toml", "labels.csv")
DATA_SUFFIXES = (".csv", ".parquet")
DEFAULT_SAMPLING_RATE = 50.0
# A timestamp step above this many sample periods is a gap in time (the recording is split).
GAP_FACTOR = 1.5
# Bump whenever parsing changes what a file decodes to (cached arrays of other versions are ignored).
PARSER_VERSION = 1
_DIGITS = re.compile(r"(\d+)(?!.*\d)")
_INTEGER = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class LabelMap:
    """Label ids as written in the files -> internal class ids (0 = NULL, 1..K activities)."""

    path: Path
    class_names: tuple[str, ...]  # index = internal id; [0] is "null"
    ids: dict[int, int]  # file label id -> internal id
    has_null: bool
    sampling_rate: float


@dataclass
class FileReport:
    """What parsing one subject file found (for ``fl-har data check``)."""

    path: Path
    subject: int
    channel_names: tuple[str, ...]
    recordings: list[Recording]
    notes: list[str] = field(default_factory=list)  # interpolated values, gaps in time
    time_gaps: int = 0


def read_label_map(root: Path) -> LabelMap:
    """The label map of a custom folder (``labels.toml`` or ``labels.csv``)."""
    present = [root / name for name in LABEL_FILES if (root / name).is_file()]
    if not present:
        raise DataError(
            f"custom: no label map in {root}: add labels.toml ([classes] id = \"name\") or "
            "labels.csv (header id,name); see `fl-har data check --help`"
        )
    if len(present) > 1:
        raise DataError(f"custom: both {present[0].name} and {present[1].name} in {root}; keep one")
    path = present[0]
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read the file ({error.strerror or error})") from None
    sampling_rate = DEFAULT_SAMPLING_RATE
    if path.suffix == ".toml":
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise DataError(f"{path}: invalid TOML ({error})") from None
        unknown = sorted(set(document) - {"sampling_rate", "classes"})
        if unknown:
            raise DataError(f"{path}: unknown key(s) {unknown}; expected sampling_rate, [classes]")
        rate = document.get("sampling_rate", DEFAULT_SAMPLING_RATE)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not (
            math.isfinite(rate) and rate > 0
        ):
            raise DataError(f"{path}: sampling_rate must be a positive number (Hz), got {rate!r}")
        sampling_rate = float(rate)
        classes = document.get("classes")
        if not isinstance(classes, dict) or not classes:
            raise DataError(f"{path}: needs a non-empty [classes] table of id = \"name\" lines")
        entries = [(str(key), value, f"[classes] key {key!r}") for key, value in classes.items()]
    else:
        rows = list(csv.reader(text.splitlines()))
        rows = [row for row in rows if row]
        if not rows or [c.strip() for c in rows[0]] != ["id", "name"]:
            raise DataError(f"{path}: the first line must be the header id,name")
        entries = []
        for number, row in enumerate(rows[1:], start=2):
            if len(row) != 2:
                raise DataError(f"{path}: line {number} has {len(row)} fields, expected 2 (id,name)")
            entries.append((row[0].strip(), row[1], f"line {number}"))
        if not entries:
            raise DataError(f"{path}: no classes (one line id,name per class after the header)")
    parsed: dict[int, str] = {}
    for key, value, where in entries:
        if not _INTEGER.fullmatch(key):
            raise DataError(f"{path}: {where}: label id {key!r} is not an integer")
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{path}: {where}: class name {value!r} must be a non-empty string")
        label_id = int(key)
        if label_id in parsed:
            raise DataError(f"{path}: {where}: label id {label_id} is listed twice")
        parsed[label_id] = value.strip()
    names = list(parsed.values())
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(f"{path}: class name(s) {duplicates} used for more than one id")
    null_ids = [i for i, n in parsed.items() if n.lower() == NULL_CLASS_NAME]
    activities = sorted(i for i in parsed if i not in null_ids)
    if not activities:
        raise DataError(f"{path}: needs at least one activity class besides null")
    ids = {file_id: internal for internal, file_id in enumerate(activities, start=1)}
    ids.update({null_id: 0 for null_id in null_ids})
    return LabelMap(
        path=path,
        class_names=(NULL_CLASS_NAME, *(parsed[i] for i in activities)),
        ids=ids,
        has_null=bool(null_ids),
        sampling_rate=sampling_rate,
    )


def subject_files(root: Path) -> dict[int, Path]:
    """``{subject: path}`` of the .csv/.parquet files in ``root`` (the label map excluded)."""
    files: dict[int, Path] = {}
    for path in sorted(root.iterdir()):
        if path.name in LABEL_FILES or path.suffix.lower() not in DATA_SUFFIXES:
            continue
        if not path.is_file():
            continue
        match = _DIGITS.search(path.stem)
        if match is None:
            raise DataError(
                f"custom: cannot tell the subject of {path}: the file name must contain the "
                "subject id as digits (e.g. sbj_3.csv)"
            )
        subject = int(match.group(1))
        if subject in files:
            raise DataError(
                f"custom: {files[subject].name} and {path.name} in {root} are both subject {subject}"
            )
        files[subject] = path
    if not files:
        raise DataError(
            f"custom: no subject files (.csv or .parquet) in {root}; one file per subject, e.g. "
            "sbj_1.csv"
        )
    return dict(sorted(files.items()))


# --- reading one file into named columns -------------------------------------------------------


@dataclass
class _Table:
    header: tuple[str, ...]
    channels: dict[str, np.ndarray]  # float64 with NaN = missing
    labels: list[object]  # str (CSV) or int/float/str/None (Parquet)
    timestamps: np.ndarray | None
    recordings: list[object] | None
    subjects: list[object] | None
    where: list[str]  # "line 5" / "row 4" of each sample


def _check_header(path: Path, header: Sequence[str]) -> tuple[str, ...]:
    header = tuple(header)
    if any(not name for name in header):
        raise DataError(f"{path}: the header has an empty column name: {list(header)}")
    duplicates = sorted({n for n in header if header.count(n) > 1})
    if duplicates:
        raise DataError(f"{path}: column name(s) {duplicates} appear more than once in the header")
    if LABEL_COLUMN not in header:
        raise DataError(f"{path}: no {LABEL_COLUMN!r} column (header: {list(header)})")
    if not [n for n in header if n not in RESERVED_COLUMNS]:
        raise DataError(
            f"{path}: no sensor channel columns (header: {list(header)}; every column other "
            f"than {', '.join(RESERVED_COLUMNS)} is a channel)"
        )
    return header


def read_header(path: Path) -> tuple[str, ...]:
    """The column names of a subject file (checked: a label column and at least one channel)."""
    if path.suffix.lower() == ".parquet":
        pq = _pyarrow_parquet()
        try:
            names = pq.read_schema(path).names
        except _parquet_errors() as error:
            raise DataError(f"{path}: not a readable Parquet file ({error})") from None
        return _check_header(path, [str(n) for n in names])
    header, _, _ = _read_rows(path, None, header_only=True)
    return _check_header(path, header)


def _pyarrow_parquet():
    import pyarrow.parquet as pq

    return pq


def _parquet_errors() -> tuple[type[BaseException], ...]:
    import pyarrow as pa

    # ArrowInvalid & co. for foreign bytes, OSError for I/O, ValueError/TypeError for odd schemas
    return (pa.ArrowException, OSError, ValueError, TypeError)


def _read_csv_table(path: Path) -> _Table:
    header, rows, line_numbers = _read_rows(path, None)
    header = _check_header(path, header)
    if not rows:
        raise DataError(f"{path}: header only, no data lines (expected one line per sample)")
    columns = dict(zip(header, zip(*rows, strict=True), strict=True))
    line_of = np.asarray(line_numbers)
    channels = {
        name: _parse_sensor_column(path, name, columns[name], line_of)
        for name in header
        if name not in RESERVED_COLUMNS
    }
    timestamps = None
    if TIMESTAMP_COLUMN in columns:
        timestamps = _parse_sensor_column(path, TIMESTAMP_COLUMN, columns[TIMESTAMP_COLUMN], line_of)
    where = [f"line {n}" for n in line_numbers]
    return _Table(
        header=header,
        channels=channels,
        labels=list(columns[LABEL_COLUMN]),
        timestamps=timestamps,
        recordings=list(columns[RECORDING_COLUMN]) if RECORDING_COLUMN in columns else None,
        subjects=list(columns[SUBJECT_COLUMN]) if SUBJECT_COLUMN in columns else None,
        where=where,
    )


def _read_parquet_table(path: Path) -> _Table:
    import pyarrow as pa
    import pyarrow.compute as pc

    pq = _pyarrow_parquet()
    try:
        table = pq.read_table(path)
    except _parquet_errors() as error:
        raise DataError(f"{path}: not a readable Parquet file ({error})") from None
    header = _check_header(path, [str(n) for n in table.column_names])
    if table.num_rows == 0:
        raise DataError(f"{path}: no rows (expected one row per sample)")

    def numeric(name: str) -> np.ndarray:
        column = table.column(name)
        kind = column.type
        if pa.types.is_timestamp(kind):
            ticks = pc.cast(column, pa.int64()).to_numpy().astype(np.float64)
            return ticks / {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[kind.unit]
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            raise DataError(f"{path}: column {name!r} has type {kind}, expected numbers")
        return np.asarray(pc.cast(column, pa.float64()).to_numpy(), dtype=np.float64)

    channels = {name: numeric(name) for name in header if name not in RESERVED_COLUMNS}
    for name, values in channels.items():
        infinite = np.isinf(values)
        if infinite.any():
            row = int(np.flatnonzero(infinite)[0])
            raise DataError(f"{path}: row {row + 1}, column {name!r}: value is infinite")

    def python(name: str) -> list[object] | None:
        return table.column(name).to_pylist() if name in header else None

    return _Table(
        header=header,
        channels=channels,
        labels=table.column(LABEL_COLUMN).to_pylist(),
        timestamps=numeric(TIMESTAMP_COLUMN) if TIMESTAMP_COLUMN in header else None,
        recordings=python(RECORDING_COLUMN),
        subjects=python(SUBJECT_COLUMN),
        where=[f"row {i}" for i in range(1, table.num_rows + 1)],
    )


# --- from columns to recordings ----------------------------------------------------------------


def _label_ids(path: Path, table: _Table, label_map: LabelMap) -> np.ndarray:
    labels = np.empty(len(table.labels), dtype=np.int64)
    seen: dict[tuple[type, object], int] = {}
    for row, value in enumerate(table.labels):
        try:
            key = (type(value), value)
            internal = seen.get(key)
        except TypeError:  # unhashable (a list in a Parquet column): not a label id
            key, internal = None, None
        if internal is None:
            internal = _label_id(path, value, table.where[row], label_map)
            if key is not None:
                seen[key] = internal
        labels[row] = internal
    return labels


def _label_id(path: Path, value: object, where: str, label_map: LabelMap) -> int:
    if value is None or (isinstance(value, str) and value.strip() in MISSING_TOKENS):
        if label_map.has_null:
            return 0
        raise DataError(
            f"{path}: {where}: empty label, but {label_map.path.name} has no null class (add "
            "one, e.g. 0 = \"null\", or label every sample)"
        )
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        number = int(value.strip())
    if number is None or number not in label_map.ids:
        raise DataError(
            f"{path}: {where}, column {LABEL_COLUMN!r}: label {value!r} is not an id of "
            f"{label_map.path.name} (ids: {', '.join(str(i) for i in sorted(label_map.ids))})"
        )
    return label_map.ids[number]


def _check_subject_values(path: Path, table: _Table, subject: int) -> None:
    if table.subjects is None:
        return
    for row, value in enumerate(table.subjects):
        text = str(value).strip() if value is not None else ""
        if isinstance(value, float) and value.is_integer():
            text = str(int(value))
        if not _INTEGER.fullmatch(text) or int(text) != subject:
            raise DataError(
                f"{path}: {table.where[row]}, column {SUBJECT_COLUMN!r}: {value!r} differs from "
                f"the subject id {subject} in the file name"
            )


def _segments(path: Path, table: _Table, sampling_rate: float) -> tuple[list[slice], list[str]]:
    """Row ranges of the continuous recordings (recording column, then gaps in time)."""
    n = len(table.labels)
    bounds = [0]
    if table.recordings is not None:
        keys = [str(v) for v in table.recordings]
        seen: dict[str, int] = {keys[0]: 0}
        for row in range(1, n):
            if keys[row] != keys[row - 1]:
                if keys[row] in seen:
                    raise DataError(
                        f"{path}: {table.where[row]}: recording {table.recordings[row]!r} "
                        f"continues after other rows (it started at {table.where[seen[keys[row]]]});"
                        " rows of one recording must be consecutive"
                    )
                seen[keys[row]] = row
                bounds.append(row)
    notes: list[str] = []
    if table.timestamps is not None:
        stamps = table.timestamps
        missing = np.isnan(stamps)
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise DataError(f"{path}: {table.where[row]}: missing timestamp")
        starts = set(bounds)
        step = np.diff(stamps)
        limit = GAP_FACTOR / sampling_rate
        for row in np.flatnonzero(step <= 0).tolist():
            if row + 1 not in starts:
                raise DataError(
                    f"{path}: {table.where[row + 1]}: timestamp {stamps[row + 1]!r} does not "
                    f"increase (previous {stamps[row]!r}); sort the rows by time"
                )
        for row in np.flatnonzero(step > limit).tolist():
            if row + 1 not in starts:
                notes.append(
                    f"gap in time of {step[row]:.3g} s before {table.where[row + 1]} "
                    "(recording split there)"
                )
                bounds.append(row + 1)
    bounds = sorted(set(bounds)) + [n]
    return [slice(a, b) for a, b in itertools.pairwise(bounds)], notes


def parse_subject_file(
    path: Path,
    subject: int,
    label_map: LabelMap,
    channel_order: Sequence[str] | None = None,
    max_gap: int | None = DEFAULT_MAX_GAP,
) -> FileReport:
    """Parse one subject file of the custom layout (see the module docstring)."""
    table = _read_parquet_table(path) if path.suffix.lower() == ".parquet" else _read_csv_table(path)
    names = tuple(table.channels)
    if channel_order is not None:
        if set(channel_order) != set(names):
            raise DataError(
                f"{path}: channels {list(names)} differ from the other files' "
                f"{list(channel_order)} (missing {sorted(set(channel_order) - set(names))}, "
                f"extra {sorted(set(names) - set(channel_order))})"
            )
        names = tuple(channel_order)
    _check_subject_values(path, table, subject)
    labels = _label_ids(path, table, label_map)
    segments, notes = _segments(path, table, label_map.sampling_rate)
    signals = np.empty((len(labels), len(names)), dtype=np.float32)
    for channel, name in enumerate(names):
        values = table.channels[name]
        for part in segments:
            piece = values[part]
            runs = missing_runs(np.isnan(piece))
            try:
                with np.errstate(over="ignore"):
                    signals[part, channel] = fill_short_gaps(piece, max_gap)
            except GapTooLongError as error:
                gap = error.gap
                raise DataError(
                    f"{path}: column {name!r} misses {gap.length} consecutive values from "
                    f"{table.where[part.start + gap.start]} to "
                    f"{table.where[part.start + gap.start + gap.length - 1]}; runs of at most "
                    f"max_gap={max_gap} missing samples are interpolated"
                ) from None
            for run in runs:
                notes.append(
                    f"column {name!r}: {run.length} missing value(s) from "
                    f"{table.where[part.start + run.start]} interpolated"
                )
    check_float32_range(path, signals, names, table.where.__getitem__)
    recordings = [Recording(signals[part], labels[part]) for part in segments]
    for index, rec in enumerate(recordings):
        check_finite(rec.signals, f"{path} (subject {subject}, recording {index})", names)
    return FileReport(
        path=path,
        subject=subject,
        channel_names=names,
        recordings=recordings,
        notes=notes,
        time_gaps=sum(1 for n in notes if n.startswith("gap in time")),
    )


def _check_max_gap(max_gap: object) -> None:
    if max_gap is not None and (
        isinstance(max_gap, bool) or not isinstance(max_gap, int) or max_gap < 0
    ):
        raise DataError(f"custom: max_gap must be a non-negative int or None, got {max_gap!r}")


def load_custom(
    root: str | PathLike[str] | None = None,
    *,
    max_gap: int | None = DEFAULT_MAX_GAP,
    cache: bool = True,
    cache_dir: str | PathLike[str] | None = None,
) -> HARDataset:
    """A folder in the custom layout (module docstring) as a :class:`HARDataset`.

    ``max_gap``: longest run of missing sensor values interpolated (samples; None = any).
    ``cache`` / ``cache_dir``: the parsed-file cache, as for WEAR/Wetlab.
    """
    from fl_har.data.published import resolve_cache_dir

    if root is None or str(root) == "":
        raise DataError(
            "dataset 'custom' needs root = the folder of your data (data.root in a config); "
            "see `fl-har data check --help` for the layout"
        )
    _check_max_gap(max_gap)
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise DataError(f"custom: data folder {folder} does not exist or is not a folder")
    label_map = read_label_map(folder)
    files = subject_files(folder)
    first = next(iter(files.values()))
    order = tuple(n for n in read_header(first) if n not in RESERVED_COLUMNS)
    cache_folder = resolve_cache_dir(cache, cache_dir, "custom")
    key_parts = (
        f"parser-{PARSER_VERSION}",
        f"max_gap-{max_gap}",
        f"labels-{file_digest(label_map.path)}",
        "channels",
        *order,
    )
    recordings: dict[int, tuple[Recording, ...]] = {}
    for subject, path in files.items():
        header_channels = tuple(n for n in read_header(path) if n not in RESERVED_COLUMNS)
        if set(header_channels) != set(order):
            raise DataError(
                f"{path}: channels {list(header_channels)} differ from {first.name}'s "
                f"{list(order)}; every subject file needs the same channel columns"
            )
        parsed = cached_recordings(
            path,
            kind="custom",
            key_parts=key_parts,
            num_channels=len(order),
            num_classes=len(label_map.class_names),
            cache_dir=cache_folder,
            parse=lambda path=path, subject=subject: parse_subject_file(
                path, subject, label_map, order, max_gap
            ).recordings,
        )
        recordings[subject] = tuple(parsed)
    return HARDataset(
        name="custom",
        class_names=label_map.class_names,
        channel_names=order,
        sampling_rate=label_map.sampling_rate,
        recordings=recordings,
    )


# --- validation for ``fl-har data check`` ------------------------------------------------------


@dataclass
class CheckReport:
    """Everything ``fl-har data check`` found in a custom folder; ``valid`` iff no problems."""

    root: Path
    label_map: LabelMap | None = None
    channel_names: tuple[str, ...] = ()
    files: list[FileReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # files that are not subject files

    @property
    def valid(self) -> bool:
        return not self.problems and bool(self.files)

    def dataset(self) -> HARDataset:
        """The parsed files as a dataset (only if :attr:`valid`)."""
        if not self.valid or self.label_map is None:
            raise DataError(f"custom: {self.root} is not valid: {'; '.join(self.problems)}")
        return HARDataset(
            name="custom",
            class_names=self.label_map.class_names,
            channel_names=self.channel_names,
            sampling_rate=self.label_map.sampling_rate,
            recordings={f.subject: tuple(f.recordings) for f in self.files},
        )


def check_custom_folder(
    root: str | PathLike[str], max_gap: int | None = DEFAULT_MAX_GAP
) -> CheckReport:
    """Parse every file of a custom folder (no cache) and collect ALL problems, not just the first:
    one per broken file, plus the label map and cross-file checks (ids, channels)."""
    _check_max_gap(max_gap)
    folder = Path(root).expanduser()
    report = CheckReport(root=folder)
    if not folder.is_dir():
        report.problems.append(f"{folder} does not exist or is not a folder")
        return report
    try:
        report.label_map = read_label_map(folder)
    except DataError as error:
        report.problems.append(str(error))
    candidates: dict[int, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name in LABEL_FILES:
            continue
        if not path.is_file() or path.suffix.lower() not in DATA_SUFFIXES:
            report.ignored.append(path.name)
            continue
        match = _DIGITS.search(path.stem)
        if match is None:
            report.problems.append(
                f"{path}: cannot tell the subject: the file name must contain the subject id "
                "as digits (e.g. sbj_3.csv)"
            )
            continue
        subject = int(match.group(1))
        if subject in candidates:
            report.problems.append(
                f"{candidates[subject].name} and {path.name} are both subject {subject}"
            )
            continue
        candidates[subject] = path
    if not candidates:
        report.problems.append(f"no subject files (.csv or .parquet) in {folder}")
        return report
    order: tuple[str, ...] | None = None
    for subject, path in sorted(candidates.items()):
        try:
            channels = tuple(n for n in read_header(path) if n not in RESERVED_COLUMNS)
            if order is None:
                order = channels
                report.channel_names = channels
            elif set(channels) != set(order):
                raise DataError(
                    f"{path}: channels {list(channels)} differ from the first file's "
                    f"{list(order)}; every subject file needs the same channel columns"
                )
            if report.label_map is None:
                continue  # cannot map labels; the label map problem is already reported
            report.files.append(parse_subject_file(path, subject, report.label_map, order, max_gap))
        except DataError as error:
            report.problems.append(str(error))
    return report
