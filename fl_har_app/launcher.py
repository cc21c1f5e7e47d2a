"""Starting Flower's simulation engine (Ray) for one experiment, in this process.

The launcher of the front door: it hands a ServerApp (``strategies.server_app``) and the HAR
ClientApp (``clients.har_client``) to Flower's ``run_simulation``. The ServerApp runs in a thread
of this process (so progress and results are local), the ClientApps in
Ray actors, one CPU each. Environment settings measured on 2-core machines (see the project's
``benchmarks/round_overhead.py``) are applied before Ray starts; a variable already set by the
user wins.

Ray is started here (not by Flower), without its dashboard, so that the launcher knows the
session: Ctrl-C or SIGTERM mark the run as stopped after its last finished round, end every
process of the session and exit within seconds (130 / 143) instead of waiting for Flower's
threads; a watchdog (:mod:`fl_har_app.reaper`) ends what is left if the driver is killed.
With ``ray_address`` (or ``RAY_ADDRESS``) the launcher attaches to a running Ray cluster
instead and leaves that cluster's processes alone.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fl_har.config import ExperimentConfig
from fl_har.results import RunStore
from fl_har.stopping import StopSignal
from fl_har_app import reaper

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
    # glibc: at most 2 malloc arenas per process instead of 8 per core. Ray's gRPC and torch
    # threads otherwise each grow their own arena; measured on the 30-client default: the
    # driver's private memory about -110 MB, each worker -15 MB (benchmarks/RESULTS.md).
    "MALLOC_ARENA_MAX": "2",
    # Ray: no usage stats, no dashboard, quiet deduplicated logs.
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DEDUP_LOGS": "1",
    "OMP_NUM_THREADS": "1",
    # Ray >= 2.5x warns on every start unless this (future default) behaviour is chosen.
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
}


def apply_simulation_env() -> None:
    """Set :data:`SIMULATION_ENV` (values the user set win) for Ray's processes, and apply the
    arena limit to this already running process too (glibc reads the variable at start-up)."""
    for key, value in SIMULATION_ENV.items():
        os.environ.setdefault(key, value)
    arenas = os.environ["MALLOC_ARENA_MAX"]
    if arenas.isdigit() and int(arenas) > 0:
        _limit_malloc_arenas(int(arenas))


def _limit_malloc_arenas(count: int) -> None:
    """``mallopt(M_ARENA_MAX, count)`` where the C library is glibc; nothing elsewhere."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(ctypes.c_int(-8), ctypes.c_int(count))  # M_ARENA_MAX = -8 (malloc.h)
    except (OSError, AttributeError):  # musl or another libc: the default stays
        pass


class LaunchError(ValueError):
    """Ray could not be started or reached (the message names the address)."""


def resolve_ray_address(ray_address: str | None) -> str | None:
    """The Ray cluster to attach to: ``--ray-address``, else ``RAY_ADDRESS``, else None (start a
    private local Ray)."""
    address = (ray_address or os.environ.get("RAY_ADDRESS") or "").strip()
    return address or None


def ray_init_args(address: str | None, *, verbose: bool = False) -> dict:
    """``ray.init`` arguments: a private local Ray without dashboard, or an attachment.

    Ray refuses resource arguments (num_cpus, num_gpus) and dashboard options when it connects
    to an existing cluster: the cluster's own resources apply.
    """
    args: dict = {"logging_level": "info" if verbose else "error", "log_to_driver": verbose}
    if address:
        args["address"] = address
    else:
        # "local": a new private instance even if a cluster was recorded in
        # /tmp/ray/ray_current_cluster (plain ray.init() would attach to that one)
        args.update(address="local", num_cpus=os.cpu_count() or 1, num_gpus=0,
                    include_dashboard=False)
    return args


