"""What `flink-ml-predict run` shows a person: one message for a failed job (model, HTTP status,
URL, what to do; the full trace in a log file), a summary of every job (rows done, requests,
retries, failures, tokens, rows truncated / skipped / dropped and why), the sampled per-row
warnings of the functions, a live progress line on a terminal, and Ctrl-C: the job cancelled,
one line, exit 130, no process left. Bad input fails before any JVM starts.

Every run is `flink-ml-predict` in a new process against the fake server on 127.0.0.1.
"""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from flink_ml_predict import StatementError, execute_script
from tests.cluster.conftest import descendants_of, is_running
from tests.conftest import (
    ROOT,
    TEST_KEY,
    model_ddl,
    print_rows,
    run_cli,
    subprocess_environ,
    wait_until,
)
from tests.fakes.openai_server import Fault, FaultInjectingServer

pytestmark = pytest.mark.flink

SINK = ("CREATE TEMPORARY TABLE sink (id INT, txt STRING, content STRING) "
        "WITH ('connector' = 'print');\n")
LOG_PATH = re.compile(r"^  full trace: (\S+\.log)$", re.M)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def failing_script(tmp_path: Path, server: FaultInjectingServer, row_text: str) -> Path:
    return write(tmp_path / "fail.sql", f"""
CREATE MODEL m INPUT (`input` STRING) OUTPUT (`content` STRING) WITH (
  'provider' = 'openai', 'endpoint' = '{server.base_url}/chat/completions',
  'api-key' = '${{OPENAI_API_KEY}}', 'model' = 'gpt-4o-mini');
CREATE TEMPORARY VIEW src(id, txt) AS VALUES (1, '{row_text}');
{SINK}INSERT INTO sink SELECT * FROM ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt));
""")


def test_a_failed_job_is_one_message_and_the_trace_is_in_the_log_file(tmp_path: Path) -> None:
    wrong_key = "sk-wrong-" + "k" * 24
    row_text = "private row text 4711"
    with FaultInjectingServer(api_key=TEST_KEY) as server:
        script = failing_script(tmp_path, server, row_text)
        quiet = run_cli(["run", str(script)], {"OPENAI_API_KEY": wrong_key})
        verbose = run_cli(["run", str(script), "--verbose"], {"OPENAI_API_KEY": wrong_key})
    url = f"POST {server.base_url}/chat/completions"
    for result in (quiet, verbose):
        assert result.returncode == 1, result.stderr
        errors = result.stderr[result.stderr.index("error: "):]
        assert re.match(
            r"error: fail\.sql: statement 4 \(line 7\): job failed: ML_PREDICT with model m "
            r"failed \(error-handling-strategy RETRY\): HTTP 401: invalid_api_key: ", errors), errors
        assert f"({url})\n  what to do: the service did not accept the api-key: check " \
               "'api-key'" in errors, errors
        for noise in ("Traceback", "sdk_worker", "AsyncScalarFunctionOperation", "py4j",
                      wrong_key):
            assert noise not in result.stderr, result.stderr
    assert row_text not in quiet.stderr
    assert f"  input row: ['{row_text}']" in verbose.stderr
    for result in (quiet, verbose):  # each run has its own log file, with the whole story
        found = LOG_PATH.search(result.stderr)
        assert found, result.stderr
        log = Path(found.group(1)).read_text(encoding="utf-8")
        assert "Traceback (most recent call last)" in log and "sdk_worker.py" in log
        assert "PermanentModelCallError" in log and "Caused by:" in log
        assert wrong_key not in log
        Path(found.group(1)).unlink()


def test_a_statement_on_a_missing_table_names_the_table(t_env) -> None:
    with pytest.raises(StatementError) as raised:
        execute_script(t_env, "INSERT INTO otherdb.sink SELECT 1;")
    assert str(raised.value) == (
        "statement 1 (line 1): Flink rejected the statement: Cannot find table "
        "'`default_catalog`.`otherdb`.`sink`' in any of the catalogs [default_catalog], nor as "
        "a temporary table.")


