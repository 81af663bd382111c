"""The pieces of the command line's output without Flink: the in-process metrics registry, the job
summary and live lines, the console's live block, the log file (masked, kept only when asked) and
the redirection of ``sys.stderr`` and the package's loggers while a script runs."""

from __future__ import annotations

import io
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from flink_ml_predict.console import Console, RunLog, redirected
from flink_ml_predict.definition import build_spec
from flink_ml_predict.model import Column
from flink_ml_predict.progress import JobMonitor, LocalSource, _parse_id
from flink_ml_predict.runtime.metrics import LOCAL, LocalMetrics, Metrics
from tests.conftest import TEST_KEY


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class JobClient:
    def get_job_id(self) -> str:
        return "0" * 32


class Figures:
    """A figure source that returns what the test put in it."""

    def __init__(self, figures: dict[str, dict[str, int]]) -> None:
        self.figures = figures
        self.closed = False

    def read(self) -> dict[str, dict[str, int]]:
        return self.figures

    def close(self) -> None:
        self.closed = True


def counts(**values: int) -> dict[str, int]:
    base = dict.fromkeys(("rows", "requests", "failures", "retries", "rows-skipped",
                          "rows-truncated", "rows-failed", "rows-dropped", "tokens-in",
                          "tokens-out", "in-flight"), 0)
    base.update({k.replace("_", "-"): v for k, v in values.items()})
    return base


def model(**options: str) -> Any:
    entries = {"provider": "openai", "endpoint": "http://127.0.0.1:9/v1", "api-key": TEST_KEY,
               "model": "gpt-4o-mini", **options}
    return build_spec("m", entries, [Column("input", "STRING")], [Column("content", "STRING")])


def test_local_metrics_are_kept_only_when_enabled_and_summed_per_model() -> None:
    registry = LocalMetrics()
    first, second, other = Metrics(), Metrics(), Metrics()
    registry.add("m", first)
    assert registry.snapshot() == {}
    registry.enable()
    registry.add("m", first)
    registry.add("m", second)
    registry.add("n", other)
    first.inc("requests", 3)
    second.inc("requests", 2)
    second.inc("rows")
    first.in_flight, second.in_flight = 1, 2
    snapshot = registry.snapshot()
    assert (snapshot["m"]["requests"], snapshot["m"]["rows"], snapshot["m"]["in-flight"]) == \
        (5, 1, 3)
    assert snapshot["n"]["requests"] == 0
    registry.clear()
    assert registry.snapshot() == {}


def test_metrics_register_themselves_in_the_process_registry() -> None:
    LOCAL.enable()
    try:
        metrics = Metrics(None, "registered_model")
        metrics.inc("rows", 4)
        assert LocalSource().read()["registered_model"]["rows"] == 4
    finally:
        LocalSource().close()  # clears
        LOCAL.enable(False)
    assert "registered_model" not in LOCAL.snapshot()


def test_summary_lists_the_counters_and_why_rows_were_not_answered() -> None:
    stream = io.StringIO()
    source = Figures({"m": counts(rows=7, requests=9, retries=1, failures=3, rows_skipped=2,
                                  rows_truncated=1, rows_failed=2, rows_dropped=2,
                                  tokens_in=40, tokens_out=9)})
    spec = model(**{"max-context-size": "5", "context-overflow-action": "skipped-log"})
    monitor = JobMonitor(Console(stream), lambda job: source, models=lambda: {"m": spec})
    with monitor.watch("statement 4 (line 9)", JobClient(), live=True):
        pass
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith(f"statement 4 (line 9): job {'0' * 32} finished after ")
    assert lines[1].startswith("  model m: 7 rows (")
    assert lines[1].endswith("/s), 9 requests, 1 retry, 3 failures, tokens 40 in / 9 out")
    assert lines[2:] == [
        "    1 row truncated: input over max-context-size 5 tokens ('context-overflow-action' = "
        "'skipped-log')",
        "    2 rows skipped: null input, or input over max-context-size 5 tokens "
        "('context-overflow-action' = 'skipped-log')",
        "    2 rows dropped: the request failed under IGNORE and OUTPUT has no `error-string` "
        "column to carry the error (declare it to keep such rows)"]
    assert source.closed


