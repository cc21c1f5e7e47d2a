"""Validation of the rows the server hands to the store: a bad row is reported, never half-stored.

Each validator returns the row in canonical Python types or raises :class:`ResultsError` naming
the row, the key and the value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from fl_har.results.layout import ResultsError
from fl_har.results.schemas import (
    ATTACK_COLUMNS,
    ATTACK_FLOAT_COLUMNS,
    ATTACK_INT_COLUMNS,
    ATTACK_STR_COLUMNS,
    COUNT_COLUMNS,
    FAILURE_COLUMNS,
    UPDATE_KEYS,
    UPDATE_STATUSES,
)

# Failure keys the server may omit, with the value stored instead (-1 / "" = unknown).
_FAILURE_DEFAULTS: dict[str, Any] = {"subject": -1, "node_id": ""}


def as_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ResultsError(f"{where} = {value!r}: expected an integer")
    return int(value)


def _as_float(value: Any, where: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ResultsError(f"{where} = {value!r}: expected a number (NaN if undefined)")
    return float(value)


def as_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ResultsError(f"{where} = {value!r}: expected a string")
    return value


def _as_counts(value: Any, where: str) -> list[int]:
    """A list of non-negative whole numbers from a list, tuple, numpy array or tensor."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, str) or not isinstance(value, Sequence | np.ndarray):
        raise ResultsError(f"{where} = {value!r}: expected a list of per-class counts")
    try:
        counts = np.asarray(value)
    except ValueError:
        raise ResultsError(
            f"{where} = {value!r}: expected a flat list of per-class counts") from None
    if counts.size == 0:
        return []
    if counts.ndim != 1 or counts.dtype.kind not in "iuf":
        raise ResultsError(f"{where} = {value!r}: expected a flat list of per-class counts")
    if not np.all(np.isfinite(counts)) or np.any(counts != np.round(counts)) or np.any(counts < 0):
        raise ResultsError(f"{where} = {value!r}: expected non-negative whole numbers")
    return [int(v) for v in counts]


def _check_keys(row: Mapping[str, Any], expected: Iterable[str], optional: Iterable[str],
                where: str) -> None:
    if not isinstance(row, Mapping):
        raise ResultsError(f"{where} = {row!r}: expected a dict")
    required = set(expected) - set(optional)
    missing = [key for key in expected if key in required and key not in row]
    if missing:
        raise ResultsError(f"{where} lacks key(s) {missing}; expected keys {list(expected)}")
    unknown = sorted(set(row) - set(expected))
    if unknown:
        raise ResultsError(f"{where} has unknown key(s) {unknown}; expected keys {list(expected)}")


def validate_attack_row(row: Mapping[str, Any], where: str, round_number: int) -> dict[str, Any]:
    """One attack row in canonical Python types; counts must be present unless ``error`` is set."""
    _check_keys(row, ATTACK_COLUMNS, (), where)
    clean: dict[str, Any] = {}
    for key in ATTACK_INT_COLUMNS:
        clean[key] = as_int(row[key], f"{where}[{key!r}]")
    for key in ATTACK_FLOAT_COLUMNS:
        clean[key] = _as_float(row[key], f"{where}[{key!r}]")
    for key in ATTACK_STR_COLUMNS:
        clean[key] = as_str(row[key], f"{where}[{key!r}]")
    for key in COUNT_COLUMNS:
        clean[key] = _as_counts(row[key], f"{where}[{key!r}]")
    if clean["round"] != round_number:
        raise ResultsError(f"{where}['round'] = {clean['round']}: expected {round_number}")
    if not clean["attack"]:
        raise ResultsError(f"{where}['attack'] is empty: expected the attack name")
    if clean["error"] == "":
        true_counts, pred_counts = clean["true_counts"], clean["pred_counts"]
        if not true_counts or len(true_counts) != len(pred_counts):
            raise ResultsError(
                f"{where}: true_counts has {len(true_counts)} classes and pred_counts "
                f"{len(pred_counts)}; expected the same non-zero number (or a non-empty 'error')"
            )
    return {key: clean[key] for key in ATTACK_COLUMNS}


