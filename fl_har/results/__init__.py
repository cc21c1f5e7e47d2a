"""Results store: one directory per simulation run, written atomically as each round finishes.

Layout of a run directory (see :class:`RunStore`):

- ``config.toml``: the resolved config that ran, written once at start.
- ``meta.json``: seed, package versions, start/end time, status, message and
  ``last_finished_round``. It is written *last* in every round and is the commit record: a round
  exists only once ``meta.json`` names it.
- ``attacks.parquet``: long table, one row per round x client x attack (counts as int64 lists).
- ``rounds.parquet`` + ``rounds.csv``: one row per round (global metrics, timings).
- ``clients.parquet`` + ``clients.csv``: one row per client x attack, recomputed from all rows.
- ``failures.csv``: one row per failed client reply (round, partition, subject, node_id, reason).
- ``summary.md``: short human-readable summary.
- ``checkpoint.pt`` (+ ``checkpoint.prev.pt``): global model state after a finished round.

Crash safety: every file is replaced atomically (temp file in the same directory, fsync,
``os.replace``), the checkpoint is written first and ``meta.json`` last. A crash between two writes
can leave rows of the unfinished round in some tables; readers (:func:`load_run`,
:meth:`RunStore.resume`) drop every row after ``last_finished_round``, and ``resume`` rewrites the
tables to that committed state. Before a new checkpoint replaces ``checkpoint.pt``, the committed
one is copied to ``checkpoint.prev.pt``, so the model of the last finished round is always on disk.
``meta.json`` also lists the committed columns of the rounds table (``round_columns``).

Metrics follow Bock et al., "Label Leakage in Federated Inertial-based Human Activity Recognition"
(arXiv:2505.20924; eq. 4 LeAcc, eq. 5 LnAcc, ClassAcc in the text after eq. 5) as defined in
:mod:`fl_har.metrics`; this module only stores them and aggregates them per client.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import platform
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import tomli_w
import torch

from fl_har.atomic import TEMP_SUFFIX, fsync_directory, write_bytes_atomic
from fl_har.metrics import UPDATE_METRICS, class_acc

# Config keys (dotted paths) allowed to differ between a run and its resumption.
RESUME_IGNORED_KEYS = ("run.out", "run.resume")

CONFIG_FILE = "config.toml"
META_FILE = "meta.json"
ATTACKS_FILE = "attacks.parquet"
ROUNDS_FILE = "rounds.parquet"
ROUNDS_CSV = "rounds.csv"
CLIENTS_FILE = "clients.parquet"
CLIENTS_CSV = "clients.csv"
FAILURES_CSV = "failures.csv"
SUMMARY_FILE = "summary.md"
CHECKPOINT_FILE = "checkpoint.pt"
PREVIOUS_CHECKPOINT_FILE = "checkpoint.prev.pt"
RUN_FILES = (
    CONFIG_FILE, META_FILE, ATTACKS_FILE, ROUNDS_FILE, ROUNDS_CSV, CLIENTS_FILE, CLIENTS_CSV,
    FAILURES_CSV, SUMMARY_FILE, CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE,
)
META_FORMAT = 1

STATUS_RUNNING = "running"
FINAL_STATUSES = ("finished", "failed")

METRIC_COLUMNS = UPDATE_METRICS
COUNT_COLUMNS = ("true_counts", "pred_counts")
ATTACK_COLUMNS = (
    "round", "partition", "subject", "attack", "num_samples", "local_steps",
    *COUNT_COLUMNS, *METRIC_COLUMNS, "attack_seconds", "error",
)
_ATTACK_INT_COLUMNS = ("round", "partition", "subject", "num_samples", "local_steps")
_ATTACK_FLOAT_COLUMNS = (*METRIC_COLUMNS, "attack_seconds")
_ATTACK_STR_COLUMNS = ("attack", "error")
ATTACK_SORT_KEYS = ["round", "partition", "attack"]

CLIENT_KEYS = ("partition", "subject", "attack")
CLIENT_COLUMNS = (*CLIENT_KEYS, "num_updates", "attack_errors", *METRIC_COLUMNS, "class_acc")
FAILURE_COLUMNS = ("round", "partition", "subject", "node_id", "reason")
# Failure keys the server may omit, with the value stored instead (-1 / "" = unknown).
_FAILURE_DEFAULTS: dict[str, Any] = {"subject": -1, "node_id": ""}
_CLIENT_DTYPES: dict[str, Any] = {"partition": "int64", "subject": "int64", "attack": str,
                                  "num_updates": "int64", "attack_errors": "int64"}

_ATTACK_SCHEMA = pa.schema(
    [(name, pa.int64()) for name in ATTACK_COLUMNS[:3]]
    + [("attack", pa.string()), ("num_samples", pa.int64()), ("local_steps", pa.int64())]
    + [(name, pa.list_(pa.int64())) for name in COUNT_COLUMNS]
    + [(name, pa.float64()) for name in _ATTACK_FLOAT_COLUMNS]
    + [("error", pa.string())]
)
_CLIENT_SCHEMA = pa.schema(
    [("partition", pa.int64()), ("subject", pa.int64()), ("attack", pa.string()),
     ("num_updates", pa.int64()), ("attack_errors", pa.int64())]
    + [(name, pa.float64()) for name in (*METRIC_COLUMNS, "class_acc")]
)


class ResultsError(ValueError):
    """A run directory or the rows given to it are invalid; the message names file/field/value."""


# ----------------------------------------------------------------------------------------------
# Atomic file writes
# ----------------------------------------------------------------------------------------------


def _parquet_bytes(frame: pd.DataFrame, schema: pa.Schema | None = None) -> bytes:
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


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    return encode_count_lists(frame).to_csv(index=False, lineterminator="\n").encode("utf-8")


def export_csv(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write any run table as CSV (atomically), count lists as space-separated strings."""
    write_bytes_atomic(Path(path), _csv_bytes(frame))


