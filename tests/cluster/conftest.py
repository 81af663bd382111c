"""A standalone Flink cluster started from the pip distribution, shared by the tests of this folder.

``$FLINK_HOME`` is the installed ``pyflink`` package. Its ``conf`` is copied to a directory of the
test session and adjusted there (free REST and RPC ports on 127.0.0.1, 2 slots, this venv's Python
for the TaskManagers' Python workers, quick heartbeats and REST caches, temp files in the session
directory); ``FLINK_CONF_DIR``, ``FLINK_LOG_DIR`` and ``FLINK_PID_DIR`` point into that directory,
so every file the cluster writes is ours, and ``start-cluster.sh`` starts one JobManager and one
TaskManager. Readiness is polled from the REST API (``/overview``) against a deadline.

Teardown stops every daemon listed in our pid files (and their Python workers) by pid: SIGTERM,
then SIGKILL after a deadline, and fails if any is still running. Processes are identified by
their command line naming our ``--configDir``, so a reused pid is never signalled. A killed
process whose parent does not reap it stays a zombie; zombies count as gone.

Like the docker-compose cluster, the daemons run with a provider key in their environment
(``OPENAI_API_KEY`` = :data:`DAEMON_KEY`, which the SQL-client path needs there), and every
``log4j*.properties`` of the conf directory gets the project's :data:`LOG4J_SETTINGS`, which keep
Beam from logging the Python workers' environment: no file of the cluster may hold the key.

Log locations (``cluster.log_dir``): ``flink-<ident>-standalonesession-0-<host>.log`` (JobManager),
``flink-<ident>-taskexecutor-<n>-<host>.log`` / ``.out`` (TaskManager n: its log, and its stdout,
where the print connector writes), ``flink-<ident>-client-<host>.log`` (``bin/flink``). A Python
worker's boot log, ``<io.tmp.dirs>/python-dist-<uuid>/flink-python-udf-boot.log``, is deleted
with its task; the TaskManager log keeps each worker's interpreter and environment.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from flink_ml_predict.environment import LOG4J_SETTINGS
from tests.conftest import (
    ROOT,
    canary_key,
    free_port,
    print_rows,
    rest_json,
    root_exceptions,
    subprocess_environ,
    wait_until,
)

IDENT = "fmp-cluster-test"  # FLINK_IDENT_STRING: part of every pid and log file name
SLOTS = 2
START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0
DAEMON_KEY_MADE = time.time()
DAEMON_KEY = canary_key()  # in the JobManager's and TaskManagers' environment, in no file


def flink_home() -> Path:
    """The installed PyFlink package: the pip distribution's FLINK_HOME."""
    import pyflink

    return Path(pyflink.__file__).resolve().parent


