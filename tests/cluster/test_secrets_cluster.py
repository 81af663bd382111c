"""No file of a standalone cluster or of its clients holds an api-key (issue 11.1).

The daemons run with DAEMON_KEY in their environment (as the SQL-client path and the docker-compose
cluster need), so every Python worker a TaskManager starts has it; the jobs get another key through
`'${OPENAI_API_KEY}'` on the client side, submitted both ways a user would: `flink-ml-predict run
--jobmanager` and Flink's `bin/flink run -py`. The script is the one of tests/e2e/test_secrets.py:
a success, IGNORE with and without metadata columns, EXPLAIN, and a job that fails over. Then
neither key is in any file under the cluster's directory (conf, logs, io.tmp.dirs), the clients'
working directory, PyFlink's log directory or the temp directory.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.cluster.conftest import (
    DAEMON_KEY,
    DAEMON_KEY_MADE,
    StandaloneCluster,
    run_flink,
    wait_until,
)
from tests.conftest import (
    canary_key,
    files_containing,
    flink_log_dirs,
    subprocess_environ,
    temp_dirs,
)
from tests.e2e.test_secrets import FAILING, secrets_script
from tests.fakes.openai_server import Fault, FaultInjectingServer

pytestmark = pytest.mark.cluster

SCRIPT_JOB = Path(__file__).with_name("script_job.py")


def _rows(cluster: StandaloneCluster, tag: str) -> dict[str, list[str]]:
    def all_there() -> dict[str, list[str]] | None:
        rows = {name: sorted(cluster.print_rows(name + tag)) for name in ("ok", "meta", "drop")}
        return rows if len(rows["ok"]) == 2 and len(rows["meta"]) == 2 and rows["drop"] else None

    return wait_until(all_there, 30, "the print sinks' rows in the TaskManager's .out file")


def _check_rows(rows: dict[str, list[str]]) -> None:
    assert rows["ok"] == ["+I[1, fine, fine]", "+I[2, also fine, also fine]"]
    assert rows["meta"][0] == "+I[1, fine, fine, null, null, null]"
    assert rows["meta"][1].startswith(f"+I[2, {FAILING}, null, HTTP 500"), rows["meta"]
    assert rows["drop"] == ["+I[1, fine, fine]"]


def test_no_file_holds_a_key_after_runs_on_the_cluster(cluster: StandaloneCluster,
                                                       tmp_path: Path) -> None:
    (taskmanager,) = cluster.taskmanager_pids()
    environ = Path(f"/proc/{taskmanager}/environ").read_bytes()
    assert f"OPENAI_API_KEY={DAEMON_KEY}".encode() in environ.split(b"\0")
    made = time.time()
    key = canary_key()
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    with FaultInjectingServer(api_key=key) as server:
        server.fail_always(FAILING, Fault.status_code(500))
        env = {"OPENAI_API_KEY": key, "OPENAI_ENDPOINT": server.base_url}

        cli_tag = uuid.uuid4().hex[:8]
        (workdir / "cli.sql").write_text(secrets_script(cli_tag), encoding="utf-8")
        cli = subprocess.run(
            [sys.executable, "-m", "flink_ml_predict.cli", "run", "cli.sql", "--jobmanager",
             cluster.jobmanager, "-p", "1"], cwd=workdir, env=subprocess_environ(env),
            capture_output=True, text=True, timeout=300)
        assert cli.returncode == 1, cli.stderr[-3000:]
        assert "job failed: ML_PREDICT with model fail_m" in cli.stderr, cli.stderr[-3000:]
        _check_rows(_rows(cluster, cli_tag))

        flink_tag = uuid.uuid4().hex[:8]
        (workdir / "flink.sql").write_text(
            "SET 'parallelism.default' = '1';\n" + secrets_script(flink_tag), encoding="utf-8")
        flink = run_flink(cluster, ["run", "-py", str(SCRIPT_JOB), "-pyexec", sys.executable,
                                    "-pyclientexec", sys.executable, str(workdir / "flink.sql")],
                          env)
        assert flink.returncode != 0
        assert "ML_PREDICT with model fail_m failed" in flink.stdout + flink.stderr
        _check_rows(_rows(cluster, flink_tag))
        assert server.wait_idle()
        assert {r.headers["authorization"] for r in server.requests} == {f"Bearer {key}"}

    outputs = cli.stdout + cli.stderr + flink.stdout + flink.stderr
    assert key not in outputs and DAEMON_KEY not in outputs
    taskmanager_logs = list(cluster.log_dir.glob("flink-*-taskexecutor-*.log"))
    assert any("Python interpreter path:" in p.read_text(errors="replace")
               for p in taskmanager_logs), "no Python worker in the TaskManager's log"
    roots = [cluster.root, workdir, *flink_log_dirs(), *temp_dirs()]
    assert files_containing([key, DAEMON_KEY], roots,
                            changed_since=min(made, DAEMON_KEY_MADE)) == []
