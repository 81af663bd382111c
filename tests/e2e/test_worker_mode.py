"""``create_table_environment(python_worker_mode=...)`` on the mini-cluster: a parallelism-2 job in
process mode sends its requests from two Python worker processes (not from this one) and returns
every row's own answer; in loopback mode the same job sends them from this process.

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
    """pid -> command name of the processes holding a socket connected to ``port``."""
    wanted = {f"socket:[{inode}]" for inode in _connected_inodes(port)}
    owners = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            links = {os.readlink(f"/proc/{entry}/fd/{fd}") for fd in os.listdir(f"/proc/{entry}/fd")}
            if links & wanted:
                owners[int(entry)] = Path(f"/proc/{entry}/comm").read_text().strip()
        except OSError:  # gone, or not ours
            continue
    return owners


def ancestors(pid: int) -> set[int]:
    found = set()
    while pid > 1:
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat[stat.rindex(")") + 2:].split()[1])
        found.add(pid)
    return found


@pytest.mark.parametrize("mode", ["process", "loopback"])
def test_a_parallel_job_runs_where_the_worker_mode_says(server, mode: str) -> None:
    t_env = create_table_environment(parallelism=2, python_worker_mode=mode)
    execute_script(t_env, model_ddl("m", server.base_url) + ";\n" + sequence_source("src", ROWS))
    server.hold()
    try:
        result = sql_query(t_env, "SELECT id, txt, content FROM ML_PREDICT(TABLE src, MODEL m, "
                                  "DESCRIPTOR(txt), MAP['max-concurrent-operations', '5'])")
        with result.execute().collect() as results:
            expected = 2 if mode == "process" else 1
            owners: dict[int, str] = {}

            def seen() -> bool:
                owners.clear()
                owners.update(socket_owners(server.port))
                return len(owners) >= expected and server.wait_for_held(2, timeout=0.1)

            wait_until(seen, 180, f"requests from {expected} process(es)")
            server.release()
            rows = sorted(tuple(row) for row in results)
    finally:
        server.release()
    assert [r[0] for r in rows] == list(range(1, ROWS + 1))
    assert all(content == txt == f"text-{id_}" for id_, txt, content in rows)
    if mode == "process":
        # Two Python workers started under this process's JVM; this process sends nothing.
        assert os.getpid() not in owners, owners
        assert len(owners) == 2, owners
        assert all(name.startswith("python") for name in owners.values()), owners
        assert all(os.getpid() in ancestors(pid) for pid in owners), owners
    else:
        assert set(owners) == {os.getpid()}, owners
