"""Reader of one per-subject CSV in the published WEAR / Wetlab layout (``sbj_<i>.csv``).

Layout (Bock et al.'s preprocessing of WEAR and Wetlab): a header line, then one line per sample::

    sbj_id,<channel 1>,...,<channel C>,label

``label`` holds the activity *name*; an empty label is NULL (the literal ``null`` is accepted as
well). Every problem is reported as a :class:`DataError` naming the file, the line (1-based, the
header is line 1) and the column or value, and what was expected:

- empty file, missing or different header, no data lines;
- a line with the wrong number of fields;
- a non-numeric or infinite sensor value, a non-integer or changing ``sbj_id``;
- an unknown label name;
- missing sensor values (empty field or ``nan``/``NA``): gaps of at most ``max_gap`` samples per
  channel are repaired by :mod:`fl_har.data.gaps` (linear interpolation); longer gaps are errors.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fl_har.data.dataset import NULL_CLASS_NAME, Recording
from fl_har.data.errors import DataError
from fl_har.data.gaps import GapTooLongError, fill_short_gaps

SUBJECT_COLUMN = "sbj_id"
LABEL_COLUMN = "label"
MISSING_TOKENS = frozenset({"", "nan", "NaN", "NAN", "NA", "N/A"})
DEFAULT_MAX_GAP = 5  # samples: 0.1 s at 50 Hz, a few dropped packets
# Bump whenever parsing changes what a file decodes to: cached arrays of older versions are ignored.
PARSER_VERSION = 1


@dataclass(frozen=True)
class CsvLayout:
    """What a dataset's per-subject CSVs must contain."""

    name: str
    channel_names: tuple[str, ...]
    activity_names: tuple[str, ...]  # label ids 1..K, in the published order
    sampling_rate: float
    source: str  # where users get the files (quoted in "not found" errors)

    @property
    def header(self) -> tuple[str, ...]:
        return (SUBJECT_COLUMN, *self.channel_names, LABEL_COLUMN)

    @property
    def class_names(self) -> tuple[str, ...]:
        return (NULL_CLASS_NAME, *self.activity_names)

    def label_ids(self) -> dict[str, int]:
        ids = {name: index for index, name in enumerate(self.activity_names, start=1)}
        ids.update({"": 0, NULL_CLASS_NAME: 0})
        return ids


def read_subject_csv(
    path: Path, layout: CsvLayout, max_gap: int | None = DEFAULT_MAX_GAP
) -> Recording:
    """One subject's CSV as a single continuous :class:`Recording` (see the module docstring)."""
    header, rows, line_numbers = _read_rows(path, len(layout.header))
    if header != layout.header:
        raise DataError(_header_mismatch(path, header, layout.header))
    if not rows:
        raise DataError(f"{path}: header only, no data lines (expected one line per sample)")
    columns = list(zip(*rows, strict=True))
    line_of = np.asarray(line_numbers)
    _check_subject_column(path, columns[0], line_of)
    signals = np.empty((len(rows), len(layout.channel_names)), dtype=np.float32)
    for channel, name in enumerate(layout.channel_names):
        values = _parse_sensor_column(path, name, columns[1 + channel], line_of)
        try:
            with np.errstate(over="ignore"):  # overflow to inf is reported below
                signals[:, channel] = fill_short_gaps(values, max_gap)
        except GapTooLongError as error:
            gap = error.gap
            raise DataError(
                f"{path}: column {name!r} misses {gap.length} consecutive values from line "
                f"{line_of[gap.start]} to line {line_of[gap.start + gap.length - 1]}; gaps of at "
                f"most max_gap={max_gap} samples are interpolated (pass a larger max_gap, or "
                "max_gap=None, to interpolate longer gaps)"
            ) from None
    check_float32_range(path, signals, layout.channel_names, lambda row: f"line {line_of[row]}")
    labels = _parse_labels(path, columns[-1], layout, line_of)
    return Recording(signals=signals, labels=labels)


def check_float32_range(
    path: Path, signals: np.ndarray, channel_names: Sequence[str], where: Callable[[int], str]
) -> None:
    """Finite decimals beyond float32's range (|x| > 3.4e38) become inf when stored: name them
    (``where(row)`` says where a row of ``signals`` is in the file, e.g. "line 12")."""
    finite = np.isfinite(signals)
    if not finite.all():
        row, channel = (int(i) for i in np.argwhere(~finite)[0])
        raise DataError(
            f"{path}: {where(row)}, column {channel_names[channel]!r}: value overflows "
            "32-bit floats (|x| > 3.4e38); sensor values must be finite"
        )