def validate_round_row(row: Mapping[str, Any], round_number: int) -> dict[str, int | float]:
    """``round`` first, then the metrics as int/float (bools as 0/1, None as NaN)."""
    if not isinstance(row, Mapping):
        raise ResultsError(f"round_row = {row!r}: expected a dict")
    if "round" not in row:
        raise ResultsError("round_row lacks key 'round'")
    if as_int(row["round"], "round_row['round']") != round_number:
        raise ResultsError(f"round_row['round'] = {row['round']!r}: expected {round_number}")
    clean: dict[str, int | float] = {"round": round_number}
    for key, value in row.items():
        if key == "round":
            continue
        if not isinstance(key, str) or not key:
            raise ResultsError(f"round_row key {key!r}: expected a non-empty string")
        where = f"round_row[{key!r}]"
        if isinstance(value, bool | np.bool_ | int | np.integer):  # bools stored as 0/1
            clean[key] = int(value)
        else:
            clean[key] = _as_float(value, where)
    return clean


def validate_update_row(row: Mapping[str, Any], where: str, round_number: int) -> dict[str, Any]:
    """One row of the updates table: the keys, then measured values (bool -> 0/1, None -> NaN,
    numbers, or texts such as an aggregator's decision)."""
    if not isinstance(row, Mapping):
        raise ResultsError(f"{where} = {row!r}: expected a dict")
    missing = [key for key in UPDATE_KEYS if key not in row]
    if missing:
        raise ResultsError(f"{where} lacks key(s) {missing}; expected at least {list(UPDATE_KEYS)}")
    clean: dict[str, Any] = {
        "round": as_int(row["round"], f"{where}['round']"),
        "partition": as_int(row["partition"], f"{where}['partition']"),
        "subject": as_int(row["subject"], f"{where}['subject']"),
        "status": as_str(row["status"], f"{where}['status']"),
    }
    if clean["round"] != round_number:
        raise ResultsError(f"{where}['round'] = {clean['round']}: expected {round_number}")
    if clean["status"] not in UPDATE_STATUSES:
        raise ResultsError(f"{where}['status'] = {clean['status']!r}: expected one of "
                           f"{UPDATE_STATUSES}")
    for key, value in row.items():
        if key in UPDATE_KEYS:
            continue
        if not isinstance(key, str) or not key:
            raise ResultsError(f"{where} key {key!r}: expected a non-empty string")
        if isinstance(value, bool | np.bool_ | int | np.integer):
            clean[key] = int(value)
        elif isinstance(value, str):
            clean[key] = value
        else:
            clean[key] = _as_float(value, f"{where}[{key!r}]")
    return clean


def check_unique_updates(rows: Sequence[Mapping[str, Any]]) -> None:
    """One updates row per partition in a round."""
    partitions = [row["partition"] for row in rows]
    repeated = sorted({p for p in partitions if partitions.count(p) > 1})
    if repeated:
        raise ResultsError(f"update_rows: partition(s) {repeated} appear twice in one round")


def validate_failure(row: Mapping[str, Any], where: str, round_number: int) -> dict[str, Any]:
    """``round`` defaults to this round, ``subject`` to -1; ``node_id`` is kept as text because
    Flower node ids are unsigned 64-bit and may not fit an int64 column."""
    _check_keys(row, FAILURE_COLUMNS, ("round", *_FAILURE_DEFAULTS), where)
    node_id = row.get("node_id", _FAILURE_DEFAULTS["node_id"])
    clean = {
        "round": as_int(row.get("round", round_number), f"{where}['round']"),
        "partition": as_int(row["partition"], f"{where}['partition']"),
        "subject": as_int(row.get("subject", _FAILURE_DEFAULTS["subject"]),
                          f"{where}['subject']"),
        "node_id": node_id if isinstance(node_id, str) else str(as_int(node_id,
                                                                        f"{where}['node_id']")),
        "reason": as_str(row["reason"], f"{where}['reason']"),
    }
    if clean["round"] != round_number:
        raise ResultsError(f"{where}['round'] = {clean['round']}: expected {round_number}")
    return clean


def check_unique_clients(rows: Sequence[Mapping[str, Any]]) -> None:
    """One row per (partition, attack) in a round."""
    seen: set[tuple[int, str]] = set()
    for row in rows:
        key = (row["partition"], row["attack"])
        if key in seen:
            raise ResultsError(
                f"attack_rows: partition {key[0]} has two rows for attack {key[1]!r} in round "
                f"{row['round']}; expected one row per client and attack"
            )
        seen.add(key)


def check_class_count(existing: pd.DataFrame, rows: Sequence[Mapping[str, Any]]) -> None:
    """Every successful row of a run must have the same number of classes."""
    lengths = {len(c) for c in existing["true_counts"] if len(c)}
    lengths |= {len(row["true_counts"]) for row in rows if row["true_counts"]}
    if len(lengths) > 1:
        raise ResultsError(
            f"attack_rows: count lists of {sorted(lengths)} classes in one run; "
            "expected one number of classes"
        )
