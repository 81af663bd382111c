"""Shared fixtures: a real OpenAI-compatible server on 127.0.0.1, a TableEnvironment on the
embedded mini-cluster (one JVM per test process, a fresh environment per test), and a clean
environment so that no test can reach a real provider."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

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


def model_ddl(name: str, endpoint: str, *, provider: str = "openai", model: str = "gpt-4o-mini",
              output: str = "`content` STRING", key: str = TEST_KEY, **options: str) -> str:
    """A CREATE TEMPORARY MODEL statement; extra options as keyword arguments ('_' -> '-')."""
    entries = {"provider": provider, "endpoint": endpoint, "api-key": key, "model": model}
    entries.update({k.replace("_", "-"): v for k, v in options.items()})
    with_clause = ",\n  ".join(f"'{k}' = '{v}'" for k, v in entries.items())
    return (f"CREATE TEMPORARY MODEL {name}\nINPUT (`input` STRING)\nOUTPUT ({output})\n"
            f"WITH (\n  {with_clause}\n)")


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


def files_containing(secret: str, roots: Iterable[Path]) -> list[str]:
    """Regular files under `roots` holding `secret` as bytes, or base64-encoded at any alignment:
    'path (raw)' / 'path (base64)'. Files that vanish or cannot be read while scanning are skipped."""
    raw = secret.encode()
    needles = {"raw": [raw], "base64": [
        base64.b64encode(b"\0" * shift + raw)[4 if shift else 0:-4] for shift in range(3)]}
    found: list[str] = []
    for root in roots:
        for directory, _, names in os.walk(root):
            for name in names:
                path = os.path.join(directory, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                try:
                    with open(path, "rb") as handle:
                        data = handle.read()
                except OSError:
                    continue
                found.extend(f"{path} ({kind})" for kind, variants in needles.items()
                             if any(v in data for v in variants))
    return sorted(set(found))