def base_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the test session before any in-process job, minus provider keys."""
    return subprocess_environ(extra)


def _set_option(config: dict[str, Any], key: str, value: Any) -> None:
    """Sets a dotted key in Flink's nested config.yaml, replacing a flattened spelling of it."""
    config.pop(key, None)
    node = config
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def _process_state(pid: int) -> str | None:
    """The state letter of a process (R, S, Z...), None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[0]


def cmdline(pid: int) -> str:
    """The command line of a process (empty if it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def is_running(pid: int) -> bool:
    """Whether the process exists and is not a zombie."""
    state = _process_state(pid)
    return state is not None and state != "Z"


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process (this kernel has no /proc/<pid>/task/*/children)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    return parents


def descendants_of(pid: int) -> list[int]:
    """All running descendants of a process (its Python workers, their shells and tees)."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    result: list[int] = []
    pending = list(children.get(pid, []))
    while pending:
        child = pending.pop()
        if child not in result:
            result.append(child)
            pending.extend(children.get(child, []))
    return [p for p in result if is_running(p)]


@dataclass
class StandaloneCluster:
    """A running standalone cluster (one JobManager, TaskManagers started by us)."""

    home: Path
    root: Path  # the session directory holding conf/, log/, pid/, tmp/
    rest_port: int
    rpc_port: int
    python: str
    started_pids: set[int] = field(default_factory=set)
    # Processes of ours that no daemon owns any more (Python workers of a killed TaskManager),
    # with their command line when recorded: stopped at teardown if still running.
    strays: dict[int, str] = field(default_factory=dict)

    @property
    def conf_dir(self) -> Path:
        return self.root / "conf"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def pid_dir(self) -> Path:
        return self.root / "pid"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def jobmanager(self) -> str:
        """HOST:PORT for `flink-ml-predict run --jobmanager`."""
        return f"127.0.0.1:{self.rest_port}"

    @property
    def pids(self) -> dict[str, list[int]]:
        """Running daemons by kind (standalonesession, taskexecutor), from our pid files."""
        return {kind: self.daemon_pids(kind) for kind in ("standalonesession", "taskexecutor")}

    def script_environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for $FLINK_HOME/bin scripts: our conf, log and pid directories."""
        return base_environment({
            "FLINK_CONF_DIR": str(self.conf_dir), "FLINK_LOG_DIR": str(self.log_dir),
            "FLINK_PID_DIR": str(self.pid_dir), "FLINK_IDENT_STRING": IDENT,
            **(extra or {})})

    # --- processes ---------------------------------------------------------------------------

    def _ours(self, pid: int) -> bool:
        return is_running(pid) and f"--configDir {self.conf_dir}" in cmdline(pid)

    def daemon_pids(self, kind: str) -> list[int]:
        """Running daemons of one kind listed in our pid file (killed ones are skipped)."""
        path = self.pid_dir / f"flink-{IDENT}-{kind}.pid"
        if not path.exists():
            return []
        pids = [int(line) for line in path.read_text().split() if line.strip().isdigit()]
        return [pid for pid in pids if self._ours(pid)]

    def taskmanager_pids(self) -> list[int]:
        return self.daemon_pids("taskexecutor")

    def run_script(self, script: str, *args: str, timeout: float = 120.0) -> None:
        """Runs $FLINK_HOME/bin/<script> (they start daemons in the background and return), with
        DAEMON_KEY in the daemons' environment."""
        result = subprocess.run([str(self.home / "bin" / script), *args], cwd=self.root,
                                env=self.script_environment({"OPENAI_API_KEY": DAEMON_KEY}),
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            pytest.fail(f"{script} {' '.join(args)} exited {result.returncode}:\n"
                        f"{result.stdout}\n{result.stderr}")
        for kind in ("standalonesession", "taskexecutor"):
            self.started_pids.update(self.daemon_pids(kind))

    def start_taskmanager(self) -> int:
        """Starts one more TaskManager with our FLINK_CONF_DIR; returns its pid."""
        before = set(self.taskmanager_pids())
        self.run_script("taskmanager.sh", "start")
        new = [pid for pid in self.taskmanager_pids() if pid not in before]
        assert len(new) == 1, f"expected one new TaskManager pid, got {new}"
        return new[0]

    def watch(self, pids: list[int]) -> None:
        """Remembers processes to stop at teardown should they outlive their parent."""
        for pid in pids:
            self.strays[pid] = cmdline(pid)

    def stop(self) -> list[str]:
        """Stops everything we started, by pid; returns descriptions of what would not stop."""
        targets = {pid for pid, recorded in self.strays.items()
                   if is_running(pid) and cmdline(pid) == recorded}
        for pid in set(self.started_pids) | set(self.daemon_pids("standalonesession")) | set(
                self.taskmanager_pids()):
            if self._ours(pid):
                targets.add(pid)
                targets.update(descendants_of(pid))
        for pid in targets:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        pause = threading.Event()
        while any(is_running(p) for p in targets) and time.monotonic() < deadline:
            pause.wait(0.2)
        for pid in targets:
            if is_running(pid):
                _signal(pid, signal.SIGKILL)
        pause.wait(0.5)
        return [f"{pid}: {cmdline(pid)[:160]}" for pid in targets if is_running(pid)]

    # --- REST --------------------------------------------------------------------------------

    def rest(self, path: str, *, method: str = "GET") -> Any:
        return rest_json(self.rest_url + path, method=method)

    def rest_or_none(self, path: str) -> Any:
        try:
            return self.rest(path)
        except (OSError, ValueError):  # not listening yet / a 404 for a job not known yet
            return None

    def jobs(self) -> list[dict[str, Any]]:
        """/jobs/overview, newest first."""
        overview = self.rest_or_none("/jobs/overview") or {}
        return sorted(overview.get("jobs", []), key=lambda j: -j.get("start-time", 0))

    def wait_for_job(self, sink: str, since_ms: int, timeout: float = 120.0) -> dict[str, Any]:
        """The job inserting into `sink` that started at or after `since_ms` (epoch ms)."""
        suffix = f".{sink}"

        def find() -> dict[str, Any] | None:
            for job in self.jobs():
                if job["name"].endswith(suffix) and job["start-time"] >= since_ms:
                    return job
            return None

        return wait_until(find, timeout, f"a job writing to {sink} on the cluster")

    def wait_for_state(self, job_id: str, states: tuple[str, ...],
                       timeout: float = 120.0) -> dict[str, Any]:
        def state() -> dict[str, Any] | None:
            job = self.rest_or_none(f"/jobs/{job_id}")
            if job and job.get("state") in ("FAILED", "CANCELED") and job["state"] not in states:
                pytest.fail(f"job {job_id} ended {job['state']}: "
                            f"{self.root_exceptions(job_id)[:1]}")
            return job if job and job.get("state") in states else None

        return wait_until(state, timeout, f"job {job_id} to be {'/'.join(states)}")

    def root_exceptions(self, job_id: str) -> list[str]:
        return root_exceptions(self.rest_url, job_id)

    def wait_for_slots(self, taskmanagers: int, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        """Polls /overview until `taskmanagers` TaskManagers with their slots are registered."""
        def ready() -> dict[str, Any] | None:
            if not self.daemon_pids("standalonesession"):
                pytest.fail("the JobManager is not running; its log:\n" + self.log_tail(
                    "standalonesession"))
            overview = self.rest_or_none("/overview")
            if overview and overview.get("taskmanagers", 0) >= taskmanagers and overview.get(
                    "slots-total", 0) >= taskmanagers * SLOTS:
                return overview
            return None

        return wait_until(ready, timeout, f"{taskmanagers} TaskManager(s) at {self.rest_url}")

    # --- files -------------------------------------------------------------------------------

    def log_tail(self, kind: str, lines: int = 40) -> str:
        logs = sorted(self.log_dir.glob(f"flink-{IDENT}-{kind}-*.log"))
        if not logs:
            return "(no log)"
        return "\n".join(logs[-1].read_text(errors="replace").splitlines()[-lines:])

    def taskmanager_stdout(self) -> str:
        """Everything the TaskManagers printed (the print connector's rows), all of them."""
        return "".join(p.read_text(encoding="utf-8", errors="replace")
                       for p in sorted(self.log_dir.glob(f"flink-{IDENT}-taskexecutor-*.out")))

    def print_rows(self, identifier: str) -> list[str]:
        """Rows the print connector with this print-identifier wrote to the TaskManagers'
        stdout."""
        return print_rows(self.taskmanager_stdout(), identifier)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def write_config(home: Path, root: Path, rest_port: int, rpc_port: int, python: str) -> Path:
    """Copies $FLINK_HOME/conf to root/conf, adjusts config.yaml there and appends the project's
    LOG4J_SETTINGS to every log4j*.properties."""
    conf = root / "conf"
    shutil.copytree(home / "conf", conf)
    for properties in conf.glob("log4j*.properties"):
        with properties.open("a", encoding="utf-8") as handle:
            handle.write("\n" + LOG4J_SETTINGS)
    path = conf / "config.yaml"
    config = yaml.safe_load(path.read_text()) or {}
    options: dict[str, Any] = {
        # Everything on the loopback interface, on ports nobody else uses.
        "jobmanager.rpc.address": "localhost",
        "jobmanager.rpc.port": rpc_port,
        "rest.address": "127.0.0.1",
        "rest.bind-address": "127.0.0.1",
        "rest.port": rest_port,
        "taskmanager.numberOfTaskSlots": SLOTS,
        # The TaskManagers' Python workers: this venv's interpreter, which has the package.
        "python.executable": python,
        # Temp files (Python worker environments and boot logs, blobs) in the session directory.
        "io.tmp.dirs": str(root / "tmp"),
        "env.pid.dir": str(root / "pid"),
        "env.log.dir": str(root / "log"),
        # A killed TaskManager is noticed in seconds (heartbeat RPCs to it fail), not in 50 s.
        "heartbeat.interval": 1000,
        "heartbeat.timeout": 10000,
        # REST answers within half a second of what happened: operator metrics are fetched
        # from the TaskManagers at most every 10 s by default, job details cached for 3 s.
        "metrics.fetcher.update-interval": 500,
        "rest.cache.execution-graph.timeout": "500 ms",
        "rest.cache.checkpoint-statistics.timeout": "500 ms",
        # UTF-8 print sink output whatever the locale.
        "env.java.opts.taskmanager": "-Dfile.encoding=UTF-8 -Dsun.stdout.encoding=UTF-8",
    }
    for key, value in options.items():
        _set_option(config, key, value)
    path.write_text(yaml.safe_dump(config, width=1 << 16, sort_keys=False))
    return conf


@pytest.fixture(scope="session")
def flink_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    """A standalone cluster from the pip distribution, for the whole session."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java runtime: a standalone Flink cluster needs java on PATH or JAVA_HOME")
    home = flink_home()
    root = tmp_path_factory.mktemp("flink-cluster")
    for sub in ("log", "pid", "tmp"):
        (root / sub).mkdir()
    cluster = StandaloneCluster(home=home, root=root, rest_port=free_port(),
                                rpc_port=free_port(), python=sys.executable)
    write_config(home, root, cluster.rest_port, cluster.rpc_port, cluster.python)
    try:
        cluster.run_script("start-cluster.sh")
        cluster.wait_for_slots(1)
        yield cluster
    finally:
        left = cluster.stop()
        if left:
            pytest.fail("processes of the standalone cluster still running after SIGKILL:\n"
                        + "\n".join(left))


@pytest.fixture
def cluster(flink_cluster: StandaloneCluster) -> StandaloneCluster:
    """The shared cluster, checked to have a TaskManager with free slots before each test."""
    flink_cluster.wait_for_slots(1, timeout=60)
    return flink_cluster


def start_cli(args: list[str], env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """Starts `flink-ml-predict ARGS` in the background, like tests.conftest.run_cli."""
    return subprocess.Popen([sys.executable, "-m", "flink_ml_predict.cli", *args], cwd=ROOT,
                            env=base_environment(env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run_flink(cluster: StandaloneCluster, args: list[str], env: Mapping[str, str] | None = None,
              *, background: bool = False, timeout: float = 300.0) -> Any:
    """Runs $FLINK_HOME/bin/flink ARGS against the cluster (FLINK_CONF_DIR is ours).

    PYTHONPATH holds the checkout, so that the program's `import flink_ml_predict` is the code
    under test however (or whether) the package was installed.
    """
    environment = cluster.script_environment({"PYTHONPATH": str(ROOT), **(env or {})})
    command = [str(cluster.home / "bin" / "flink"), *args]
    if background:
        return subprocess.Popen(command, cwd=cluster.root, env=environment,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(command, cwd=cluster.root, env=environment, capture_output=True,
                          text=True, timeout=timeout)


def epoch_ms() -> int:
    return int(time.time() * 1000)


__all__ = ["DAEMON_KEY", "DAEMON_KEY_MADE", "StandaloneCluster", "cmdline", "descendants_of",
           "epoch_ms", "is_running", "run_flink", "start_cli"]
