"""Columns and dtypes of the run tables, their builders, and their Parquet/CSV encodings.

Every table is built from records with fixed dtypes, so a resumed run equals an uninterrupted
one. The per-update metric columns are :data:`fl_har.metrics.UPDATE_METRICS`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fl_har.atomic import write_bytes_atomic
from fl_har.metrics import CLIENT_METRICS, UPDATE_METRICS
from fl_har.results.layout import ResultsError

METRIC_COLUMNS = UPDATE_METRICS
COUNT_COLUMNS = ("true_counts", "pred_counts")
ATTACK_COLUMNS = (
    "round", "partition", "subject", "attack", "num_samples", "local_steps",
    *COUNT_COLUMNS, *METRIC_COLUMNS, "attack_seconds", "error",
)
ATTACK_INT_COLUMNS = ("round", "partition", "subject", "num_samples", "local_steps")
ATTACK_FLOAT_COLUMNS = (*METRIC_COLUMNS, "attack_seconds")
ATTACK_STR_COLUMNS = ("attack", "error")
ATTACK_SORT_KEYS = ["round", "partition", "attack"]

CLIENT_KEYS = ("partition", "subject", "attack")
CLIENT_COLUMNS = (*CLIENT_KEYS, "num_updates", "attack_errors", *METRIC_COLUMNS, *CLIENT_METRICS)
# pandas dtypes of the client table; every column not listed is float64.
CLIENT_DTYPES: dict[str, Any] = {"partition": "int64", "subject": "int64", "attack": str,
                                 "num_updates": "int64", "attack_errors": "int64"}
FAILURE_COLUMNS = ("round", "partition", "subject", "node_id", "reason")
# The updates table: these first, then any measured columns (numbers or short texts).
UPDATE_KEYS = ("round", "partition", "subject", "status")
UPDATE_STATUSES = ("ok", "failed")

ATTACK_SCHEMA = pa.schema(
    [(name, pa.int64()) for name in ATTACK_COLUMNS[:3]]
    + [("attack", pa.string()), ("num_samples", pa.int64()), ("local_steps", pa.int64())]
    + [(name, pa.list_(pa.int64())) for name in COUNT_COLUMNS]
    + [(name, pa.float64()) for name in ATTACK_FLOAT_COLUMNS]
    + [("error", pa.string())]
)
CLIENT_SCHEMA = pa.schema(
    [("partition", pa.int64()), ("subject", pa.int64()), ("attack", pa.string()),
     ("num_updates", pa.int64()), ("attack_errors", pa.int64())]
    + [(name, pa.float64()) for name in (*METRIC_COLUMNS, *CLIENT_METRICS)]
)


# ----------------------------------------------------------------------------------------------
# Frames
# ----------------------------------------------------------------------------------------------


def attack_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The attacks table from validated rows, sorted by round, partition, attack."""
    columns: dict[str, pd.Series] = {}
    for name in ATTACK_COLUMNS:
        values = [record[name] for record in records]
        if name in ATTACK_INT_COLUMNS:
            columns[name] = pd.Series(values, dtype="int64")
        elif name in ATTACK_FLOAT_COLUMNS:
            columns[name] = pd.Series(values, dtype="float64")
        elif name in ATTACK_STR_COLUMNS:
            columns[name] = pd.Series(values, dtype=str)
        else:
            columns[name] = pd.Series([[int(v) for v in counts] for counts in values], dtype=object)
    frame = pd.DataFrame(columns)
    return frame.sort_values(ATTACK_SORT_KEYS, kind="stable", ignore_index=True)


def rounds_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Columns in first-seen order; int64 where every round has an int, else float64 (NaN gaps)."""
    names: list[str] = ["round"]
    for record in records:
        names.extend(key for key in record if key not in names)
    columns: dict[str, pd.Series] = {}
    for name in names:
        values = [record.get(name, math.nan) for record in records]
        all_ints = all(isinstance(v, int | np.integer) for v in values)
        columns[name] = pd.Series(
            [int(v) for v in values] if all_ints else [float(v) for v in values],
            dtype="int64" if all_ints else "float64",
        )
    return pd.DataFrame(columns)


def updates_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The updates table sorted by round and partition: the keys first, then columns in
    first-seen order; text where every row that has the value has text ("" where a row lacks
    it), int64 where every row has an int, else float64 (NaN where a row lacks the value)."""
    names: list[str] = list(UPDATE_KEYS)
    for record in records:
        names.extend(key for key in record if key not in names)
    columns: dict[str, pd.Series] = {}
    for name in names:
        present = [record[name] for record in records if name in record]
        if present and all(isinstance(v, str) for v in present):
            columns[name] = pd.Series([record.get(name, "") for record in records], dtype=str)
            continue
        values = [record.get(name, math.nan) for record in records]
        if all(isinstance(v, int | np.integer) for v in values):
            columns[name] = pd.Series([int(v) for v in values], dtype="int64")
        else:
            columns[name] = pd.Series([math.nan if isinstance(v, str) else float(v)
                                       for v in values], dtype="float64")
    if not records:
        columns["status"] = pd.Series([], dtype=str)
    frame = pd.DataFrame(columns)
    return frame.sort_values(["round", "partition"], kind="stable", ignore_index=True)


def failures_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The failures table; ``node_id`` stays text (Flower node ids are unsigned 64-bit)."""
    return pd.DataFrame({
        "round": pd.Series([r["round"] for r in records], dtype="int64"),
        "partition": pd.Series([r["partition"] for r in records], dtype="int64"),
        "subject": pd.Series([r["subject"] for r in records], dtype="int64"),
        "node_id": pd.Series([r["node_id"] for r in records], dtype=str),
        "reason": pd.Series([r["reason"] for r in records], dtype=str),
    })


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``frame`` as dicts (the inverse of the frame builders above)."""
    return frame.to_dict("records")


# ----------------------------------------------------------------------------------------------
# Encodings
# ----------------------------------------------------------------------------------------------


def parquet_bytes(frame: pd.DataFrame, schema: pa.Schema | None = None) -> bytes:
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def encode_count_lists(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose count-list columns are space-separated strings (``"3 0 2"``)."""
    encoded = frame.copy()
    for column in COUNT_COLUMNS:
        if column in encoded.columns:
            encoded[column] = [" ".join(str(int(v)) for v in counts) for counts in encoded[column]]
    return encoded


def parse_count_list(text: str) -> list[int]:
    """Inverse of the CSV encoding of :func:`encode_count_lists` (``""`` is the empty list)."""
    try:
        return [int(token) for token in str(text).split()]
    except ValueError:
        raise ResultsError(f"count list {text!r}: expected integers separated by spaces") from None


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return encode_count_lists(frame).to_csv(index=False, lineterminator="\n").encode("utf-8")


def export_csv(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write any run table as CSV (atomically), count lists as space-separated strings."""
    write_bytes_atomic(Path(path), csv_bytes(frame))
