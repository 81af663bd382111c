"""No row lost and none duplicated when the model server goes away and Flink restarts the job.

A checkpointed streaming job (datagen -> ML_PREDICT under FAILOVER -> exactly-once filesystem
sink) runs against a server on 127.0.0.1. Once the server has answered a share of the rows and a
checkpoint has committed sink files, the server is stopped (in-flight requests cut, new connections
refused): the job fails and Flink's fixed-delay restart strategy restarts it from the last
checkpoint. Once Flink has recorded that failure, a new server comes up on the same port, and the
job must finish with every input id in the committed sink files exactly once, each with its own
answer.

Evidence that the outage was noticed comes from the job's own REST API (the embedded
mini-cluster's, on a port chosen here, alive only while the job runs): the exception history holds
our FAILOVER message, the job went through RESTARTING and back to RUNNING, and it restored a
checkpoint; the second server must also have been asked for rows.

Found on the way: with a row format (json, csv) the streaming filesystem sink does not roll its
part file on checkpoints unless the file is older than 'sink.rolling-policy.rollover-interval'
(30 min by default), so nothing is committed before the end of input; hence the 1 s rolling
policy. At the end of input the final checkpoint commits everything. Checkpoints wait for the
requests in flight (PyFlink finishes the Python bundle before the barrier).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from py4j.protocol import Py4JJavaError

from flink_ml_predict import execute_script
from flink_ml_predict.demo_answers import rule_based_answer
from tests.conftest import (
    TEST_KEY,
    checkpointed_job,
    committed_files,
    committed_json_rows,
    free_port,
    model_ddl,
    rest_json,
    root_exceptions,
    wait_until,
)
from tests.fakes.openai_server import FaultInjectingServer

pytestmark = pytest.mark.flink

ROWS = 800
ROWS_PER_SECOND = 80  # below what one Python worker answers (~100-130 rows/s here): no backlog
OUTAGE_AFTER = 200  # answers of the first server before it goes away
MINI_CLUSTER_GONE = "MiniCluster is not yet running or has already been shut down"


class _CountingResponder:
    """The default (echo) responder that sets `reached` once it has answered `threshold` rows."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.reached = threading.Event()
        self._lock = threading.Lock()
        self._count = 0

    def __call__(self, body: dict[str, Any]) -> str:
        with self._lock:
            self._count += 1
            if self._count >= self.threshold:
                self.reached.set()
        return rule_based_answer(body)

    @property
    def count(self) -> int:
        with self._lock:
            return self._count


def _job_ended(client: Any) -> bool:
    """Whether the job reached a terminal state (its per-job mini-cluster may already be gone)."""
    try:
        return bool(client.get_job_status().result().is_globally_terminal_state())
    except Py4JJavaError as error:  # only the mini-cluster's end means the job's end
        if MINI_CLUSTER_GONE in str(error):
            return True
        raise


def test_no_row_is_lost_or_duplicated_across_a_restart(t_env, tmp_path: Path) -> None:
    started = time.monotonic()
    first = _CountingResponder(OUTAGE_AFTER)
    second = _CountingResponder(1)
    server = FaultInjectingServer(api_key=TEST_KEY, responder=first).start()
    port = server.port
    restarted: FaultInjectingServer | None = None
    client = None
    rest_port = free_port()
    rest_url = f"http://127.0.0.1:{rest_port}"
    sink = tmp_path / "sink"
    # The REST API answers from a cache (3 s by default): with a stale job graph the job can look
    # RESTARTING after the restarted job already reached the second server, so no cache here.
    script = f"""
        SET 'rest.bind-address' = '127.0.0.1';
        SET 'rest.bind-port' = '{rest_port}';
        SET 'rest.cache.execution-graph.timeout' = '0 ms';
        SET 'rest.cache.checkpoint-statistics.timeout' = '0 ms';
    """ + model_ddl("m", server.base_url, error_handling_strategy="FAILOVER") + ";\n" + \
        checkpointed_job("m", sink, rows=ROWS, rows_per_second=ROWS_PER_SECOND,
                         restart_attempts=20)
    try:
        result = execute_script(t_env, script, wait=False)[-1]
        client = result.get_job_client()
        job_id = str(client.get_job_id())

        # The outage starts once the server has answered some rows AND a checkpoint has been
        # committed, so that the job restarts from a checkpoint rather than from scratch.
        assert first.reached.wait(120), f"only {first.count} requests reached the server"
        wait_until(lambda: committed_files(sink), 60, "a checkpoint to commit sink files",
                   interval=0.05)
        answered_before_outage = first.count
        server.stop()  # cuts the requests in flight; new connections are refused
        outage_started = time.monotonic()

        # Down until Flink has recorded the failure the outage caused (it then restarts the job).
        def failed() -> list[str]:
            found = root_exceptions(rest_url, job_id)
            if not found and _job_ended(client):
                pytest.fail("the job ended without failing on the refused connections "
                            f"({first.count} answers before the outage, {ROWS} rows)")
            return found

        failures = wait_until(failed, 60, "the job to fail on the refused connections "
                              f"(exception history at {rest_url})", interval=0.05)
        restarted = FaultInjectingServer(port=port, api_key=TEST_KEY, responder=second).start()
        outage = time.monotonic() - outage_started
        assert second.reached.wait(60), "the restarted job never reached the new server"
        # Job status timestamps: when the job last entered each state (0 = never).
        states = rest_json(f"{rest_url}/jobs/{job_id}")["timestamps"]
        checkpoints = rest_json(f"{rest_url}/jobs/{job_id}/checkpoints")["counts"]
        result.wait()
    finally:
        if client is not None and not _job_ended(client):
            client.cancel()  # a failed test leaves no job running in this process's JVM
        server.stop()
        if restarted is not None:
            restarted.stop()

    rows = committed_json_rows(sink)
    counts = Counter(row["id"] for row in rows)
    assert sorted(counts) == list(range(1, ROWS + 1)), (
        f"missing ids: {sorted(set(range(1, ROWS + 1)) - set(counts))[:20]}")
    assert [i for i, n in counts.items() if n > 1] == []
    assert [r for r in rows if r["txt"] != f"text-{r['id']}" or r["content"] != r["txt"]] == []

    # The outage was noticed: the job failed with our FAILOVER message and was restarted.
    assert any("ML_PREDICT with model m failed (error-handling-strategy FAILOVER)" in f
               and "connection error" in f for f in failures), failures[:1]
    assert second.count > 0
    assert 0 < states["RESTARTING"] < states["RUNNING"], states  # restarted, then ran again
    assert checkpoints["restored"] >= 1, checkpoints  # from a checkpoint, not from scratch
    print(f"\nrestart test: {len(failures)} failure(s), {checkpoints}, "
          f"outage {outage:.1f}s after {answered_before_outage} answers; first server "
          f"{first.count}, second {second.count} ({first.count + second.count - ROWS} replayed); "
          f"{len(committed_files(sink))} files; {time.monotonic() - started:.1f}s")