def test_summary_counts_every_outcome_and_the_log_actions_reach_the_console(
        server: FaultInjectingServer, tmp_path: Path) -> None:
    server.script("b", [Fault.status_code(500), None])  # one retry, then an answer
    server.fail_always("e", Fault.status_code(400))  # permanent: dropped under IGNORE
    script = write(tmp_path / "outcomes.sql", model_ddl(
        "m", server.base_url, error_handling_strategy="RETRY", retry_fallback_strategy="IGNORE",
        retry_initial_backoff="10ms", retry_max_backoff="20ms", max_context_size="5",
        context_overflow_action="truncated-tail-log") + ";\n" + """
CREATE TEMPORARY VIEW src(id, txt) AS VALUES (1, 'a'), (2, 'b'), (3, CAST(NULL AS STRING)),
  (4, 'one two three four five six seven eight nine ten'), (5, 'e');
""" + SINK + "INSERT INTO sink SELECT * FROM ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt));\n")
    flink_log = tmp_path / "flink-log"
    result = run_cli(["run", str(script)], {"FLINK_LOG_DIR": str(flink_log)})
    assert result.returncode == 0, result.stderr
    assert sorted(print_rows(result.stdout)) == [
        "+I[1, a, a]", "+I[2, b, b]", "+I[4, one two three four five six seven eight nine ten, "
        "one two three four five]"]
    lines = result.stderr.splitlines()
    start = [i for i, line in enumerate(lines) if re.fullmatch(
        r"statement 4 \(line \d+\): job [0-9a-f]{32} finished after [\d.]+ s", line)]
    assert len(start) == 1, result.stderr
    summary = lines[start[0]:]
    assert re.fullmatch(r"  model m: 5 rows \([\d.]+/s\), 5 requests, 1 retry, 2 failures, "
                        r"tokens [1-9]\d* in / [1-9]\d* out", summary[1]), summary
    assert summary[2:] == [
        "    1 row truncated: input over max-context-size 5 tokens ('context-overflow-action' = "
        "'truncated-tail-log')",
        "    1 row skipped: null input",
        "    1 row dropped: the request failed under IGNORE and OUTPUT has no `error-string` "
        "column to carry the error (declare it to keep such rows)"]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING ")]
    assert any("exceeds max-context-size 5" in w and "truncated-tail-log" in w
               for w in warnings), result.stderr
    assert any("row dropped under IGNORE" in w and "HTTP 400" in w for w in warnings), warnings
    assert "\r" not in result.stderr and "\x1b[" not in result.stderr  # not a terminal: no live line
    assert list(flink_log.glob("flink-*-python-*.log"))  # this run started a JVM (see below)


def test_bad_input_fails_before_flink_starts(tmp_path: Path) -> None:
    script = write(tmp_path / "typo.sql", model_ddl(
        "m", "http://127.0.0.1:9/v1", temprature="0.5") + ";\n"
        "INSERT INTO sink SELECT * FROM ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt));\n")
    flink_log = tmp_path / "flink-log"
    result = run_cli(["run", str(script)], {"FLINK_LOG_DIR": str(flink_log)})
    assert result.returncode == 1
    assert result.stderr.startswith(
        "error: typo.sql: statement 1 (line 1): CREATE MODEL m: unknown option 'temprature' (did "
        "you mean 'temperature'?)"), result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    # No JVM: PyFlink's gateway writes its log to FLINK_LOG_DIR as it starts.
    assert not flink_log.exists() or not any(flink_log.iterdir())


def test_endpoint_of_the_legacy_completions_api_is_refused_before_flink_starts(
        tmp_path: Path) -> None:
    script = write(tmp_path / "legacy.sql", model_ddl("m", "https://api.openai.com/v1/completions")
                   + ";\n")
    result = run_cli(["run", str(script)])
    assert result.returncode == 1
    assert result.stderr == (
        "error: legacy.sql: statement 1 (line 1): CREATE MODEL m: option 'endpoint': "
        "'https://api.openai.com/v1/completions' ends in /completions, OpenAI's legacy "
        "Completions API, which flink_ml_predict does not call; give the base URL "
        "https://api.openai.com/v1 or a full URL ending in /chat/completions or /embeddings "
        "(e.g. https://api.openai.com/v1/chat/completions)\n")


def gated_script(tmp_path: Path, server: FaultInjectingServer, rows: int, concurrency: int) -> Path:
    values = ", ".join(f"({i}, 'r{i}')" for i in range(1, rows + 1))
    # PyFlink ends a bundle after 1 s by default and waits for the rows in flight before the
    # next: a bundle cut after the first row would leave one request to hold, not `concurrency`.
    return write(tmp_path / "gated.sql", model_ddl("m", server.base_url) + ";\n"
                 "SET 'python.fn-execution.bundle.time' = '3600000';\n"
                 f"CREATE TEMPORARY VIEW src(id, txt) AS VALUES {values};\n"
                 "CREATE TEMPORARY TABLE sink (id INT, txt STRING, content STRING) "
                 "WITH ('connector' = 'blackhole');\n"
                 "INSERT INTO sink SELECT * FROM ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt), "
                 f"MAP['max-concurrent-operations', '{concurrency}']);\n")


