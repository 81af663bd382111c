"""Steady-state figures of a benchmark run, seen from outside the process that does the work.

A :class:`Sampler` polls the fake server's ``GET /_stats`` (requests completed so far) and the CPU
time of a process tree (``/proc/<pid>/stat``: user + system time of the command, its JVM and the
Python workers the JVM starts) a few times a second. :func:`steady_window` then takes the part of
the run between two fractions of the rows (10% and 90% by default): rows/s over that window is the
steady-state throughput (JVM and worker start-up, the first connections and the tail are outside
it), and the CPU time spent in the window divided by the rows completed in it is the CPU cost of a
row, per kind of process.

Linux only (``/proc``). The CPU times have the kernel's clock-tick resolution (10 ms): over a
window of several seconds that is well under 1%.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from dataclasses import dataclass, field

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[str, int, float] | None:
    """(command name, parent pid, user + system CPU seconds) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    name = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is the state (field 3 of proc(5)); utime and stime are fields 14 and 15.
    return name, int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def process_tree(root: int) -> list[tuple[int, str, float]]:
    """(pid, kind, CPU seconds) of ``root`` and its live descendants; kinds: "client" (root),
    "jvm", "workers" (Python processes under the JVM: process mode's workers), "other"."""
    table: dict[int, tuple[str, int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                table[int(entry)] = stat
    children: dict[int, list[int]] = {}
    for pid, (_, parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    result = []
    stack = [(root, False)]
    while stack:
        pid, under_jvm = stack.pop()
        if pid not in table:
            continue
        name, _, cpu = table[pid]
        if pid == root:
            kind = "client"
        elif name == "java":
            kind = "jvm"
        elif name.startswith("python") and under_jvm:
            kind = "workers"
        else:
            kind = "other"
        result.append((pid, kind, cpu))
        stack += [(child, under_jvm or name == "java") for child in children.get(pid, ())]
    return result


def tree_cpu(root: int) -> dict[str, float]:
    """CPU seconds of ``root``'s process tree by kind (see :func:`process_tree`)."""
    result = {"client": 0.0, "jvm": 0.0, "workers": 0.0, "other": 0.0}
    for _, kind, cpu in process_tree(root):
        result[kind] += cpu
    return result


def server_stats(port: int, key: str) -> dict:
    """The fake server's ``/_stats``."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/_stats",
                                     headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


@dataclass
class Sample:
    """One observation: monotonic time, requests completed, CPU seconds by kind."""

    at: float
    completed: int
    cpu: dict[str, float]


@dataclass
class Sampler:
    """Samples a server and two process trees (the command's and the server's) in a thread.

    Args:
        port: the fake server's port.
        key: its api-key.
        server_pid: the server process (its CPU is reported as "server").
        interval: seconds between samples.
    """

    port: int
    key: str
    server_pid: int
    interval: float = 0.25
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self, pid: int) -> None:
        """Starts sampling the process tree of ``pid``."""
        self._thread = threading.Thread(target=self._run, args=(pid,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops sampling (after one last sample)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self, pid: int) -> None:
        while True:
            stopping = self._stop.is_set()
            cpu = tree_cpu(pid)
            server = _stat(self.server_pid)
            cpu["server"] = server[2] if server else 0.0
            try:
                completed = int(server_stats(self.port, self.key)["completed"])
            except OSError:
                completed = self.samples[-1].completed if self.samples else 0
            self.samples.append(Sample(time.monotonic(), completed, cpu))
            if stopping:
                return
            self._stop.wait(self.interval)


@dataclass(frozen=True)
class Window:
    """Figures over the steady part of a run."""

    rows: int
    seconds: float
    cpu_ms_per_row: dict[str, float]

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def steady_window(samples: list[Sample], total: int, low: float = 0.1,
                  high: float = 0.9) -> Window | None:
    """The window from the first sample at ``low`` of ``total`` completed requests to the first
    at ``high``; None when the run never got there."""
    start = next((s for s in samples if s.completed >= low * total), None)
    end = next((s for s in samples if s.completed >= high * total), None)
    if start is None or end is None or end.at <= start.at:
        return None
    rows = end.completed - start.completed
    cpu = {kind: 1000.0 * (end.cpu.get(kind, 0.0) - start.cpu.get(kind, 0.0)) / rows
           for kind in end.cpu}
    cpu["total"] = sum(v for k, v in cpu.items() if k != "server")
    return Window(rows, end.at - start.at, cpu)