def _read_rows(
    path: Path, num_fields: int | None, header_only: bool = False
) -> tuple[tuple[str, ...], list[list[str]], list[int]]:
    """Header, data rows (blank lines skipped) and each row's line number; checks field counts
    (``num_fields=None``: as many as the header)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or not any(field.strip() for field in header):
                raise DataError(
                    f"{path}: empty file, expected a header line and one line per sample"
                )
            rows: list[list[str]] = []
            line_numbers: list[int] = []
            expected = len(header) if num_fields is None else num_fields
            for row in [] if header_only else reader:
                if not row:
                    continue
                if len(row) != expected:
                    raise DataError(
                        f"{path}: line {reader.line_num} has {len(row)} fields, expected "
                        f"{expected} ("
                        + ("one per header column" if num_fields is None
                           else "sbj_id, the sensor columns, label")
                        + ")"
                    )
                rows.append(row)
                line_numbers.append(reader.line_num)
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error})") from None
    except csv.Error as error:
        raise DataError(f"{path}: malformed CSV ({error})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read the file ({error.strerror or error})") from None
    return tuple(field.strip() for field in header), rows, line_numbers


def _header_mismatch(path: Path, found: Sequence[str], expected: Sequence[str]) -> str:
    missing = [c for c in expected if c not in found]
    unexpected = [c for c in found if c not in expected]
    detail = []
    if missing:
        detail.append(f"missing {missing}")
    if unexpected:
        detail.append(f"unexpected {unexpected}")
    if not detail:
        detail.append("columns in the wrong order")
    return (
        f"{path}: header has {len(found)} columns ({', '.join(detail)}); expected exactly "
        f"{len(expected)}: {', '.join(expected)}"
    )


def _parse_sensor_column(
    path: Path, name: str, values: Sequence[str], line_of: np.ndarray
) -> np.ndarray:
    """Floats with NaN for missing tokens; DataError for anything else non-numeric or infinite."""
    try:
        parsed = np.asarray(values, dtype=np.float64)  # fast path: every field numeric
    except ValueError:
        parsed = np.empty(len(values), dtype=np.float64)
        for row, text in enumerate(values):
            stripped = text.strip()
            if stripped in MISSING_TOKENS:
                parsed[row] = np.nan
                continue
            try:
                parsed[row] = float(stripped)
            except ValueError:
                raise DataError(
                    f"{path}: line {line_of[row]}, column {name!r}: value {text!r} is not a number "
                    "(expected a decimal sensor reading, or an empty field for a missing one)"
                ) from None
    infinite = np.isinf(parsed)
    if infinite.any():
        row = int(np.flatnonzero(infinite)[0])
        raise DataError(
            f"{path}: line {line_of[row]}, column {name!r}: value {values[row]!r} is infinite"
        )
    return parsed


def _check_subject_column(path: Path, values: Sequence[str], line_of: np.ndarray) -> None:
    """``sbj_id`` must be one integer for the whole file (one file = one subject's session)."""
    first = values[0].strip()
    for row, text in enumerate(values):
        stripped = text.strip()
        if stripped != first:
            raise DataError(
                f"{path}: line {line_of[row]}: sbj_id {text!r} differs from {first!r} on line "
                f"{line_of[0]} (expected one subject per file)"
            )
    try:
        number = float(first)
    except ValueError:
        number = float("nan")
    if not number.is_integer():
        raise DataError(f"{path}: line {line_of[0]}: sbj_id {first!r} is not an integer")


def _parse_labels(
    path: Path, values: Sequence[str], layout: CsvLayout, line_of: np.ndarray
) -> np.ndarray:
    ids = layout.label_ids()
    labels = np.empty(len(values), dtype=np.int64)
    for row, text in enumerate(values):
        label = ids.get(text.strip())
        if label is None:
            raise DataError(
                f"{path}: line {line_of[row]}: unknown {layout.name} label {text!r}; expected an "
                f"empty field (NULL) or one of: {', '.join(repr(n) for n in layout.activity_names)}"
            )
        labels[row] = label
    return labels