def start_cli(script: Path, **streams: object) -> subprocess.Popen[bytes]:
    """`flink-ml-predict run` in a session of its own (its process group is what a terminal's
    Ctrl-C reaches). Parallelism 1: one function instance, so the requests in flight are exactly
    those the gate holds (two instances would each send their own)."""
    return subprocess.Popen(  # type: ignore[call-overload]
        [sys.executable, "-m", "flink_ml_predict.cli", "run", str(script), "-p", "1"], cwd=ROOT,
        env=subprocess_environ({"TERM": "xterm"}), start_new_session=True, **streams)


def wait_for_held(server: FaultInjectingServer, count: int, process: subprocess.Popen[bytes],
                  output: Callable[[], str], timeout: float = 180) -> None:
    """Waits until `count` answers wait at the gate; fails with the CLI's output as soon as the
    CLI has ended (it can then send nothing more), or after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not server.wait_for_held(count, timeout=1.0):
        ended = process.poll()
        if ended is not None or time.monotonic() > deadline:
            pytest.fail(f"{server.tracker.held} of {count} requests held; the CLI "
                        f"{'exited with ' + str(ended) if ended is not None else 'still runs'}; "
                        f"its output:\n{output()}")


class TerminalOutput:
    """Everything written to a pseudo-terminal, read on a thread; waits for a pattern."""

    def __init__(self, master: int) -> None:
        self.text = ""
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(master,), daemon=True)
        self._thread.start()

    def _read(self, master: int) -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the other side is closed: the process has ended
                chunk = b""
            with self._changed:
                if not chunk:
                    self._changed.notify_all()
                    return
                self.text += chunk.decode("utf-8", errors="replace")
                self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str] | None:
        with self._changed:
            self._changed.wait_for(lambda: re.search(pattern, self.text) or
                                   not self._thread.is_alive(), timeout)
            return re.search(pattern, self.text)

    def close(self) -> None:
        self._thread.join(timeout=30)


def test_a_terminal_shows_a_live_progress_line(server: FaultInjectingServer,
                                              tmp_path: Path) -> None:
    script = gated_script(tmp_path, server, rows=6, concurrency=2)
    server.hold()  # every answer waits until the test lets it go
    master, slave = pty.openpty()
    stdout = tmp_path / "stdout"
    with stdout.open("wb") as out:  # a file: the CLI never waits for a reader
        process = start_cli(script, stdout=out, stderr=slave)
    os.close(slave)
    terminal = TerminalOutput(master)

    def output() -> str:
        return f"terminal:\n{terminal.text}\nstdout:\n{stdout.read_text(errors='replace')}"

    try:
        wait_for_held(server, 2, process, output)
        live = terminal.wait_for(r"(?:\r\n|\r\x1b\[J)m: rows 0 \| [\d.]+ req/s \| in flight 2 \| "
                                 r"retries 0 \| failures 0 \| tokens 0/0", timeout=30)
        assert live, output()
        server.release()
        assert process.wait(timeout=120) == 0, output()
    finally:
        server.release()
        if process.poll() is None:
            process.kill()
        process.wait()
        terminal.close()
        os.close(master)
    assert re.search(r"statement 5 \(line \d+\): job [0-9a-f]{32} finished after [\d.]+ s\r\n"
                     r"  model m: 6 rows \([\d.]+/s\), 6 requests, 0 retries, 0 failures",
                     terminal.text), terminal.text
    assert "\x1b[J" in terminal.text  # the live line was cleared before the summary


def test_ctrl_c_cancels_the_job_in_one_line_and_exits_130(server: FaultInjectingServer,
                                                         tmp_path: Path) -> None:
    script = gated_script(tmp_path, server, rows=8, concurrency=1)
    server.hold()
    server.release(2)  # two rows are answered; the third request waits at the gate
    streams = {name: tmp_path / name for name in ("stdout", "stderr")}
    with streams["stdout"].open("wb") as out, streams["stderr"].open("wb") as err:
        process = start_cli(script, stdout=out, stderr=err)

    def output() -> str:
        return "\n".join(f"{name}:\n{path.read_text(errors='replace')}"
                         for name, path in streams.items())

    try:
        # One request at a time: the third is only sent once the second row is done.
        wait_for_held(server, 1, process, output)
        children = descendants_of(process.pid)
        assert children, "no JVM under the CLI's process"
        os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C: to every process of the group
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = streams["stderr"].read_text()
    assert process.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert re.fullmatch(r"statement 5 \(line \d+\): job [0-9a-f]{32} submitted", lines[0]), lines
    assert re.fullmatch(r"interrupted: cancelled job [0-9a-f]{32} of statement 5 \(line \d+\) "
                        r"\(2 rows done by model m\)", lines[1]), lines
    assert len(lines) == 2, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    wait_until(lambda: not [p for p in children if is_running(p)], 30,
               f"the CLI's processes {children} to end")
