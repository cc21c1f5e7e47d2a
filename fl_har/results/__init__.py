"""Results store: one directory per simulation run, written atomically as each round finishes.

Modules, each importing only those before it:
:mod:`~fl_har.results.layout` (file names, statuses, :class:`ResultsError`),
:mod:`~fl_har.results.schemas` (columns, dtypes, table builders, Parquet/CSV encodings),
:mod:`~fl_har.results.validation` (rows handed in by the server),
:mod:`~fl_har.results.per_client` (the client table, :func:`client_summary`),
:mod:`~fl_har.results.provenance` (config TOML and differences, versions, timestamps),
:mod:`~fl_har.results.checkpoints` (model checkpoints),
:mod:`~fl_har.results.readers` (:func:`load_run`, :class:`RunTables`),
:mod:`~fl_har.results.summary` (``summary.md``) and :mod:`~fl_har.results.store`
(:class:`RunStore`, the writer).

Metrics follow Bock et al., "Label Leakage in Federated Inertial-based Human Activity Recognition"
(arXiv:2505.20924; eq. 4 LeAcc, eq. 5 LnAcc, ClassAcc in the text after eq. 5) as defined in
:mod:`fl_har.metrics`; this package only stores them and aggregates them per client.
"""

from fl_har.results.layout import CONFIG_FILE, META_FILE, ResultsError
from fl_har.results.per_client import client_summary
from fl_har.results.provenance import RESUME_IGNORED_KEYS, flatten_config
from fl_har.results.readers import RunTables, load_run
from fl_har.results.schemas import ATTACK_COLUMNS, CLIENT_COLUMNS, export_csv, parse_count_list
from fl_har.results.store import RunStore

__all__ = [
    "ATTACK_COLUMNS", "CLIENT_COLUMNS", "CONFIG_FILE", "META_FILE", "RESUME_IGNORED_KEYS",
    "ResultsError", "RunStore", "RunTables", "client_summary", "export_csv", "flatten_config",
    "load_run", "parse_count_list",
]