# ----------------------------------------------------------------------------------------------
# Row validation (rows come from the server; a bad row is reported, never half-stored)
# ----------------------------------------------------------------------------------------------


def _as_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ResultsError(f"{where} = {value!r}: expected an integer")
    return int(value)


def _as_float(value: Any, where: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ResultsError(f"{where} = {value!r}: expected a number (NaN if undefined)")
    return float(value)


def _as_str(value: Any, where: str) -> str:
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
        raise ResultsError(f"{where} = {value!r}: expected a flat list of per-class counts") from None
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


def _validate_attack_row(row: Mapping[str, Any], where: str, round_number: int) -> dict[str, Any]:
    """One attack row in canonical Python types; counts must be present unless ``error`` is set."""
    _check_keys(row, ATTACK_COLUMNS, (), where)
    clean: dict[str, Any] = {}
    for key in _ATTACK_INT_COLUMNS:
        clean[key] = _as_int(row[key], f"{where}[{key!r}]")
    for key in _ATTACK_FLOAT_COLUMNS:
        clean[key] = _as_float(row[key], f"{where}[{key!r}]")
    for key in _ATTACK_STR_COLUMNS:
        clean[key] = _as_str(row[key], f"{where}[{key!r}]")
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


def _validate_round_row(row: Mapping[str, Any], round_number: int) -> dict[str, int | float]:
    """``round`` first, then the metrics as int/float (bools as 0/1, None as NaN)."""
    if not isinstance(row, Mapping):
        raise ResultsError(f"round_row = {row!r}: expected a dict")
    if "round" not in row:
        raise ResultsError("round_row lacks key 'round'")
    if _as_int(row["round"], "round_row['round']") != round_number:
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


def _validate_failure(row: Mapping[str, Any], where: str, round_number: int) -> dict[str, Any]:
    """``round`` defaults to this round, ``subject`` to -1; ``node_id`` is kept as text because
    Flower node ids are unsigned 64-bit and may not fit an int64 column."""
    _check_keys(row, FAILURE_COLUMNS, ("round", *_FAILURE_DEFAULTS), where)
    node_id = row.get("node_id", _FAILURE_DEFAULTS["node_id"])
    clean = {
        "round": _as_int(row.get("round", round_number), f"{where}['round']"),
        "partition": _as_int(row["partition"], f"{where}['partition']"),
        "subject": _as_int(row.get("subject", _FAILURE_DEFAULTS["subject"]),
                           f"{where}['subject']"),
        "node_id": node_id if isinstance(node_id, str) else str(_as_int(node_id,
                                                                         f"{where}['node_id']")),
        "reason": _as_str(row["reason"], f"{where}['reason']"),
    }
    if clean["round"] != round_number:
        raise ResultsError(f"{where}['round'] = {clean['round']}: expected {round_number}")
    return clean


# ----------------------------------------------------------------------------------------------
# Tables (each built from records with fixed dtypes, so a resumed run equals an uninterrupted one)
# ----------------------------------------------------------------------------------------------


def _attack_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    columns: dict[str, pd.Series] = {}
    for name in ATTACK_COLUMNS:
        values = [record[name] for record in records]
        if name in _ATTACK_INT_COLUMNS:
            columns[name] = pd.Series(values, dtype="int64")
        elif name in _ATTACK_FLOAT_COLUMNS:
            columns[name] = pd.Series(values, dtype="float64")
        elif name in _ATTACK_STR_COLUMNS:
            columns[name] = pd.Series(values, dtype=str)
        else:
            columns[name] = pd.Series([[int(v) for v in counts] for counts in values], dtype=object)
    frame = pd.DataFrame(columns)
    return frame.sort_values(ATTACK_SORT_KEYS, kind="stable", ignore_index=True)


def _rounds_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
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


def _failures_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame({
        "round": pd.Series([r["round"] for r in records], dtype="int64"),
        "partition": pd.Series([r["partition"] for r in records], dtype="int64"),
        "subject": pd.Series([r["subject"] for r in records], dtype="int64"),
        "node_id": pd.Series([r["node_id"] for r in records], dtype=str),
        "reason": pd.Series([r["reason"] for r in records], dtype=str),
    })


def _client_class_acc(succeeded: pd.DataFrame) -> float:
    """ClassAcc over a client's successful updates; NaN if they hold no window at all."""
    true_counts = np.array(list(succeeded["true_counts"]), dtype=np.int64)
    if true_counts.size == 0 or true_counts.sum() == 0:
        return math.nan
    return class_acc(true_counts, np.array(list(succeeded["pred_counts"]), dtype=np.int64))


def client_summary(attacks: pd.DataFrame) -> pd.DataFrame:
    """Per (partition, subject, attack): update and error counts, metric means, pooled ClassAcc.

    ClassAcc (Bock et al., arXiv:2505.20924, Sec. 3 after eq. 5) is computed over all of a
    client's updates by :func:`fl_har.metrics.class_acc`: for every class c present,
    sum_u min(k_u[c], k_hat_u[c]) / sum_u k_u[c], then the mean over those classes.
    Rows whose ``error`` is set count in ``num_updates`` and ``attack_errors`` but not in the
    metrics; a metric that is NaN in a successful row (undefined) is skipped in its mean.
    """
    records: list[dict[str, Any]] = []
    for (partition, subject, attack), group in attacks.groupby(list(CLIENT_KEYS), sort=True):
        succeeded = group[group["error"] == ""]
        record: dict[str, Any] = {
            "partition": int(partition),
            "subject": int(subject),
            "attack": str(attack),
            "num_updates": len(group),
            "attack_errors": len(group) - len(succeeded),
        }
        for metric in METRIC_COLUMNS:
            record[metric] = float(succeeded[metric].mean()) if len(succeeded) else math.nan
        record["class_acc"] = _client_class_acc(succeeded)
        records.append(record)
    return pd.DataFrame({
        name: pd.Series([record[name] for record in records],
                        dtype=_CLIENT_DTYPES.get(name, "float64"))
        for name in CLIENT_COLUMNS
    })


# ----------------------------------------------------------------------------------------------
# Config (TOML) and meta (JSON)
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


def _config_toml(config: Mapping[str, Any]) -> str:
    if not isinstance(config, Mapping):
        raise ResultsError(f"config = {config!r}: expected a nested dict")
    return tomli_w.dumps(_toml_plain(config, ""))


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
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
    given_flat = flatten_config(tomllib.loads(_config_toml(given)))
    differences = []
    for key in sorted(set(stored_flat) | set(given_flat)):
        if any(key == skip or key.startswith(skip + ".") for skip in ignored):
            continue
        old, new = stored_flat.get(key, _ABSENT), given_flat.get(key, _ABSENT)
        if old is _ABSENT or new is _ABSENT or not _same_config_value(old, new):
            shown = ["absent" if value is _ABSENT else repr(value) for value in (old, new)]
            differences.append(f"{key}: stored {shown[0]}, given {shown[1]}")
    return differences


def _now() -> str:
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
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
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


def _read_json(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path} is missing: not a run directory (or never started)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResultsError(f"{path} is not readable JSON: {error}") from None
    if not isinstance(meta, dict):
        raise ResultsError(f"{path}: expected a JSON object, found {type(meta).__name__}")
    last = meta.get("last_finished_round")
    if isinstance(last, bool) or not isinstance(last, int) or last < 0:
        raise ResultsError(f"{path}: last_finished_round = {last!r}: expected an integer >= 0")
    return meta


def _read_config(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path} is missing: not a run directory") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ResultsError(f"{path} is not readable TOML: {error}") from None


# ----------------------------------------------------------------------------------------------
# Reading committed tables
# ----------------------------------------------------------------------------------------------


def _read_parquet(path: Path, last_round: int, required: Sequence[str]) -> pd.DataFrame | None:
    """Rows with ``round <= last_round``; None if the file is absent and no round has finished."""
    if not path.exists():
        if last_round == 0:
            return None
        raise ResultsError(f"{path} is missing although meta.json says round {last_round} finished")
    try:
        frame = pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException) as error:
        raise ResultsError(f"{path} is not a readable Parquet file: {error}") from None
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise ResultsError(f"{path} lacks column(s) {missing}")
    return frame[frame["round"] <= last_round]


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict("records")


