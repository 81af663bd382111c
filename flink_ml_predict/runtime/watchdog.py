"""Ends a process-mode Python worker whose TaskManager is gone.

On a cluster, each TaskManager starts its Python workers through ``pyflink-udf-runner.sh``
(java -> bash -> python beam_boot). When the TaskManager dies (``kill -9``, OOM killer, lost
container), Beam's SDK harness sees its control channel break and shuts down, but that shutdown
can deadlock for good: ``logging.shutdown()`` holds the Beam log handler's lock while the handler's
``close()`` joins the log-reader thread, which waits for that same lock to report the broken
channel. The orphan then holds its memory, its sockets and a Python process per kill.

The watchdog polls the TaskManager (the nearest ancestor that is not a shell or ``tee``) and
ends the worker with ``os._exit`` once it has disappeared: a worker without its TaskManager has
nothing left to do, its rows are replayed from the last checkpoint by the restarted task. It
runs only in process mode (``python -m pyflink.fn_execution.beam.beam_boot``), never in the
client's own process (loopback mode on the mini-cluster). Linux only (``/proc``).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable

_LOGGER = logging.getLogger(__name__)
_WRAPPERS = frozenset({"bash", "sh", "dash", "tee"})
_BOOT_MODULE = "pyflink.fn_execution.beam.beam_boot"
_started = threading.Lock()
_running: list[threading.Thread] = []


def _stat(pid: int) -> tuple[str, int, str] | None:
    """(comm, parent pid, start time) of `pid` from /proc, or None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    # comm is in parentheses and may itself hold spaces or parentheses: split at the last ')'.
    head, _, tail = text.rpartition(")")
    fields = tail.split()
    if len(fields) < 20:
        return None
    return head.partition("(")[2], int(fields[1]), fields[19]


def _program(pid: int, comm: str) -> str:
    """The name of the program `pid` runs. A script started through its ``#!`` line has the
    script's name as ``comm`` (``pyflink-udf-run``), so the executable's name is asked first."""
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return comm


def owner_of(pid: int) -> int | None:
    """The nearest ancestor of `pid` that is not a shell or ``tee`` (the TaskManager's JVM for a
    worker started by ``pyflink-udf-runner.sh``), or None when there is none."""
    stat = _stat(pid)
    while stat is not None:
        parent = stat[1]
        if parent <= 1:
            return None
        stat = _stat(parent)
        if stat is not None and _program(parent, stat[0]) not in _WRAPPERS:
            return parent
    return None


def watch(pid: int, on_gone: Callable[[], None], interval: float = 0.5) -> threading.Thread:
    """Starts a daemon thread that calls `on_gone` once process `pid` no longer exists (a pid
    reused by a new process counts as gone: the start time is compared)."""
    first = _stat(pid)
    started = first[2] if first else None
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(interval):
            now = _stat(pid)
            if now is None or now[2] != started:
                on_gone()
                return

    thread = threading.Thread(target=poll, name=f"flink-ml-predict-watchdog-{pid}", daemon=True)
    thread.start()
    return thread


def _exit_orphan(owner: int) -> None:
    # No logging here: the deadlock this ends holds the lock of Beam's log handler, and a log
    # call would wait for it forever. stderr goes to the worker's boot log through tee.
    message = (f"flink-ml-predict: the TaskManager (pid {owner}) of this Python worker is gone; "
               "exiting\n")
    try:
        os.write(2, message.encode())
    except OSError:
        pass
    os._exit(1)


def in_process_mode() -> bool:
    """True in a Python worker that a TaskManager started as its own process."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return getattr(spec, "name", None) == _BOOT_MODULE


def start_if_process_worker() -> None:
    """Starts the watchdog once per process, when this is a process-mode worker on Linux."""
    if not sys.platform.startswith("linux") or not in_process_mode():
        return
    with _started:
        if _running:
            return
        owner = owner_of(os.getpid())
        if owner is None:
            return
        _LOGGER.info("watching the TaskManager (pid %d) of this Python worker", owner)
        _running.append(watch(owner, lambda: _exit_orphan(owner)))
