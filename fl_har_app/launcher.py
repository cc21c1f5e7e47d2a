"""Starting Flower's simulation engine (Ray) for one experiment, in this process.

The launcher of the front door: it hands a ServerApp (``strategies.server_app``) and the HAR
ClientApp (``clients.har_client``) to Flower's ``run_simulation``. The ServerApp runs in a thread
of this process (so progress and results are local), the ClientApps in
Ray actors, one CPU each. Environment settings measured on 2-core machines (see the project's
``benchmarks/round_overhead.py``) are applied before Ray starts; a variable already set by the
user wins.
"""

from __future__ import annotations

import logging
import os
import warnings

from fl_har.config import ExperimentConfig
from fl_har.results import RunStore

# Why each setting (all measured on this project's workload):
SIMULATION_ENV = {
    # No internet: Flower must not phone home or look for updates.
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    # Pass model weights inline in Ray calls instead of through the object store (DeepConvLSTM's
    # 1.6 MB state would otherwise round-trip through plasma every message).
    "RAY_max_direct_call_object_size": str(8 * 1024 * 1024),
    # glibc: keep the LSTM's large per-step buffers (17 MB) in the heap instead of mmap/munmap.
    "MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024),
    "MALLOC_TRIM_THRESHOLD_": str(1024 * 1024 * 1024),
    # Ray: no usage stats, no dashboard, quiet deduplicated logs.
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DEDUP_LOGS": "1",
    "OMP_NUM_THREADS": "1",
    # Ray >= 2.5x warns on every start unless this (future default) behaviour is chosen.
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
}


def apply_simulation_env() -> None:
    for key, value in SIMULATION_ENV.items():
        os.environ.setdefault(key, value)


def start_simulation(
    server_app, num_nodes: int, *, cpus_per_client: float = 1.0, verbose: bool = False
) -> None:
    """Run ``server_app`` with fl-har's ClientApp on ``num_nodes`` simulated nodes (Ray)."""
    apply_simulation_env()
    from flwr.simulation import run_simulation as flower_run_simulation

    from clients.har_client import app as client_app

    level = logging.INFO if verbose else logging.ERROR
    logging.getLogger("flwr").setLevel(level)
    backend_config = {
        "client_resources": {"num_cpus": cpus_per_client, "num_gpus": 0.0},
        "init_args": {
            "num_cpus": os.cpu_count() or 1,
            "num_gpus": 0,
            "logging_level": "info" if verbose else "error",
            "log_to_driver": verbose,
        },
    }
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        flower_run_simulation(
            server_app=server_app,
            client_app=client_app,
            num_supernodes=num_nodes,
            backend_config=backend_config,
            verbose_logging=verbose,
        )


def run_simulation(
    config: ExperimentConfig,
    store: RunStore,
    num_nodes: int,
    *,
    progress=None,
    verbose: bool = False,
    failure_injection: str = "",
) -> str:
    """Run one experiment on Flower's Ray simulation engine; returns the run's final status.

    ``num_nodes`` simulated nodes are started, one per subject of the dataset (partition ``i`` is
    its ``i``-th subject); the server trains with the experiment's client subjects only. Nodes are
    virtual: only ``os.cpu_count() / simulation.cpus_per_client`` actors do the work.
    """
    from strategies.server_app import make_server_app

    statuses: list[str] = []
    server_app = make_server_app(
        config,
        store,
        progress=progress,
        failure_injection=failure_injection,
        on_finish=statuses.append,
    )
    start_simulation(
        server_app, num_nodes, cpus_per_client=config.simulation.cpus_per_client, verbose=verbose
    )
    return statuses[-1] if statuses else "failed"
