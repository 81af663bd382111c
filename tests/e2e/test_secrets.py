"""The api-key never lands in a file or a metadata column (issue 11.1, 11.2).

After runs that succeed, fail over, ignore failures and EXPLAIN, no file under Flink's log
directory, the working directory or the temp directory holds a distinctive key (new for each test,
looked for as bytes and base64-encoded): on the mini-cluster through the CLI, and through the
Python API in a process whose JVM was started with the key in its environment. A server that
echoes the Authorization header back on a 401 does not get the key into `http-headers-map`.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import (
    canary_key,
    collect,
    files_containing,
    flink_log_dirs,
    model_ddl,
    subprocess_environ,
    temp_dirs,
)
from tests.fakes.echo_auth_server import ECHO_HEADER, EchoAuthServer
from tests.fakes.openai_server import Fault, FaultInjectingServer

pytestmark = pytest.mark.flink

FAILING = "boom"  # the server answers 500 to this row's text
METADATA = ("`content` STRING, `error-string` STRING, `http-status-code` INT, "
            "`http-headers-map` MAP<STRING, ARRAY<STRING>>")


def secrets_script(tag: str = "") -> str:
    """Success, IGNORE with and without metadata columns (one statement set), EXPLAIN, then a
    job that fails over. The key comes from the environment, as in the seed scripts. The print
    sinks' identifiers are ok<tag>, meta<tag>, drop<tag>."""
    def model(name: str, strategy: str, output: str = "`content` STRING") -> str:
        return model_ddl(name, "${OPENAI_ENDPOINT}", key="${OPENAI_API_KEY}", output=output,
                         error_handling_strategy=strategy).replace("TEMPORARY MODEL", "MODEL")

    return "\n".join([
        model("ok_m", "RETRY") + ";",
        model("meta_m", "IGNORE", METADATA) + ";",
        model("drop_m", "IGNORE") + ";",
        model("fail_m", "FAILOVER") + ";",
        "CREATE TEMPORARY VIEW good(id, txt) AS VALUES (1, 'fine'), (2, 'also fine');",
        f"CREATE TEMPORARY VIEW mixed(id, txt) AS VALUES (1, 'fine'), (2, '{FAILING}');",
        "CREATE TEMPORARY TABLE ok_sink (id INT, txt STRING, content STRING) "
        f"WITH ('connector' = 'print', 'print-identifier' = 'ok{tag}');",
        "CREATE TEMPORARY TABLE meta_sink (id INT, txt STRING, content STRING, err STRING, "
        "status INT, headers MAP<STRING, ARRAY<STRING>>) "
        f"WITH ('connector' = 'print', 'print-identifier' = 'meta{tag}');",
        "CREATE TEMPORARY TABLE drop_sink (id INT, txt STRING, content STRING) "
        f"WITH ('connector' = 'print', 'print-identifier' = 'drop{tag}');",
        "CREATE TEMPORARY TABLE fail_sink (id INT, txt STRING, content STRING) "
        "WITH ('connector' = 'blackhole');",
        "EXPLAIN INSERT INTO ok_sink SELECT * FROM ML_PREDICT(TABLE good, MODEL ok_m, "
        "DESCRIPTOR(txt));",
        "EXECUTE STATEMENT SET BEGIN",
        "INSERT INTO ok_sink SELECT * FROM ML_PREDICT(TABLE good, MODEL ok_m, DESCRIPTOR(txt));",
        "INSERT INTO meta_sink SELECT * FROM ML_PREDICT(TABLE mixed, MODEL meta_m, "
        "DESCRIPTOR(txt));",
        "INSERT INTO drop_sink SELECT * FROM ML_PREDICT(TABLE mixed, MODEL drop_m, "
        "DESCRIPTOR(txt));",
        "END;",
        "INSERT INTO fail_sink SELECT * FROM ML_PREDICT(TABLE mixed, MODEL fail_m, "
        "DESCRIPTOR(txt));",
    ])


