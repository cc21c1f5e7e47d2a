"""Ending the processes of a local Ray session: on Ctrl-C/SIGTERM, and after the driver is killed.

Ray's head processes share the driver's fate (Linux parent-death signal), but the raylet's agents
(DashboardAgent, RuntimeEnvAgent, ~190 MB) only notice a dead raylet after a minute or two. The
session's head processes (gcs_server, raylet, monitors) name the session directory on their
command line; the agents and workers are their children but rename themselves
(``ray::DashboardAgent``), so a session is "the processes naming its directory and everything
below them" (:func:`session_tree`), taken while the raylet still lives. Two remedies:

- the launcher's signal handler and normal shutdown snapshot that tree, then :func:`terminate` it;
- a small watchdog, this file run as a script (``python reaper.py DRIVER_PID SESSION_DIR``, in its
  own session so Ctrl-C does not reach it), snapshots the tree every second while the driver
  lives; once the driver has exited, however (also SIGKILL), it ends every process it saw that
  still runs (the same pid with the same start time).

Only the standard library and ``/proc`` (Linux) are used, so the watchdog starts in milliseconds
and imports nothing of fl-har.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import defaultdict


def _fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), None if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()  # the command name may contain spaces


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None if it is gone."""
    fields = _fields(pid)
    return None if fields is None else (fields[0], int(fields[1]))


def start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot): tells a process from a later one that
    reuses its pid."""
    fields = _fields(pid)
    return None if fields is None else int(fields[19])


def alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie counts as gone: it only waits to be reaped)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def _pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def descendants(root: int) -> list[int]:
    """Every process below ``root`` in the process tree (children first)."""
    children: dict[int, list[int]] = defaultdict(list)
    for pid in _pids():
        stat = _stat(pid)
        if stat is not None:
            children[stat[1]].append(pid)
    out: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def session_processes(session_dir: str) -> list[int]:
    """Processes whose command line names ``session_dir`` (every process of that Ray session)."""
    if not session_dir:
        return []
    needle = os.fsencode(session_dir)
    own = os.getpid()
    out = []
    for pid in _pids():
        if pid == own:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if needle in handle.read():
                    out.append(pid)
        except OSError:
            continue
    return out


def session_tree(session_dir: str) -> list[int]:
    """The processes of a local Ray session: those naming ``session_dir`` and all below them."""
    heads = session_processes(session_dir)
    out = list(heads)
    for pid in heads:
        out.extend(descendants(pid))
    return list(dict.fromkeys(out))


def terminate(pids: list[int], grace: float = 3.0) -> list[int]:
    """SIGTERM ``pids``, then SIGKILL those still running after ``grace`` seconds; returns the
    ones that were killed."""
    pids = [pid for pid in dict.fromkeys(pids) if pid != os.getpid() and alive(pid)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.05)
    killed = [pid for pid in pids if alive(pid)]
    for pid in killed:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return killed


def watch(driver: int, session_dir: str, poll: float = 1.0) -> None:
    """Remember the session's processes while ``driver`` runs; once it has exited, end those
    still running."""
    seen: dict[int, int | None] = {}
    while alive(driver):
        for pid in session_tree(session_dir):
            seen.setdefault(pid, start_time(pid))
        deadline = time.monotonic() + poll
        while time.monotonic() < deadline and alive(driver):
            time.sleep(0.1)
    for pid in session_tree(session_dir):
        seen.setdefault(pid, start_time(pid))
    terminate([pid for pid, started in seen.items()
               if started is not None and start_time(pid) == started])


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch(int(sys.argv[1]), sys.argv[2])
