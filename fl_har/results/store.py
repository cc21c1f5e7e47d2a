"""The results store: one run directory, written atomically by the server as each round finishes.

Crash safety: every file is replaced atomically (temp file in the same directory, fsync,
``os.replace``), the checkpoint is written first and ``meta.json`` last. A crash between two writes
can leave rows of the unfinished round in some tables; readers (:func:`load_run`,
:meth:`RunStore.resume`) drop every row after ``last_finished_round``, and ``resume`` rewrites the
tables to that committed state. Before a new checkpoint replaces ``checkpoint.pt``, the committed
one is copied to ``checkpoint.prev.pt``, so the model of the last finished round is always on disk.
The files are listed in :mod:`fl_har.results.layout`.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from fl_har.atomic import TEMP_SUFFIX, write_bytes_atomic
from fl_har.results.checkpoints import (
    checkpoint_bytes,
    discard_uncommitted_checkpoints,
    read_checkpoint,
)
from fl_har.results.layout import (
    ATTACKS_FILE,
    CHECKPOINT_FILE,
    CLIENTS_CSV,
    CLIENTS_FILE,
    CONFIG_FILE,
    FAILURES_CSV,
    FINAL_STATUSES,
    META_FILE,
    META_FORMAT,
    PARTICIPANTS_CSV,
    PREVIOUS_CHECKPOINT_FILE,
    ROUNDS_CSV,
    ROUNDS_FILE,
    RUN_FILES,
    STATUS_RUNNING,
    SUMMARY_FILE,
    UPDATES_CSV,
    UPDATES_FILE,
    ResultsError,
)
from fl_har.results.per_client import client_summary
from fl_har.results.provenance import (
    RESUME_IGNORED_KEYS,
    collect_versions,
    config_differences,
    config_toml,
    now,
)
from fl_har.results.readers import RunTables, load_run
from fl_har.results.schemas import (
    ATTACK_SCHEMA,
    CLIENT_SCHEMA,
    attack_frame,
    csv_bytes,
    failures_frame,
    parquet_bytes,
    records,
    rounds_frame,
    updates_frame,
)
from fl_har.results.summary import summary_markdown
from fl_har.results.validation import (
    as_int,
    as_str,
    check_class_count,
    check_unique_clients,
    check_unique_updates,
    validate_attack_row,
    validate_failure,
    validate_round_row,
    validate_update_row,
)


class RunStore:
    """One run directory, written by the server after every finished round.

    Layout: ``config.toml`` (resolved config, written once), ``meta.json`` (seed, versions,
    start/end time, status ``running``/``finished``/``failed``, message, ``last_finished_round``),
    ``attacks.parquet`` (round x client x attack), ``rounds.parquet`` + ``rounds.csv``,
    ``clients.parquet`` + ``clients.csv`` (client x attack summary), ``updates.parquet`` +
    ``updates.csv`` (round x addressed client), ``failures.csv``,
    ``summary.md`` and ``checkpoint.pt`` (``{"round": int, "state_dict": {...}}``, load with
    ``weights_only=True``; ``checkpoint.prev.pt`` is a copy of the one before it).
    """

    def __init__(self, run_dir: Path, config: dict[str, Any], meta: dict[str, Any],
                 attacks: pd.DataFrame, rounds: pd.DataFrame, failures: pd.DataFrame,
                 updates: pd.DataFrame) -> None:
        """Use :meth:`create` or :meth:`resume`."""
        self._updates = updates
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
        seed = as_int(seed, "seed")
        config_text = config_toml(config)
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
            "started_at": now(),
            "ended_at": None,
            "resumed_at": [],
            "status": STATUS_RUNNING,
            "message": "",
            "last_finished_round": 0,
            "round_columns": ["round"],
        }
        store = cls(run_dir, tomllib.loads(config_text), meta, attack_frame([]),
                    rounds_frame([]), failures_frame([]), updates_frame([]))
        store._write_tables(store._attacks, store._rounds, store._failures, store._updates, meta)
        store._write_meta(meta)
        return store

    @classmethod
    def resume(cls, run_dir: str | os.PathLike[str], config: Mapping[str, Any]) -> RunStore:
        """Reopen a run to continue after its last finished round.

        ``config`` must equal the stored ``config.toml`` except for
        :data:`~fl_har.results.provenance.RESUME_IGNORED_KEYS` and ``run.rounds``, which may grow
        (extending a finished run: ``config.toml`` then records the new number of rounds).
        Rows of an unfinished round, stray temp files and a checkpoint newer than the last
        finished round are discarded, and every table is rewritten to the committed state.
        """
        tables = load_run(run_dir)
        differences = config_differences(tables.config, config,
                                          (*RESUME_IGNORED_KEYS, "run.rounds"))
        stored_rounds = tables.config.get("run", {}).get("rounds")
        given_rounds = config.get("run", {}).get("rounds", stored_rounds)
        done = tables.meta["last_finished_round"]
        if isinstance(given_rounds, int) and given_rounds < done:
            raise ResultsError(
                f"cannot resume {tables.run_dir} with run.rounds = {given_rounds}: it already "
                f"finished {done} rounds (keep run.rounds >= {done} to extend it)"
            )
        if differences:
            raise ResultsError(
                f"cannot resume {tables.run_dir}: the config differs from its {CONFIG_FILE} in "
                + "; ".join(differences)
            )
        run_dir = tables.run_dir
        for name in RUN_FILES:
            (run_dir / (name + TEMP_SUFFIX)).unlink(missing_ok=True)
        meta = dict(tables.meta)
        stored_config = tables.config
        if given_rounds != stored_rounds:
            stored_config = {**tables.config, "run": {**tables.config["run"],
                                                      "rounds": given_rounds}}
            write_bytes_atomic(run_dir / CONFIG_FILE, config_toml(stored_config).encode("utf-8"))
            meta["extended"] = [*meta.get("extended", []),
                                {"from_rounds": stored_rounds, "to_rounds": given_rounds}]
        discard_uncommitted_checkpoints(run_dir, meta["last_finished_round"])
        meta.update(status=STATUS_RUNNING, message="", ended_at=None,
                    resumed_at=[*meta.get("resumed_at", []), now()],
                    round_columns=list(tables.rounds.columns))
        store = cls(run_dir, stored_config, meta, tables.attacks, tables.rounds,
                    tables.failures, tables.updates)
        store._write_tables(tables.attacks, tables.rounds, tables.failures, tables.updates, meta)
        store._write_meta(meta)
        return store

    # -- state -----------------------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        return self._run_dir

    @property
    def config(self) -> dict[str, Any]:
        """The stored config (as read back from ``config.toml``)."""
        return tomllib.loads(config_toml(self._config))

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

    def update_table(self) -> pd.DataFrame:
        return self._updates.copy()

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
                round_number, state = read_checkpoint(path)
                if round_number <= self.last_finished_round and (
                        best is None or round_number > best[0]):
                    best = (round_number, state)
        return best

    # -- writing ---------------------------------------------------------------------------------

    def record_round(self, round: int, attack_rows: list[dict[str, Any]],
                     round_row: dict[str, Any], failures: list[dict[str, Any]],
                     model_state: dict[str, torch.Tensor] | None,
                     update_rows: list[dict[str, Any]] | None = None) -> None:
        """Commit one finished round: append its rows and rewrite every file atomically.

        ``update_rows``: one row per client addressed this round (see ``updates.parquet``).

        Order: checkpoint, tables, summary, ``meta.json`` (the commit). Everything is validated
        before the first write; in-memory state changes only after the commit, so a failed call
        can be retried. ``model_state=None`` stores no checkpoint (model unchanged this round).
        """
        round_number = as_int(round, "round")
        if self._meta["status"] != STATUS_RUNNING:
            raise ResultsError(
                f"run {self._run_dir} is {self._meta['status']}: resume it before recording rounds"
            )
        if round_number != self.last_finished_round + 1:
            raise ResultsError(
                f"round {round_number} recorded out of order: last finished round is "
                f"{self.last_finished_round}, expected round {self.last_finished_round + 1}"
            )
        new_attacks = [validate_attack_row(row, f"attack_rows[{i}]", round_number)
                       for i, row in enumerate(attack_rows)]
        check_unique_clients(new_attacks)
        check_class_count(self._attacks, new_attacks)
        new_failures = [validate_failure(row, f"failures[{i}]", round_number)
                        for i, row in enumerate(failures)]
        new_updates = [validate_update_row(row, f"update_rows[{i}]", round_number)
                       for i, row in enumerate(update_rows or [])]
        check_unique_updates(new_updates)
        attacks = attack_frame(records(self._attacks) + new_attacks)
        rounds = rounds_frame(records(self._rounds) + [validate_round_row(round_row, round_number)])
        failure_table = failures_frame(records(self._failures) + new_failures)
        update_table = updates_frame(records(self._updates) + new_updates)
        checkpoint = None if model_state is None else checkpoint_bytes(round_number, model_state)

        meta = {**self._meta, "last_finished_round": round_number,
                "round_columns": list(rounds.columns)}
        # A checkpoint left by a failed earlier attempt at this round must not be committed.
        discard_uncommitted_checkpoints(self._run_dir, self.last_finished_round)
        if checkpoint is not None:
            self._write_checkpoint(checkpoint)
        self._write_tables(attacks, rounds, failure_table, update_table, meta)
        self._write_meta(meta)
        self._meta, self._attacks, self._rounds, self._failures, self._updates = (
            meta, attacks, rounds, failure_table, update_table)

    def describe_attacks(self, attacks: Mapping[str, Mapping[str, str]]) -> None:
        """Record what the attack library says about each attack of the run (family, variant,
        base, paper) in ``meta.json`` under ``"attacks"``; reports read them from there."""
        described = {}
        for name, info in attacks.items():
            described[as_str(name, "attack name")] = {
                key: as_str(value, f"attacks[{name!r}][{key!r}]") for key, value in info.items()
            }
        meta = {**self._meta, "attacks": described}
        self._write_meta(meta)
        self._meta = meta

    def describe_participants(self, participants: list[Mapping[str, Any]]) -> None:
        """Write ``participants.csv``: who each participant id of the run is (its subject and,
        for clients that are recordings or sessions, which part of which recording)."""
        write_bytes_atomic(self._run_dir / PARTICIPANTS_CSV,
                           pd.DataFrame(participants).to_csv(index=False).encode())

    def finish(self, status: str, message: str = "") -> None:
        """Mark the run ``finished`` or ``failed`` (with a message) and refresh ``summary.md``."""
        if status not in FINAL_STATUSES:
            raise ResultsError(f"status = {status!r}: expected one of {FINAL_STATUSES}")
        meta = {**self._meta, "status": status, "message": as_str(message, "message"),
                "ended_at": now()}
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
                      failures: pd.DataFrame, updates: pd.DataFrame,
                      meta: dict[str, Any]) -> None:
        clients = client_summary(attacks)
        write_bytes_atomic(self._run_dir / ATTACKS_FILE, parquet_bytes(attacks, ATTACK_SCHEMA))
        write_bytes_atomic(self._run_dir / ROUNDS_FILE, parquet_bytes(rounds))
        write_bytes_atomic(self._run_dir / ROUNDS_CSV, csv_bytes(rounds))
        write_bytes_atomic(self._run_dir / CLIENTS_FILE, parquet_bytes(clients, CLIENT_SCHEMA))
        write_bytes_atomic(self._run_dir / CLIENTS_CSV, csv_bytes(clients))
        write_bytes_atomic(self._run_dir / FAILURES_CSV, csv_bytes(failures))
        write_bytes_atomic(self._run_dir / UPDATES_FILE, parquet_bytes(updates))
        write_bytes_atomic(self._run_dir / UPDATES_CSV, csv_bytes(updates))
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
