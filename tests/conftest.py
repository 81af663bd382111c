"""Shared fixtures: a real OpenAI-compatible server on 127.0.0.1, a TableEnvironment on the
embedded mini-cluster (one JVM per test process, a fresh environment per test), and a clean
environment so that no test can reach a real provider.

Shared helpers, each written once: model DDL and options, the metadata output columns, sources,
sink readers (committed filesystem files, print-sink rows), Flink's REST API, free ports, waiting
for a condition against a deadline, and running the CLI in a new process.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai_server import FaultInjectingServer

ROOT = Path(__file__).resolve().parent.parent
# The environment before any in-process job: PyFlink's loopback worker later sets variables such
# as PYFLINK_GATEWAY_DISABLED in os.environ, which must not leak into `flink-ml-predict` processes.
_START_ENVIRON = dict(os.environ)
TEST_KEY = "sk-test-0123456789abcdefghijklmnop"
_PROVIDER_VARIABLES = ("OPENAI_API_KEY", "DASHSCOPE_API_KEY", "OPENAI_BASE_URL", "OPENAI_ENDPOINT",
                       "QWEN_ENDPOINT", "BAILIAN_ENDPOINT")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees a real key or endpoint of the person running the tests."""
    for name in _PROVIDER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[FaultInjectingServer]:
    """A fault-injecting OpenAI/DashScope-compatible server that requires TEST_KEY."""
    with FaultInjectingServer(api_key=TEST_KEY) as running:
        yield running


@pytest.fixture
def t_env():
    """A fresh streaming TableEnvironment, parallelism 1 (the JVM is shared by the process)."""
    from flink_ml_predict import create_table_environment

    return create_table_environment(parallelism=1)


# The error metadata columns a model may declare in OUTPUT, after its value column.
METADATA_COLUMNS = (("content", "STRING"), ("error-string", "STRING"), ("http-status-code", "INT"),
                    ("http-headers-map", "MAP<STRING, ARRAY<STRING>>"))
METADATA_OUTPUT = ", ".join(f"`{name}` {type_}" for name, type_ in METADATA_COLUMNS)


def model_options(endpoint: str, *, provider: str = "openai", model: str = "gpt-4o-mini",
                  key: str = TEST_KEY, **options: str) -> dict[str, str]:
    """The WITH options of a test model; extra options as keyword arguments ('_' -> '-')."""
    entries = {"provider": provider, "endpoint": endpoint, "api-key": key, "model": model}
    entries.update({k.replace("_", "-"): v for k, v in options.items()})
    return entries


def render_model(name: str, entries: Mapping[str, str], *, inputs: str = "`input` STRING",
                 output: str = "`content` STRING", one_line: bool = False) -> str:
    """CREATE TEMPORARY MODEL text (no ';'), on one line or one option a line."""
    if one_line:
        body = ", ".join(f"'{k}' = '{v}'" for k, v in entries.items())
        return f"CREATE TEMPORARY MODEL {name} INPUT ({inputs}) OUTPUT ({output}) WITH ({body})"
    body = ",\n  ".join(f"'{k}' = '{v}'" for k, v in entries.items())
    return (f"CREATE TEMPORARY MODEL {name}\nINPUT ({inputs})\nOUTPUT ({output})\n"
            f"WITH (\n  {body}\n)")


def model_ddl(name: str, endpoint: str, *, provider: str = "openai", model: str = "gpt-4o-mini",
              output: str = "`content` STRING", key: str = TEST_KEY, **options: str) -> str:
    """A CREATE TEMPORARY MODEL statement; extra options as keyword arguments ('_' -> '-')."""
    return render_model(name, model_options(endpoint, provider=provider, model=model, key=key,
                                            **options), output=output)


def sequence_source(name: str, rows: int, *, prefix: str = "text-") -> str:
    """A bounded view (id, txt) of `rows` distinct rows read by ONE source operator."""
    return (f"CREATE TEMPORARY TABLE {name}_gen (id BIGINT) WITH ('connector' = 'datagen', "
            f"'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '{rows}', "
            f"'rows-per-second' = '100000');\n"
            f"CREATE TEMPORARY VIEW {name} AS SELECT id, CONCAT('{prefix}', CAST(id AS STRING)) "
            f"AS txt FROM {name}_gen;\n")


def committed_files(directory: Path) -> list[Path]:
    """Finished files of a filesystem sink: in-progress/pending part files ('.part-...') and
    markers ('_SUCCESS') are hidden."""
    if not directory.exists():
        return []
    return sorted(p for p in directory.rglob("*") if p.is_file() and not any(
        part.startswith((".", "_")) for part in p.relative_to(directory).parts))