def _run_and_check_no_key_left(command: list[str], workdir: Path) -> None:
    """Runs `command` in `workdir` (holding secrets_script() as job.sql) with a new key in
    OPENAI_API_KEY; checks what the jobs did, then that no file holds the key."""
    made = time.time()
    key = canary_key()
    (workdir / "job.sql").write_text(secrets_script(), encoding="utf-8")
    with FaultInjectingServer(api_key=key) as server:
        server.fail_always(FAILING, Fault.status_code(500))
        result = subprocess.run(
            command, cwd=workdir, capture_output=True, text=True, timeout=300,
            env=subprocess_environ({"OPENAI_API_KEY": key, "OPENAI_ENDPOINT": server.base_url}))
        assert server.wait_idle()
        authorizations = {r.headers["authorization"] for r in server.requests}
    assert result.returncode == 1, result.stderr[-3000:]  # the FAILOVER job, last, failed
    assert "job failed: ML_PREDICT with model fail_m" in result.stderr, result.stderr[-3000:]
    assert "+I[1, fine, fine]" in result.stdout and "+I[2, also fine, also fine]" in result.stdout
    assert f"meta> +I[2, {FAILING}, null, HTTP 500" in result.stdout, result.stdout
    assert "drop> +I[1, fine, fine]" in result.stdout and f"drop> +I[2, {FAILING}" not in (
        result.stdout)
    assert authorizations == {f"Bearer {key}"}
    assert key not in result.stdout + result.stderr
    logs = [p for d in flink_log_dirs() for p in d.glob("*.log")]
    assert any("ML_PREDICT" in p.read_text(errors="replace") for p in logs), (
        f"no Flink log of this run to look into: {logs}")
    assert files_containing(key, [*flink_log_dirs(), workdir, *temp_dirs()],
                            changed_since=made) == []


def test_cli_runs_leave_no_key_in_any_file(tmp_path: Path) -> None:
    _run_and_check_no_key_left(
        [sys.executable, "-m", "flink_ml_predict.cli", "run", "job.sql", "-p", "1"], tmp_path)


PYTHON_API_PROGRAM = textwrap.dedent("""
    from pathlib import Path

    from pyflink.java_gateway import get_gateway

    get_gateway()  # a JVM started by PyFlink itself, with OPENAI_API_KEY in its environment

    from flink_ml_predict import create_table_environment, execute_script

    execute_script(create_table_environment(parallelism=1), Path("job.sql").read_text())
""")


def test_python_api_with_the_key_in_the_jvms_environment_leaves_no_key(tmp_path: Path) -> None:
    _run_and_check_no_key_left([sys.executable, "-c", PYTHON_API_PROGRAM], tmp_path)


USER_TABLE_ENVIRONMENT_PROGRAM = textwrap.dedent("""
    from pathlib import Path

    from pyflink.table import EnvironmentSettings, TableEnvironment

    from flink_ml_predict import execute_script

    # The user's own TableEnvironment: its JVM holds OPENAI_API_KEY in its environment.
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    t_env.get_config().set("parallelism.default", "1")
    execute_script(t_env, Path("job.sql").read_text())
""")


def test_a_users_own_table_environment_leaves_no_key(tmp_path: Path) -> None:
    _run_and_check_no_key_left([sys.executable, "-c", USER_TABLE_ENVIRONMENT_PROGRAM], tmp_path)


def test_echoed_authorization_header_is_scrubbed_from_metadata(t_env) -> None:
    key = canary_key()
    with EchoAuthServer() as server:
        script = (model_ddl("m", server.base_url, key=key, output=METADATA,
                            error_handling_strategy="IGNORE")
                  + ";\nCREATE TEMPORARY VIEW src(id, txt) AS VALUES (1, 'hello')")
        from flink_ml_predict import execute_script

        execute_script(t_env, script)
        rows = collect(t_env, "SELECT * FROM ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt))")
    assert len(rows) == 1
    _, _, content, error, status, headers = rows[0]
    assert content is None and status == 401
    assert "HTTP 401" in error and key not in error
    assert headers[ECHO_HEADER] == ["Bearer ******"]  # the echo arrived, without the key
    assert all(key not in name and all(key not in v for v in values)
               for name, values in headers.items())