def _read_attacks(run_dir: Path, last_round: int) -> pd.DataFrame:
    frame = _read_parquet(run_dir / ATTACKS_FILE, last_round, ATTACK_COLUMNS)
    return _attack_frame([] if frame is None else _records(frame[list(ATTACK_COLUMNS)]))


def _read_rounds(run_dir: Path, meta: Mapping[str, Any]) -> pd.DataFrame:
    """Committed rows and columns: meta.json lists the columns, so a column that only an
    unfinished round introduced is dropped."""
    path = run_dir / ROUNDS_FILE
    last_round = meta["last_finished_round"]
    frame = _read_parquet(path, last_round, ("round",))
    if frame is not None and "round_columns" in meta:
        columns = meta["round_columns"]
        missing = [name for name in columns if name not in frame.columns]
        if missing:
            raise ResultsError(f"{path} lacks column(s) {missing} listed in {META_FILE}")
        frame = frame[list(columns)]
    rounds = _rounds_frame([] if frame is None else _records(frame))
    found = [int(r) for r in rounds["round"]]
    if found != list(range(1, last_round + 1)):
        raise ResultsError(
            f"{path} holds rounds {found} but {META_FILE} says rounds 1..{last_round} finished"
        )
    return rounds


def _read_failures(run_dir: Path, last_round: int) -> pd.DataFrame:
    path = run_dir / FAILURES_CSV
    if not path.exists():
        if last_round == 0:
            return _failures_frame([])
        raise ResultsError(f"{path} is missing although meta.json says round {last_round} finished")
    try:
        frame = pd.read_csv(path, dtype={"node_id": str, "reason": str}, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise ResultsError(f"{path} is not a readable CSV file: {error}") from None
    missing = [name for name in FAILURE_COLUMNS if name not in frame.columns]
    if missing:
        raise ResultsError(f"{path} lacks column(s) {missing}")
    try:
        records = [
            {"round": int(r["round"]), "partition": int(r["partition"]),
             "subject": int(r["subject"]), "node_id": str(r["node_id"]),
             "reason": str(r["reason"])}
            for r in _records(frame)
        ]
    except ValueError as error:
        raise ResultsError(f"{path}: round/partition/subject must be integers ({error})") from None
    return _failures_frame([r for r in records if r["round"] <= last_round])


@dataclass(frozen=True)
class RunTables:
    """Read-only view of a run's committed state (rows up to ``meta['last_finished_round']``)."""

    run_dir: Path
    config: dict[str, Any]
    meta: dict[str, Any]
    attacks: pd.DataFrame
    rounds: pd.DataFrame
    clients: pd.DataFrame
    failures: pd.DataFrame


def load_run(run_dir: str | os.PathLike[str]) -> RunTables:
    """Read a run directory without writing to it; ``clients`` is recomputed from ``attacks``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultsError(f"run directory {run_dir} does not exist")
    meta = _read_json(run_dir / META_FILE)
    last_round = meta["last_finished_round"]
    attacks = _read_attacks(run_dir, last_round)
    return RunTables(
        run_dir=run_dir,
        config=_read_config(run_dir / CONFIG_FILE),
        meta=meta,
        attacks=attacks,
        rounds=_read_rounds(run_dir, meta),
        clients=client_summary(attacks),
        failures=_read_failures(run_dir, last_round),
    )


# ----------------------------------------------------------------------------------------------
# Summary
# ----------------------------------------------------------------------------------------------

_SUMMARY_METRICS = (("LnAcc", "ln_acc"), ("LeAcc", "le_acc"), ("LeRecall", "le_recall"),
                    ("ClassAcc", "class_acc"))
_SUMMARY_MAX_FAILURES = 20


def _mean_std(values: pd.Series) -> str:
    """Mean +- population std (ddof=0) over clients, skipping NaN; ``n/a`` if none."""
    values = values.dropna()
    if values.empty:
        return "n/a"
    return f"{values.mean():.3f} ± {values.std(ddof=0):.3f}"


def summary_markdown(tables: RunTables) -> str:
    """Short human-readable summary: status, rounds, per-attack means over clients, failures."""
    meta = tables.meta
    run = tables.config.get("run")
    run = run if isinstance(run, Mapping) else {}
    last_round = meta["last_finished_round"]
    planned = run.get("rounds")
    lines = [
        f"# fl-har run {run.get('name', tables.run_dir.name)}",
        "",
        f"- status: {meta.get('status', '?')}"
        + (f" ({meta['message']})" if meta.get("message") else ""),
        f"- seed: {meta.get('seed')}",
        f"- rounds finished: {last_round}" + (f" of {planned}" if planned is not None else ""),
        f"- failed client replies: {len(tables.failures)}",
        f"- started: {meta.get('started_at')}; ended: {meta.get('ended_at') or '-'}",
        "",
        "## Label leakage per attack (mean ± std over clients)",
        "",
        "| attack | clients | updates | attack errors | "
        + " | ".join(label for label, _ in _SUMMARY_METRICS) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(_SUMMARY_METRICS),
    ]
    for attack, group in tables.clients.groupby("attack", sort=True):
        cells = [str(attack), str(len(group)), str(int(group["num_updates"].sum())),
                 str(int(group["attack_errors"].sum()))]
        cells += [_mean_std(group[column]) for _, column in _SUMMARY_METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    if tables.clients.empty:
        lines.append("| (no attack results yet) |")
    if len(tables.rounds):
        last = tables.rounds.iloc[-1]
        metrics = ", ".join(f"{name} = {last[name]:.4g}" for name in tables.rounds.columns
                            if name != "round" and not pd.isna(last[name]))
        lines += ["", f"## Round {int(last['round'])}", "", metrics or "(no metrics)"]
    if len(tables.failures):
        lines += ["", "## Failed client replies", "", "| round | partition | subject | reason |",
                  "|---:|---:|---:|---|"]
        for failure in _records(tables.failures.head(_SUMMARY_MAX_FAILURES)):
            reason = failure["reason"].replace("|", "/").replace("\n", " ")
            lines.append(f"| {failure['round']} | {failure['partition']} | "
                         f"{failure['subject']} | {reason} |")
        if len(tables.failures) > _SUMMARY_MAX_FAILURES:
            lines.append(f"\n... and {len(tables.failures) - _SUMMARY_MAX_FAILURES} more "
                         f"in {FAILURES_CSV}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------


# What torch.load raises for a truncated, foreign or non-weights file.
_CHECKPOINT_READ_ERRORS = (OSError, EOFError, KeyError, ValueError, RuntimeError,
                           pickle.UnpicklingError)


def _read_checkpoint(path: Path) -> tuple[int, dict[str, torch.Tensor]]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except _CHECKPOINT_READ_ERRORS as error:
        raise ResultsError(f"{path} is not a readable checkpoint: {error}") from None
    if (not isinstance(payload, dict) or set(payload) != {"round", "state_dict"}
            or not isinstance(payload["round"], int) or not isinstance(payload["state_dict"], dict)):
        raise ResultsError(f"{path}: expected {{'round': int, 'state_dict': dict}}")
    return payload["round"], payload["state_dict"]


def _checkpoint_bytes(round_number: int, state: Mapping[str, torch.Tensor]) -> bytes:
    if not isinstance(state, Mapping):
        raise ResultsError(f"model_state = {type(state).__name__}: expected a dict of tensors")
    for key, tensor in state.items():
        if not isinstance(key, str) or not isinstance(tensor, torch.Tensor):
            raise ResultsError(f"model_state[{key!r}] = {type(tensor).__name__}: expected a tensor")
    payload = {"round": round_number,
               "state_dict": {key: tensor.detach().cpu().clone() for key, tensor in state.items()}}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------------
# The store
# ----------------------------------------------------------------------------------------------


class RunStore:
    """One run directory, written by the server after every finished round.

    Layout: ``config.toml`` (resolved config, written once), ``meta.json`` (seed, versions,
    start/end time, status ``running``/``finished``/``failed``, message, ``last_finished_round``),
    ``attacks.parquet`` (round x client x attack), ``rounds.parquet`` + ``rounds.csv``,
    ``clients.parquet`` + ``clients.csv`` (client x attack summary), ``failures.csv``,
    ``summary.md`` and ``checkpoint.pt`` (``{"round": int, "state_dict": {...}}``, load with
    ``weights_only=True``; ``checkpoint.prev.pt`` is a copy of the one before it).
    """

    def __init__(self, run_dir: Path, config: dict[str, Any], meta: dict[str, Any],
                 attacks: pd.DataFrame, rounds: pd.DataFrame, failures: pd.DataFrame) -> None:
        """Use :meth:`create` or :meth:`resume`."""
        self._run_dir = run_dir
        self._config = config
        self._meta = meta
        self._attacks = attacks
        self._rounds = rounds
        self._failures = failures
        self._failures_at_open = len(failures)

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def create(cls, run_dir: str | os.PathLike[str], config: Mapping[str, Any], *, seed: int,
               overwrite: bool = False) -> RunStore:
        """Start a new run in ``run_dir`` (created if needed).

        A non-empty existing directory is refused unless ``overwrite``; overwriting deletes only
        the files of the layout above and leaves any other file alone.
        """
        run_dir = Path(run_dir)
        seed = _as_int(seed, "seed")
        config_text = _config_toml(config)
        if run_dir.exists() and not run_dir.is_dir():
            raise ResultsError(f"run directory {run_dir} exists and is not a directory")
        if run_dir.is_dir() and any(run_dir.iterdir()):
            if not overwrite:
                raise ResultsError(
                    f"run directory {run_dir} already exists and is not empty: resume it, "
                    "choose another directory, or pass overwrite=True"
                )
            for name in RUN_FILES:
                (run_dir / name).unlink(missing_ok=True)
                (run_dir / (name + TEMP_SUFFIX)).unlink(missing_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(run_dir / CONFIG_FILE, config_text.encode("utf-8"))
        meta = {
            "format": META_FORMAT,
            "seed": seed,
            "versions": collect_versions(),
            "started_at": _now(),
            "ended_at": None,
            "resumed_at": [],
            "status": STATUS_RUNNING,
            "message": "",
            "last_finished_round": 0,
            "round_columns": ["round"],
        }
        store = cls(run_dir, tomllib.loads(config_text), meta, _attack_frame([]),
                    _rounds_frame([]), _failures_frame([]))
        store._write_tables(store._attacks, store._rounds, store._failures, meta)
        store._write_meta(meta)
        return store

    @classmethod
    def resume(cls, run_dir: str | os.PathLike[str], config: Mapping[str, Any]) -> RunStore:
        """Reopen a run to continue after its last finished round.

        ``config`` must equal the stored ``config.toml`` except for :data:`RESUME_IGNORED_KEYS`.
        Rows of an unfinished round, stray temp files and a checkpoint newer than the last
        finished round are discarded, and every table is rewritten to the committed state.
        """
        tables = load_run(run_dir)
        differences = config_differences(tables.config, config)
        if differences:
            raise ResultsError(
                f"cannot resume {tables.run_dir}: the config differs from its {CONFIG_FILE} in "
                + "; ".join(differences)
            )
        run_dir = tables.run_dir
        for name in RUN_FILES:
            (run_dir / (name + TEMP_SUFFIX)).unlink(missing_ok=True)
        meta = dict(tables.meta)
        _discard_uncommitted_checkpoints(run_dir, meta["last_finished_round"])
        meta.update(status=STATUS_RUNNING, message="", ended_at=None,
                    resumed_at=[*meta.get("resumed_at", []), _now()],
                    round_columns=list(tables.rounds.columns))
        store = cls(run_dir, tables.config, meta, tables.attacks, tables.rounds, tables.failures)
        store._write_tables(tables.attacks, tables.rounds, tables.failures, meta)
        store._write_meta(meta)
        return store

    # -- state -----------------------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        return self._run_dir

    @property
    def config(self) -> dict[str, Any]:
        """The stored config (as read back from ``config.toml``)."""
        return tomllib.loads(_config_toml(self._config))

    @property
    def meta(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._meta))

    @property
    def seed(self) -> int:
        return int(self._meta["seed"])

    @property
    def last_finished_round(self) -> int:
        """The last round whose results are committed (0 if none)."""
        return int(self._meta["last_finished_round"])

    @property
    def resumed_failures(self) -> int:
        """Failed client replies already recorded when this store was opened (0 for a new run)."""
        return self._failures_at_open

    def attack_table(self) -> pd.DataFrame:
        return self._attacks.copy(deep=True)

    def round_table(self) -> pd.DataFrame:
        return self._rounds.copy()

    def client_table(self) -> pd.DataFrame:
        return client_summary(self._attacks)

    def failure_table(self) -> pd.DataFrame:
        return self._failures.copy()

    def load_checkpoint(self) -> tuple[int, dict[str, torch.Tensor]] | None:
        """(round, state_dict) of the newest checkpoint at or before the last finished round.

        Rounds recorded with ``model_state=None`` leave the model unchanged, so an older
        checkpoint is the current model. None if no checkpoint was stored.
        """
        best: tuple[int, dict[str, torch.Tensor]] | None = None
        for name in (CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE):
            path = self._run_dir / name
            if path.exists():
                round_number, state = _read_checkpoint(path)
                if round_number <= self.last_finished_round and (
                        best is None or round_number > best[0]):
                    best = (round_number, state)
        return best

    # -- writing ---------------------------------------------------------------------------------

    def record_round(self, round: int, attack_rows: list[dict[str, Any]],
                     round_row: dict[str, Any], failures: list[dict[str, Any]],
                     model_state: dict[str, torch.Tensor] | None) -> None:
        """Commit one finished round: append its rows and rewrite every file atomically.

        Order: checkpoint, tables, summary, ``meta.json`` (the commit). Everything is validated
        before the first write; in-memory state changes only after the commit, so a failed call
        can be retried. ``model_state=None`` stores no checkpoint (model unchanged this round).
        """
        round_number = _as_int(round, "round")
        if self._meta["status"] != STATUS_RUNNING:
            raise ResultsError(
                f"run {self._run_dir} is {self._meta['status']}: resume it before recording rounds"
            )
        if round_number != self.last_finished_round + 1:
            raise ResultsError(
                f"round {round_number} recorded out of order: last finished round is "
                f"{self.last_finished_round}, expected round {self.last_finished_round + 1}"
            )
        new_attacks = [_validate_attack_row(row, f"attack_rows[{i}]", round_number)
                       for i, row in enumerate(attack_rows)]
        _check_unique_clients(new_attacks)
        _check_class_count(self._attacks, new_attacks)
        new_failures = [_validate_failure(row, f"failures[{i}]", round_number)
                        for i, row in enumerate(failures)]
        attacks = _attack_frame(_records(self._attacks) + new_attacks)
        rounds = _rounds_frame(_records(self._rounds) + [_validate_round_row(round_row,
                                                                             round_number)])
        failures_frame = _failures_frame(_records(self._failures) + new_failures)
        checkpoint = None if model_state is None else _checkpoint_bytes(round_number, model_state)

        meta = {**self._meta, "last_finished_round": round_number,
                "round_columns": list(rounds.columns)}
        # A checkpoint left by a failed earlier attempt at this round must not be committed.
        _discard_uncommitted_checkpoints(self._run_dir, self.last_finished_round)
        if checkpoint is not None:
            self._write_checkpoint(checkpoint)
        self._write_tables(attacks, rounds, failures_frame, meta)
        self._write_meta(meta)
        self._meta, self._attacks, self._rounds, self._failures = (
            meta, attacks, rounds, failures_frame)

    def finish(self, status: str, message: str = "") -> None:
        """Mark the run ``finished`` or ``failed`` (with a message) and refresh ``summary.md``."""
        if status not in FINAL_STATUSES:
            raise ResultsError(f"status = {status!r}: expected one of {FINAL_STATUSES}")
        meta = {**self._meta, "status": status, "message": _as_str(message, "message"),
                "ended_at": _now()}
        self._write_summary(self._attacks, self._rounds, self._failures, meta)
        self._write_meta(meta)
        self._meta = meta

    def _write_checkpoint(self, data: bytes) -> None:
        """Copy the committed checkpoint to checkpoint.prev.pt, then write the new one.

        A copy rather than a rename, so checkpoint.pt never goes missing.
        """
        current = self._run_dir / CHECKPOINT_FILE
        if current.exists():
            write_bytes_atomic(self._run_dir / PREVIOUS_CHECKPOINT_FILE, current.read_bytes())
        write_bytes_atomic(current, data)

    def _write_tables(self, attacks: pd.DataFrame, rounds: pd.DataFrame,
                      failures: pd.DataFrame, meta: dict[str, Any]) -> None:
        clients = client_summary(attacks)
        write_bytes_atomic(self._run_dir / ATTACKS_FILE, _parquet_bytes(attacks, _ATTACK_SCHEMA))
        write_bytes_atomic(self._run_dir / ROUNDS_FILE, _parquet_bytes(rounds))
        write_bytes_atomic(self._run_dir / ROUNDS_CSV, _csv_bytes(rounds))
        write_bytes_atomic(self._run_dir / CLIENTS_FILE, _parquet_bytes(clients, _CLIENT_SCHEMA))
        write_bytes_atomic(self._run_dir / CLIENTS_CSV, _csv_bytes(clients))
        write_bytes_atomic(self._run_dir / FAILURES_CSV, _csv_bytes(failures))
        self._write_summary(attacks, rounds, failures, meta, clients)

    def _write_summary(self, attacks: pd.DataFrame, rounds: pd.DataFrame,
                       failures: pd.DataFrame, meta: dict[str, Any],
                       clients: pd.DataFrame | None = None) -> None:
        tables = RunTables(self._run_dir, self._config, meta, attacks, rounds,
                           client_summary(attacks) if clients is None else clients, failures)
        write_bytes_atomic(self._run_dir / SUMMARY_FILE, summary_markdown(tables).encode("utf-8"))

    def _write_meta(self, meta: dict[str, Any]) -> None:
        text = json.dumps(meta, indent=2) + "\n"
        write_bytes_atomic(self._run_dir / META_FILE, text.encode("utf-8"))


def _check_unique_clients(rows: Sequence[Mapping[str, Any]]) -> None:
    seen: set[tuple[int, str]] = set()
    for row in rows:
        key = (row["partition"], row["attack"])
        if key in seen:
            raise ResultsError(
                f"attack_rows: partition {key[0]} has two rows for attack {key[1]!r} in round "
                f"{row['round']}; expected one row per client and attack"
            )
        seen.add(key)


def _check_class_count(existing: pd.DataFrame, rows: Sequence[Mapping[str, Any]]) -> None:
    """Every successful row of a run must have the same number of classes."""
    lengths = {len(c) for c in existing["true_counts"] if len(c)}
    lengths |= {len(row["true_counts"]) for row in rows if row["true_counts"]}
    if len(lengths) > 1:
        raise ResultsError(
            f"attack_rows: count lists of {sorted(lengths)} classes in one run; "
            "expected one number of classes"
        )


def _discard_uncommitted_checkpoints(run_dir: Path, last_round: int) -> None:
    """Delete a checkpoint newer than ``last_round`` and restore the previous one in its place."""
    current = run_dir / CHECKPOINT_FILE
    previous = run_dir / PREVIOUS_CHECKPOINT_FILE
    if current.exists() and _read_checkpoint(current)[0] > last_round:
        current.unlink()
        if previous.exists():
            os.replace(previous, current)
        fsync_directory(run_dir)