def _init_ray(address: str | None, verbose: bool) -> str:
    """Start (or attach to) Ray as Flower would; returns the local session directory ("" when
    attached)."""
    import ray

    # Ray's workers inherit the environment but not this process's sys.path (as in Flower).
    pythonpath = os.pathsep.join(sys.path)
    if os.environ.get("PYTHONPATH"):
        pythonpath = f"{pythonpath}{os.pathsep}{os.environ['PYTHONPATH']}"
    os.environ["PYTHONPATH"] = pythonpath
    try:
        ray.init(runtime_env={"env_vars": {"PYTHONPATH": pythonpath}},
                 **ray_init_args(address, verbose=verbose))
    except Exception as exc:
        if address is None:
            raise
        raise LaunchError(
            f"cannot attach to the Ray cluster at {address!r} (--ray-address / RAY_ADDRESS): "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if address is not None:
        return ""
    from ray._private import worker

    return str(worker._global_node.get_session_dir_path())


def _start_watchdog(session_dir: str) -> subprocess.Popen | None:
    """The reaper script in its own session: it outlives a killed driver and ends the rest."""
    if not session_dir or not sys.platform.startswith("linux"):
        return None
    return subprocess.Popen(
        [sys.executable, str(Path(reaper.__file__)), str(os.getpid()), session_dir],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _end_session(pids: Iterable[int], *, exclude: Iterable[int] = ()) -> None:
    """End ``pids`` (a snapshot of the local session's processes), except ``exclude``."""
    skip = set(exclude)
    reaper.terminate([pid for pid in pids if pid not in skip])


@contextmanager
def _stop_on_signals(
    stop: StopSignal | None, on_abort: Iterable[Callable[[], None]], session: dict
) -> Iterator[None]:
    """SIGINT / SIGTERM while the simulation runs: stop committing rounds, close the store, end
    Ray's processes and exit (130 / 143) without waiting for Flower's threads, which would block
    until the round's timeout once the actors are gone. A second signal exits at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handling = []

    def handler(signum, frame) -> None:
        code = 128 + signum
        if handling:
            os._exit(code)
        handling.append(signum)
        from fl_har_app.console import console, error_console

        name = signal.Signals(signum).name
        # Flower's worker threads log a traceback for every actor that the stop ends: noise
        logging.getLogger("flwr").disabled = True
        for callback in on_abort:
            try:
                callback()
            except Exception:  # noqa: BLE001, S110 -- best effort (a progress bar to close)
                pass
        store = stop.request(f"interrupted by {name}") if stop is not None else None
        if store is not None:
            error_console.print(
                f"[yellow]interrupted[/] ({name}): {store.last_finished_round} finished round(s) "
                f"kept in {store.run_dir}; {stop.resume_hint}", soft_wrap=True)
        else:
            error_console.print(f"[yellow]interrupted[/] ({name})")
        watchdog = session.get("watchdog")
        if session.get("local"):  # never the processes of a cluster we attached to
            pids = [*reaper.session_tree(session.get("dir", "")),
                    *reaper.descendants(os.getpid())]
            _end_session(pids, exclude=[watchdog.pid] if watchdog else [])
        console.file.flush()
        error_console.file.flush()
        os._exit(code)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    # ray.init replaces the SIGTERM handler with its own (sys.exit, which then waits for
    # Flower's threads and aborts): the launcher calls this again once Ray is up
    session["install"] = lambda: [signal.signal(sig, handler) for sig in previous]
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def start_simulation(
    server_app,
    num_nodes: int,
    *,
    cpus_per_client: float = 1.0,
    verbose: bool = False,
    ray_address: str | None = None,
    stop: StopSignal | None = None,
    on_abort: Iterable[Callable[[], None]] = (),
) -> None:
    """Run ``server_app`` with fl-har's ClientApp on ``num_nodes`` simulated nodes (Ray).

    Parameters
    ----------
    ray_address : str, optional
        Attach to this Ray cluster (``IP:PORT`` of ``ray start --head``, or ``auto``) instead of
        starting a private one; ``RAY_ADDRESS`` is used when not given.
    stop : StopSignal, optional
        Shared with the ServerApp: on SIGINT/SIGTERM it closes the run at its last finished round.
    on_abort : callables
        Called first on SIGINT/SIGTERM (e.g. to close a progress display).
    """
    apply_simulation_env()
    address = resolve_ray_address(ray_address)
    import ray
    from flwr.simulation import run_simulation as flower_run_simulation

    from clients.har_client import app as client_app
    from fl_har_app import simulation_patch

    # Flower's message delivery costs O(nodes x messages) per 0.1 s sweep (see the module).
    simulation_patch.install()
    level = logging.INFO if verbose else logging.ERROR
    logging.getLogger("flwr").setLevel(level)
    backend_config = {
        "client_resources": {"num_cpus": cpus_per_client, "num_gpus": 0.0},
        # Flower skips its own ray.init when Ray is already up (it is, see _init_ray).
        "init_args": ray_init_args(address, verbose=verbose),
    }
    session: dict = {}
    with _stop_on_signals(stop, on_abort, session):
        if ray.is_initialized():
            ray.shutdown()
        session["local"] = address is None
        session["dir"] = _init_ray(address, verbose)
        if "install" in session:
            session["install"]()
        session["watchdog"] = _start_watchdog(session["dir"])
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                flower_run_simulation(
                    server_app=server_app,
                    client_app=client_app,
                    num_supernodes=num_nodes,
                    backend_config=backend_config,
                    verbose_logging=verbose,
                )
        finally:
            # ray.shutdown leaves the raylet's agents running for a minute or two, and once
            # the raylet is gone they can no longer be found: take the tree first. The
            # watchdog (its command line names the session too) is no longer needed either.
            tree = reaper.session_tree(session["dir"])
            if ray.is_initialized():
                ray.shutdown()
            _end_session([*tree, *reaper.session_tree(session["dir"])])
            if session["watchdog"] is not None:
                try:
                    session["watchdog"].wait(timeout=5)
                except subprocess.TimeoutExpired:
                    session["watchdog"].kill()


def run_simulation(
    config: ExperimentConfig,
    store: RunStore,
    num_nodes: int,
    *,
    progress=None,
    verbose: bool = False,
    failure_injection: str = "",
    ray_address: str | None = None,
    stop: StopSignal | None = None,
    on_abort: Iterable[Callable[[], None]] = (),
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
        stop=stop,
    )
    start_simulation(
        server_app, num_nodes, cpus_per_client=config.simulation.cpus_per_client, verbose=verbose,
        ray_address=ray_address, stop=stop, on_abort=on_abort,
    )
    return statuses[-1] if statuses else "failed"