def committed_json_rows(directory: Path) -> list[dict]:
    """The rows of a json filesystem sink's finished files."""
    return [json.loads(line) for path in committed_files(directory)
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def checkpointed_job(model: str, sink: Path, *, rows: int, rows_per_second: int,
                     restart_attempts: int) -> str:
    """SQL of a checkpointed (1 s, exactly-once) job with a fixed-delay restart strategy: a datagen
    sequence (id, txt='text-<id>') through ML_PREDICT with `model` into a json filesystem sink at
    `sink` that commits at each checkpoint."""
    return f"""
        SET 'execution.checkpointing.interval' = '1s';
        SET 'execution.checkpointing.mode' = 'EXACTLY_ONCE';
        SET 'restart-strategy.type' = 'fixed-delay';
        SET 'restart-strategy.fixed-delay.attempts' = '{restart_attempts}';
        SET 'restart-strategy.fixed-delay.delay' = '1s';
        CREATE TEMPORARY TABLE ids (id BIGINT) WITH (
          'connector' = 'datagen', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1',
          'fields.id.end' = '{rows}', 'rows-per-second' = '{rows_per_second}');
        CREATE TEMPORARY VIEW src AS SELECT id, CONCAT('text-', CAST(id AS STRING)) AS txt FROM ids;
        CREATE TEMPORARY TABLE sink (id BIGINT, txt STRING, content STRING) WITH (
          'connector' = 'filesystem', 'path' = '{sink.as_uri()}', 'format' = 'json',
          'sink.rolling-policy.rollover-interval' = '1s',
          'sink.rolling-policy.check-interval' = '1s');
        INSERT INTO sink
        SELECT id, txt, content FROM ML_PREDICT(TABLE src, MODEL {model}, DESCRIPTOR(txt));
    """


_PRINT_ROW = re.compile(r"^(?:(?P<identifier>.+?)(?::\d+)?> )?(?P<row>[+-][IUD]\[.*\])$")


def print_rows(output: str, identifier: str | None = None) -> list[str]:
    """Rows of Flink's print connector in `output`, in order: whole lines ('A> +I[...]',
    '+I[...]'), or, with `identifier`, only that sink's rows without the prefix."""
    matches = [m for line in output.splitlines() if (m := _PRINT_ROW.match(line))]
    if identifier is None:
        return [m.group(0) for m in matches]
    return [m.group("row") for m in matches if m.group("identifier") == identifier]


def collect(t_env, query: str) -> list[tuple]:
    """Rows of a query with ML_PREDICT, as tuples."""
    from flink_ml_predict import sql_query

    with sql_query(t_env, query).execute().collect() as results:
        return [tuple(row) for row in results]


def subprocess_environ(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a new Python/Flink process: as it was before any in-process job, no
    provider variables, plus `env`."""
    environment = {k: v for k, v in _START_ENVIRON.items() if k not in _PROVIDER_VARIABLES}
    environment.update(env or {})
    return environment


def run_cli(args: list[str], env: Mapping[str, str] | None = None,
            cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Runs `flink-ml-predict ARGS` in a new process (its own JVM) and captures its output."""
    return subprocess.run([sys.executable, "-m", "flink_ml_predict.cli", *args], cwd=cwd,
                          env=subprocess_environ(env), capture_output=True, text=True,
                          timeout=300)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.25) -> Any:
    """Polls `condition` until it returns something truthy (and returns that); fails the test
    after `timeout` s. For state outside this process (REST APIs, files, processes) that offers
    nothing to block on."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        pause.wait(interval)


def rest_json(url: str, *, method: str = "GET", timeout: float = 10.0) -> Any:
    """The JSON answer of a REST call (None for an empty body); raises OSError if it fails."""
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    return json.loads(body) if body else None


def root_exceptions(rest_url: str, job_id: str) -> list[str]:
    """The root exceptions in a job's exception history ([] while the REST API does not answer)."""
    try:
        history = rest_json(f"{rest_url}/jobs/{job_id}/exceptions")
    except (OSError, ValueError):  # not listening yet, gone with the job, or 404 for a new job
        return []
    entries = (history or {}).get("exceptionHistory", {}).get("entries", [])
    return [entry.get("stacktrace") or entry.get("exceptionName") or "" for entry in entries]


def canary_key() -> str:
    """A distinctive api-key, new for each call, to look for in files after a run."""
    return "sk-canary-" + uuid.uuid4().hex


def flink_log_dirs() -> list[Path]:
    """Where PyFlink's JVM writes its logs: $FLINK_HOME/log of the installed package (and
    FLINK_LOG_DIR when set)."""
    import pyflink

    dirs = [Path(pyflink.__file__).resolve().parent / "log"]
    if os.environ.get("FLINK_LOG_DIR"):
        dirs.append(Path(os.environ["FLINK_LOG_DIR"]))
    return dirs


def temp_dirs() -> list[Path]:
    """The temp directory of Python (tempfile) and of the JVM (java.io.tmpdir defaults to /tmp)."""
    return sorted({Path(tempfile.gettempdir()), Path("/tmp")})


# Filesystem timestamps come from a coarse kernel clock that may lag time.time() by a few ms.
_TIMESTAMP_SLACK = 2.0


def files_containing(secrets: str | Iterable[str], roots: Iterable[Path], *,
                     changed_since: float) -> list[str]:
    """Regular files under `roots` holding one of `secrets` as bytes, or base64-encoded at any
    alignment: 'path (raw)' / 'path (base64)'. Files that vanish or cannot be read while scanning
    are skipped.

    Only files whose inode changed since `changed_since` (time.time() taken before the secrets
    were made) are read: a file can only hold a secret if it was written after the secret
    existed, and writing sets the file's ctime, which no process can set back (unlike mtime).
    Everything older in the shared temp directory (other runs' virtualenvs, jars) is skipped."""
    needles: dict[str, list[bytes]] = {"raw": [], "base64": []}
    for secret in [secrets] if isinstance(secrets, str) else secrets:
        raw = secret.encode()
        needles["raw"].append(raw)
        needles["base64"] += [base64.b64encode(b"\0" * shift + raw)[4 if shift else 0:-4]
                              for shift in range(3)]
    oldest = changed_since - _TIMESTAMP_SLACK
    found: list[str] = []
    for root in roots:
        for directory, _, names in os.walk(root):
            for name in names:
                path = os.path.join(directory, name)
                try:
                    status = os.lstat(path)
                except OSError:
                    continue
                if not stat.S_ISREG(status.st_mode) or status.st_ctime < oldest:
                    continue
                try:
                    with open(path, "rb") as handle:
                        data = handle.read()
                except OSError:
                    continue
                found.extend(f"{path} ({kind})" for kind, variants in needles.items()
                             if any(v in data for v in variants))
    return sorted(set(found))
