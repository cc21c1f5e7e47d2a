"""What a run directory holds: file names, run statuses, the ``meta.json`` format number.

- ``config.toml``: the resolved config that ran, written once at start.
- ``meta.json``: seed, package versions, start/end time, status, message and
  ``last_finished_round``. It is written *last* in every round and is the commit record: a round
  exists only once ``meta.json`` names it. It also lists the committed columns of the rounds
  table (``round_columns``).
- ``attacks.parquet``: long table, one row per round x client x attack (counts as int64 lists).
- ``rounds.parquet`` + ``rounds.csv``: one row per round (global metrics, timings).
- ``clients.parquet`` + ``clients.csv``: one row per client x attack, recomputed from all rows.
- ``updates.parquet`` + ``updates.csv``: one row per round x addressed client: ``status``
  (``ok`` / ``failed``), N, loss, time and whatever else the server measured of that update
  (its norm, an aggregator's decision, epsilon...). The round's cohort is its rows.
- ``failures.csv``: one row per failed client reply (round, partition, subject, node_id, reason).
- ``summary.md``: short human-readable summary.
- ``checkpoint.pt`` (+ ``checkpoint.prev.pt``): global model state after a finished round.
"""

from __future__ import annotations


class ResultsError(ValueError):
    """A run directory or the rows given to it are invalid; the message names file/field/value."""


CONFIG_FILE = "config.toml"
META_FILE = "meta.json"
ATTACKS_FILE = "attacks.parquet"
ROUNDS_FILE = "rounds.parquet"
ROUNDS_CSV = "rounds.csv"
CLIENTS_FILE = "clients.parquet"
CLIENTS_CSV = "clients.csv"
FAILURES_CSV = "failures.csv"
UPDATES_FILE = "updates.parquet"
UPDATES_CSV = "updates.csv"
PARTICIPANTS_CSV = "participants.csv"
SUMMARY_FILE = "summary.md"
CHECKPOINT_FILE = "checkpoint.pt"
PREVIOUS_CHECKPOINT_FILE = "checkpoint.prev.pt"
RUN_FILES = (
    CONFIG_FILE, META_FILE, ATTACKS_FILE, ROUNDS_FILE, ROUNDS_CSV, CLIENTS_FILE, CLIENTS_CSV,
    FAILURES_CSV, UPDATES_FILE, UPDATES_CSV, PARTICIPANTS_CSV, SUMMARY_FILE, CHECKPOINT_FILE,
    PREVIOUS_CHECKPOINT_FILE,
)
META_FORMAT = 1

STATUS_RUNNING = "running"
FINAL_STATUSES = ("finished", "failed")
