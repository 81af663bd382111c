"""``create_table_environment(python_worker_mode="process")`` on the mini-cluster: a parallelism-2
job sends its requests from two Python worker processes started by Flink's JVM (not from this
process, as in the default loopback mode) and returns every row's own answer.

Which process sends a request is read from the kernel (``/proc/net/tcp*``: the sockets connected
to the fake server; ``/proc/<pid>/fd``: which process holds them) while the server holds every
answer, so the connections are open when they are looked at.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flink_ml_predict import create_table_environment, execute_script, sql_query
from tests.conftest import model_ddl, sequence_source, wait_until

pytestmark = pytest.mark.flink

ROWS = 40


def _connected_inodes(port: int) -> set[str]:
    """Inodes of the established TCP sockets whose remote port is ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        lines = Path(table).read_text(encoding="ascii").splitlines()[1:]
        for line in lines:
            fields = line.split()
            if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def socket_owners(port: int) -> dict[int, str]:
    """pid -> command line of the processes holding a socket connected to ``port``."""
    wanted = {f"socket:[{inode}]" for inode in _connected_inodes(port)}
    owners = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            links = {os.readlink(f"/proc/{entry}/fd/{fd}") for fd in os.listdir(f"/proc/{entry}/fd")}
            if links & wanted:
                owners[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().replace(
                    b"\0", b" ").decode(errors="replace")
        except OSError:  # gone, or not ours
            continue
    return owners


def ancestors(pid: int) -> set[int]:
    """The command names of the parent, grandparent, ... of a live process."""
    found = set()
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:  # gone meanwhile
            break
        pid = int(stat[stat.rindex(")") + 2:].split()[1])
        try:
            found.add(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            break
    return found


def test_a_parallel_job_runs_in_process_mode(server) -> None:
    t_env = create_table_environment(parallelism=2, python_worker_mode="process")
    execute_script(t_env, model_ddl("m", server.base_url) + ";\n" + sequence_source("src", ROWS))
    owners: dict[int, str] = {}
    lineage: dict[int, set[str]] = {}

    def seen() -> bool:
        owners.clear()
        owners.update(socket_owners(server.port))
        lineage.update({pid: ancestors(pid) for pid in owners})
        return len(owners) >= 2 and server.wait_for_held(2, timeout=0.1)

    server.hold()  # connections stay open while they are looked at
    try:
        result = sql_query(t_env, "SELECT id, txt, content FROM ML_PREDICT(TABLE src, MODEL m, "
                                  "DESCRIPTOR(txt), MAP['max-concurrent-operations', '5'])")
        with result.execute().collect() as results:
            wait_until(seen, 180, "requests from two processes")
            server.release()
            rows = sorted(tuple(row) for row in results)
    finally:
        server.release()
    assert [r[0] for r in rows] == list(range(1, ROWS + 1))
    assert all(content == txt == f"text-{id_}" for id_, txt, content in rows)
    # Two Python workers started by a JVM (PyFlink's gateway runs it detached from this
    # process); this process, where loopback mode would run them, sends nothing.
    assert os.getpid() not in owners, owners
    assert len(owners) == 2, owners
    assert all("pyflink" in command for command in owners.values()), owners
    assert all("java" in lineage[pid] for pid in owners), (owners, lineage)
