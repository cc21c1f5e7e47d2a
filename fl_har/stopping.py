"""Stopping a run from another thread (Ctrl-C, SIGTERM) without losing its finished rounds.

The ServerApp commits each round to the results store from its own thread; a signal arrives in
the main thread. :class:`StopSignal` is the handshake between the two: the main thread calls
:meth:`StopSignal.request`, which waits for a round being committed to finish, then marks the
run's store as stopped; every later commit raises :class:`RunStopped` instead of writing. The
run directory therefore ends at its last finished round and ``--resume`` continues it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class RunStopped(RuntimeError):
    """A commit was refused because the run was asked to stop."""


class StopSignal:
    """A stop request shared by the thread that commits rounds and the one that handles signals.

    Parameters
    ----------
    resume_hint : str
        How to continue the run, appended to the store's final message (e.g. "continue with
        fl-har run --resume").
    """

    def __init__(self, resume_hint: str = "continue with --resume") -> None:
        self.resume_hint = resume_hint
        self.reason = ""
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._store: Any = None

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def attach(self, store: Any) -> None:
        """The results store the run is writing now (a sweep attaches one run after another)."""
        with self._lock:
            self._store = store

    @contextmanager
    def commit(self) -> Iterator[None]:
        """Hold while writing a round or the run's end; raises :class:`RunStopped` once a stop was
        requested, so nothing is written after :meth:`request` marked the store."""
        with self._lock:
            if self._event.is_set():
                raise RunStopped(self.reason or "stop requested")
            yield

    def request(self, reason: str, timeout: float = 10.0) -> Any:
        """Ask the run to stop; returns the attached store (marked ``failed`` with ``reason``).

        Waits up to ``timeout`` seconds for a commit in progress. If it does not end in time the
        store is left as it is (its meta still says ``running``; resuming works either way).
        """
        self.reason = reason
        self._event.set()
        if not self._lock.acquire(timeout=timeout):
            return None
        try:
            store = self._store
            if store is not None and store.meta.get("status") == "running":
                store.finish(
                    "failed",
                    f"{reason} after round {store.last_finished_round}; {self.resume_hint}",
                )
            return store
        finally:
            self._lock.release()