def test_quiet_prints_nothing_and_an_interrupt_gives_one_line_instead_of_the_summary() -> None:
    stream = io.StringIO()
    source = Figures({"m": counts(rows=2)})
    quiet = JobMonitor(Console(stream), lambda job: source, quiet=True)
    with quiet.watch("statement 1 (line 1)", JobClient(), live=True):
        pass
    monitor = JobMonitor(Console(stream), lambda job: source)
    with pytest.raises(KeyboardInterrupt), monitor.watch("statement 2 (line 3)", JobClient(),
                                                         live=True):
        raise KeyboardInterrupt
    assert stream.getvalue() == ""
    assert monitor.interrupted(cancelled=True) == (
        f"interrupted: cancelled job {'0' * 32} of statement 2 (line 3) (2 rows done by model m)")
    assert monitor.interrupted(cancelled=False) == (
        f"interrupted: job {'0' * 32} of statement 2 (line 3) could not be cancelled (it had "
        "ended, or its cluster did not answer) (2 rows done by model m)")
    assert quiet.interrupted(cancelled=True) is None


def test_a_failed_job_still_gets_its_summary() -> None:
    stream = io.StringIO()
    monitor = JobMonitor(Console(stream), lambda job: Figures({"m": counts(rows_failed=1)}),
                         models=lambda: {"m": model()})
    with pytest.raises(RuntimeError), monitor.watch("statement 1 (line 1)", JobClient(),
                                                    live=True):
        raise RuntimeError("job failed")
    assert " failed after " in stream.getvalue()
    assert "    1 row failed: the request failed" in stream.getvalue()


def test_console_clears_its_live_lines_around_messages() -> None:
    terminal = Terminal()
    console = Console(terminal)
    assert console.live
    console.status(["a: rows 1", "b: rows 2"])
    console.message("a warning")
    console.status(["a: rows 1", "b: rows 2"])  # unchanged: not drawn again
    console.end_status()
    assert terminal.getvalue() == ("a: rows 1\nb: rows 2" "\x1b[1F\x1b[J" "a warning\n"
                                   "a: rows 1\nb: rows 2" "\x1b[1F\x1b[J")
    plain = io.StringIO()
    not_live = Console(plain)
    not_live.status(["a: rows 1"])
    not_live.write("job submitted\n")
    assert not not_live.live and plain.getvalue() == "job submitted\n"


def test_run_log_masks_keys_and_is_removed_unless_kept(tmp_path: Path) -> None:
    log = RunLog(tmp_path / "explicit.log")
    log.mask([TEST_KEY])
    log.stream.write(f"Authorization: Bearer {TEST_KEY}\n")
    log.close()
    assert (tmp_path / "explicit.log").read_text() == "Authorization: Bearer ******\n"
    temporary = RunLog(name="unit")
    temporary.close()
    assert not temporary.path.exists()
    kept = RunLog(name="unit")
    kept.keep()
    kept.close()
    assert kept.path.exists()
    kept.path.unlink()


def test_while_redirected_stderr_goes_to_the_log_and_warnings_also_to_the_console(
        tmp_path: Path) -> None:
    stream = io.StringIO()
    console = Console(stream)
    log = RunLog(tmp_path / "run.log")
    log.mask([TEST_KEY])
    saved = sys.stderr
    with redirected(console, log, verbose=False):
        print("Traceback (most recent call last): a worker's trace", file=sys.stderr)
        logging.getLogger("flink_ml_predict.runtime.predictor").warning(
            "model m: input of 9 tokens exceeds max-context-size 5: truncated-tail-log")
        logging.getLogger("flink_ml_predict.runner").info("statement 1: model m")
        logging.getLogger("flink_ml_predict.runner").debug("the full trace, key %s", TEST_KEY)
        logging.getLogger("apache_beam").warning("a library's warning")
    assert sys.stderr is saved
    log.close()
    assert stream.getvalue() == ("WARNING flink_ml_predict.runtime.predictor: model m: input of "
                                 "9 tokens exceeds max-context-size 5: truncated-tail-log\n")
    text = (tmp_path / "run.log").read_text()
    for line in ("a worker's trace", "exceeds max-context-size 5", "statement 1: model m",
                 "the full trace, key ******", "a library's warning"):
        assert line in text, text
    assert TEST_KEY not in text


def test_rest_metric_ids_name_the_model_and_the_counter() -> None:
    assert _parse_id("PythonAsyncCalc[3].flink_ml_predict.ai_sentiment.requests") == (
        "ai_sentiment", "requests")
    assert _parse_id("PythonAsyncCalc[3].flink_ml_predict.m.in-flight") == ("m", "in-flight")
    assert _parse_id("PythonAsyncCalc[3].flink_ml_predict.m.latency-ms") is None
    assert _parse_id("PythonAsyncCalc[3].numRecordsIn") is None
