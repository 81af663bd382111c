"""ML_PREDICT on a real standalone Flink cluster started from the pip distribution.

One cluster (tests/cluster/conftest.py) serves every test; the model is a FaultInjectingServer on
127.0.0.1, which the TaskManager reaches because it runs on this machine. Jobs are submitted the
two ways a user would: `flink-ml-predict run SCRIPT --jobmanager HOST:PORT`, and Flink's own
`bin/flink run -py PROGRAM`; what they did is read back from the sink (the TaskManager's stdout
file for the print connector, committed files for the filesystem connector) and from the REST API.

Where the Python functions ran is read from the TaskManager's log: Flink logs each Python
worker's interpreter ("Python interpreter path:"), and a worker in "loopback" mode (the submitting
client's own process, not the TaskManager's) forwards PyFlink's "Starting up Python worker in
loopback mode." to it.

Metric ids as Flink's REST API shows them (``/jobs/<job>/vertices/<vertex>/metrics``):
``<subtask>.<operator>.flink_ml_predict.<model>.<metric>``, e.g.
``0.PythonAsyncCalc[3].flink_ml_predict.ai_analyze_sentiment.requests``; aggregated over subtasks
(``/jobs/<job>/vertices/<vertex>/subtasks/metrics?get=...``) without the subtask prefix.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import (
    StandaloneCluster,
    cmdline,
    descendants_of,
    epoch_ms,
    is_running,
    run_flink,
    start_cli,
)
from tests.conftest import (
    ROOT,
    TEST_KEY,
    checkpointed_job,
    committed_files,
    committed_json_rows,
    model_ddl,
    print_rows,
    run_cli,
    wait_until,
)
from tests.fakes.openai_server import Fault, FaultInjectingServer

pytestmark = pytest.mark.cluster

SCRIPT_JOB = Path(__file__).with_name("script_job.py")
EXAMPLE = ROOT / "examples" / "pyflink_sentiment_job.py"
LOOPBACK = "Starting up Python worker in loopback mode."


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


class _TaskManagerLogs:
    """What the TaskManagers logged from now on (logs of TaskManagers started later included)."""

    def __init__(self, cluster: StandaloneCluster) -> None:
        self._cluster = cluster
        self._offsets = {p: p.stat().st_size for p in self._logs()}

    def _logs(self) -> list[Path]:
        return sorted(self._cluster.log_dir.glob("flink-*-taskexecutor-*.log"))

    def new_text(self) -> str:
        chunks = []
        for path in self._logs():
            with path.open("rb") as log:
                log.seek(self._offsets.get(path, 0))
                chunks.append(log.read().decode("utf-8", errors="replace"))
        return "".join(chunks)

    def python_workers(self) -> list[str]:
        """One entry per Python worker started: 'loopback' or 'process'."""
        text = self.new_text()
        interpreters = text.count("Python interpreter path:")
        loopback = text.count(LOOPBACK)
        return ["loopback"] * loopback + ["process"] * max(interpreters - loopback, 0)


def _finished_on_the_cluster(cluster: StandaloneCluster, job_id: str) -> dict[str, Any]:
    """Asserts that every task of the job ran on a registered TaskManager and finished."""
    job = cluster.wait_for_state(job_id, ("FINISHED",), timeout=60)
    registered = {tm["id"] for tm in cluster.rest("/taskmanagers")["taskmanagers"]}
    for vertex in job["vertices"]:
        assert vertex["status"] == "FINISHED", vertex
        placement = cluster.rest(f"/jobs/{job_id}/vertices/{vertex['id']}/taskmanagers")
        used = {tm["taskmanager-id"] for tm in placement["taskmanagers"]}
        assert used and used <= registered, (used, registered)
    return job


# --- a. the seed script through `flink-ml-predict run --jobmanager` --------------------------


@pytest.fixture(scope="module")
def seed_run(flink_cluster: StandaloneCluster,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Seed 003 (print sink with a unique identifier) run once through the CLI on the cluster."""
    cluster = flink_cluster
    cluster.wait_for_slots(1, timeout=60)
    identifier = f"seed003-{uuid.uuid4().hex[:8]}"
    seed = (ROOT / "sql" / "seed_003_openai_sentiment.sql").read_text(encoding="utf-8")
    script = seed.replace("'connector' = 'print'",
                          f"'connector' = 'print', 'print-identifier' = '{identifier}'")
    assert identifier in script
    path = _write(tmp_path_factory.mktemp("seed") / "seed_003_on_cluster.sql", script)
    with FaultInjectingServer(api_key=TEST_KEY) as server:
        logs = _TaskManagerLogs(cluster)
        since = epoch_ms()
        result = run_cli(["run", str(path), "--jobmanager", cluster.jobmanager],
                         {"OPENAI_ENDPOINT": server.base_url + "/chat/completions",
                          "OPENAI_API_KEY": TEST_KEY})
        server.wait_idle()
        yield {"result": result, "since": since, "identifier": identifier, "logs": logs,
               "requests": server.completed_requests()}


def test_cli_runs_the_seed_sentiment_job_on_the_cluster(cluster: StandaloneCluster,
                                                        seed_run: dict[str, Any]) -> None:
    result = seed_run["result"]
    assert result.returncode == 0, result.stderr
    job = cluster.wait_for_job("print_sink", seed_run["since"], timeout=10)
    assert f"job {job['jid']} submitted" in result.stderr
    _finished_on_the_cluster(cluster, job["jid"])
    rows = wait_until(lambda: print_rows(cluster.taskmanager_stdout(), seed_run["identifier"]), 10,
                      "the print sink's row in the TaskManager's .out file")
    assert rows == ["+I[1, 好东西, positive, positive]"]
    requests = seed_run["requests"]
    assert [r.path for r in requests] == ["/v1/chat/completions"]
    assert requests[0].headers["authorization"] == f"Bearer {TEST_KEY}"
    assert requests[0].body["model"] == "gpt-3.5-turbo"


def test_cli_jobs_run_their_python_functions_in_the_taskmanagers(
        cluster: StandaloneCluster, seed_run: dict[str, Any]) -> None:
    assert seed_run["result"].returncode == 0, seed_run["result"].stderr
    workers = seed_run["logs"].python_workers()
    assert workers, "no Python worker was started for the job"
    assert set(workers) == {"process"}, workers


# --- b. an example PyFlink program through Flink's own client ---------------------------------


def test_flink_run_example_program(cluster: StandaloneCluster, server: FaultInjectingServer,
                                   tmp_path: Path) -> None:
    out = tmp_path / "sentiment"
    logs = _TaskManagerLogs(cluster)
    since = epoch_ms()
    result = run_flink(cluster, ["run", "-py", str(EXAMPLE), "-pyexec", sys.executable,
                                 "-pyclientexec", sys.executable, "--output", str(out)],
                       {"OPENAI_ENDPOINT": server.base_url + "/chat/completions",
                        "OPENAI_API_KEY": TEST_KEY})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    job = cluster.wait_for_job("sentiment_sink", since, timeout=10)
    assert f"Job has been submitted with JobID {job['jid']}" in result.stdout
    _finished_on_the_cluster(cluster, job["jid"])
    rows = sorted(committed_json_rows(out), key=lambda r: r["id"])
    assert rows == [
        {"id": 1, "movie_name": "好东西", "predict_label": "positive", "actual_label": "positive"},
        {"id": 2, "movie_name": "水饺皇后", "predict_label": "negative", "actual_label": "negative"},
    ]
    assert server.wait_idle()
    assert sorted(r.body["messages"][1]["content"] for r in server.completed_requests()) == [
        "乏善可陈", "最爱小孩子猜声音那段,算得上看过的电影里相当浪漫的叙事了。很温和也很有爱。"]
    assert TEST_KEY not in result.stdout + result.stderr
    # Flink's client submits with the cluster as target: the TaskManager's own Python ran them.
    assert set(logs.python_workers()) == {"process"}, logs.python_workers()


# --- c. the package's metrics in Flink's REST API ---------------------------------------------

METRICS_MODEL = "ai_analyze_sentiment"
# Requests answered with an error (each row retried once, then answered): the failures and
# retries counters must count exactly these.
SCRIPTED_FAILURES = {"comment 1": Fault.status_code(500), "comment 2": Fault.status_code(503)}
METRIC_ID = re.compile(r"^(\d+)\.(PythonAsyncCalc\[\d+\])\.flink_ml_predict\."
                       + re.escape(METRICS_MODEL) + r"\.([a-z-]+)$")


@pytest.fixture(scope="module")
def metrics_snapshot(flink_cluster: StandaloneCluster,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Operator metrics read from the REST API while a slow job (100 ms per request) runs."""
    cluster = flink_cluster
    cluster.wait_for_slots(1, timeout=60)
    with FaultInjectingServer(api_key=TEST_KEY, latency=0.1) as server:
        for key, fault in SCRIPTED_FAILURES.items():
            server.script(key, [fault])
        script = f"""
            {model_ddl(METRICS_MODEL, server.base_url + "/chat/completions")};
            CREATE TEMPORARY TABLE ids (id BIGINT) WITH (
              'connector' = 'datagen', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1',
              'fields.id.end' = '400', 'rows-per-second' = '20');
            CREATE TEMPORARY VIEW src AS
              SELECT id, CONCAT('comment ', CAST(id AS STRING)) AS txt FROM ids;
            CREATE TEMPORARY TABLE metrics_sink (id BIGINT, content STRING)
              WITH ('connector' = 'blackhole');
            INSERT INTO metrics_sink SELECT id, content FROM ML_PREDICT(TABLE src,
              MODEL {METRICS_MODEL}, DESCRIPTOR(txt), MAP['max-concurrent-operations', '2']);
        """
        path = _write(tmp_path_factory.mktemp("metrics") / "metrics.sql", script)
        since = epoch_ms()
        process = start_cli(["run", str(path), "--jobmanager", cluster.jobmanager, "-p", "1"])
        job_id = None
        try:
            job_id = cluster.wait_for_job("metrics_sink", since, timeout=120)["jid"]
            snapshot = _read_metrics(cluster, job_id)
            snapshot["requests"] = len(server.requests)
            snapshot["server_outcomes"] = server.fault_counts()
        finally:
            # The job is not needed any more: cancel it now, not at the end of the module.
            if job_id is not None and (cluster.rest_or_none(f"/jobs/{job_id}") or {}).get(
                    "state") in ("RUNNING", "CREATED", "RESTARTING", "INITIALIZING"):
                cluster.rest(f"/jobs/{job_id}?mode=cancel", method="PATCH")
            try:
                process.communicate(timeout=60)
            except subprocess.TimeoutExpired:  # never leave the client running
                process.kill()
                process.communicate()
        if job_id is not None:
            cluster.wait_for_state(job_id, ("CANCELED", "FINISHED"), timeout=60)
    yield snapshot


def _read_metrics(cluster: StandaloneCluster, job_id: str) -> dict[str, Any]:
    """Lists the ML_PREDICT operator's metrics once rows have gone through it for a while."""
    job = cluster.wait_for_state(job_id, ("RUNNING",), timeout=60)
    (vertex,) = [v for v in job["vertices"] if "PythonAsyncCalc" in v["name"]]
    base = f"/jobs/{job_id}/vertices/{vertex['id']}"
    state: dict[str, Any] = {}

    def enough() -> bool:
        """Our counters showed the requests and the scripted failures, or rows went through
        for 8 s (many Python bundles) without them (the assertions then say what is missing)."""
        ids = [m["id"] for m in cluster.rest(base + "/metrics")]
        state["ids"] = ids
        records = [i for i in ids if ".PythonAsyncCalc[" in i and i.endswith(".numRecordsIn")]
        if not records:
            return False
        values = cluster.rest(base + "/metrics?get=" + ",".join(records))
        if sum(float(v["value"]) for v in values) < 10:
            return False
        state.setdefault("flowing", time.monotonic())
        ours = [i for i in ids if (m := METRIC_ID.match(i)) and m.group(3) in (
            "requests", "failures")]
        values = {METRIC_ID.match(v["id"]).group(3): float(v["value"]) for v in cluster.rest(
            base + "/metrics?get=" + ",".join(ours))} if ours else {}
        if values.get("requests", 0) > 0 and values.get("failures", 0) >= len(SCRIPTED_FAILURES):
            return True
        return time.monotonic() - state["flowing"] > 8

    wait_until(enough, 90, "rows through the ML_PREDICT operator", interval=0.5)
    ours = [i for i in state["ids"] if METRIC_ID.match(i)]
    values = {v["id"]: v["value"] for v in cluster.rest(
        base + "/metrics?get=" + ",".join(ours))} if ours else {}
    names = sorted({f"{METRIC_ID.match(i).group(2)}.flink_ml_predict.{METRICS_MODEL}."
                    f"{METRIC_ID.match(i).group(3)}" for i in ours})
    aggregated = cluster.rest(base + "/subtasks/metrics?get=" + ",".join(names)) if names else []
    return {"job": job_id, "vertex": vertex, "all_ids": state["ids"], "ids": ours,
            "values": values, "aggregated": aggregated}


def _by_metric(snapshot: dict[str, Any]) -> dict[str, str]:
    return {METRIC_ID.match(i).group(3): v for i, v in snapshot["values"].items()}


def test_metric_ids_of_the_python_metric_group(metrics_snapshot: dict[str, Any]) -> None:
    ids = metrics_snapshot["ids"]
    assert ids, ("no flink_ml_predict metric among the operator's metrics: "
                 f"{[i for i in metrics_snapshot['all_ids'] if 'Python' in i][:20]}")
    by_metric = _by_metric(metrics_snapshot)
    assert "in-flight" in by_metric, ids
    assert 0 <= float(by_metric["in-flight"]) <= 2  # max-concurrent-operations
    assert all(METRIC_ID.match(i).group(1) == "0" for i in ids)  # parallelism 1: subtask 0
    aggregated = {a["id"]: a for a in metrics_snapshot["aggregated"]}
    assert any(name.endswith(".in-flight") and not name[0].isdigit() for name in aggregated)


def test_request_and_token_counters_reach_flink(metrics_snapshot: dict[str, Any]) -> None:
    assert metrics_snapshot["requests"] > 0
    by_metric = _by_metric(metrics_snapshot)
    assert {"requests", "tokens-in", "tokens-out", "latency-ms"} <= set(by_metric), sorted(
        by_metric)
    assert 0 < int(by_metric["requests"]) <= metrics_snapshot["requests"]
    assert int(by_metric["tokens-in"]) > 0 and int(by_metric["tokens-out"]) > 0
    # The server failed exactly these requests; each row was retried once and then answered.
    server_failures = {o: n for o, n in metrics_snapshot["server_outcomes"].items() if o != "ok"}
    assert server_failures == {"status:500": 1, "status:503": 1}
    assert (by_metric.get("failures"), by_metric.get("retries")) == ("2", "2"), sorted(by_metric)


# --- d. a TaskManager killed mid-job ----------------------------------------------------------

RESTART_ROWS = 300
RESTART_RPS = 20  # the job reads its input for ~15 s


def test_no_row_lost_or_duplicated_when_the_taskmanager_is_killed(
        cluster: StandaloneCluster, server: FaultInjectingServer, tmp_path: Path) -> None:
    sink = tmp_path / "sink"
    script = (
        "SET 'parallelism.default' = '1';\n"
        + model_ddl("m", server.base_url + "/chat/completions", error_handling_strategy="FAILOVER")
        + ";\n" + checkpointed_job("m", sink, rows=RESTART_ROWS, rows_per_second=RESTART_RPS,
                                   restart_attempts=10))
    path = _write(tmp_path / "restart.sql", script)
    busy = [j["jid"] for j in cluster.jobs() if j["state"] not in ("FINISHED", "CANCELED", "FAILED")]
    assert busy == [], f"jobs still running on the shared cluster: {busy}"
    (victim,) = cluster.taskmanager_pids()
    since = epoch_ms()
    client = run_flink(cluster, ["run", "-py", str(SCRIPT_JOB), "-pyexec", sys.executable,
                                 "-pyclientexec", sys.executable, str(path)],
                       {"OPENAI_API_KEY": TEST_KEY}, background=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(client.stdout), daemon=True)
    reader.start()
    try:
        job_id = cluster.wait_for_job("sink", since, timeout=120)["jid"]

        def checkpointed() -> bool:
            counts = (cluster.rest_or_none(f"/jobs/{job_id}/checkpoints") or {}).get("counts", {})
            return counts.get("completed", 0) >= 2 and bool(committed_files(sink))

        wait_until(checkpointed, 120, "2 completed checkpoints and committed sink files")
        answered_before = len(server.requests)
        workers = descendants_of(victim)
        cluster.watch(workers)
        assert any("beam_boot" in cmdline(p) for p in workers), [cmdline(p) for p in workers]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        workers_gone: list[float] = []
        threading.Thread(target=_record_exit, args=(workers, killed_at, workers_gone),
                         daemon=True).start()
        wait_until(lambda: not is_running(victim), 10, "the killed TaskManager to exit")
        replacement = cluster.start_taskmanager()
        cluster.wait_for_state(job_id, ("FINISHED",), timeout=180)
        client.wait(timeout=60)
        reader.join(timeout=10)
        recovery = time.monotonic() - killed_at
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()

    assert client.returncode == 0, "".join(output)[-3000:]
    rows = committed_json_rows(sink)
    counts = Counter(row["id"] for row in rows)
    missing = sorted(set(range(1, RESTART_ROWS + 1)) - set(counts))
    assert missing == [], f"{len(missing)} ids missing, e.g. {missing[:20]}"
    assert [i for i, n in counts.items() if n > 1] == [], "duplicated ids"
    assert len(rows) == RESTART_ROWS
    assert [r for r in rows if r["content"] != r["txt"] or r["txt"] != f"text-{r['id']}"] == []

    # The job really failed over: the TaskManager loss is in its exception history, it was
    # restored from a checkpoint, and the new TaskManager's Python worker asked for rows again.
    failures = cluster.root_exceptions(job_id)
    assert any("TaskManager with id" in f and ("is no longer reachable" in f or "timed out" in f)
               for f in failures), failures[:1]
    checkpoints = cluster.rest(f"/jobs/{job_id}/checkpoints")
    assert (checkpoints.get("latest") or {}).get("restored"), checkpoints.get("latest")
    assert len(server.requests) > answered_before
    placement = cluster.rest(f"/jobs/{job_id}/vertices/"
                             f"{cluster.rest(f'/jobs/{job_id}')['vertices'][0]['id']}/taskmanagers")
    assert placement["taskmanagers"], placement
    assert replacement in cluster.taskmanager_pids()
    # The killed TaskManager's Python worker usually exits within 2 s, but Beam's shutdown can
    # deadlock for good (logging.shutdown() holds the Beam log handler's lock while close() joins
    # the log-reader thread, which waits for that lock); the package's watchdog then ends the
    # orphan (runtime/watchdog.py). A worker left running holds memory and a Python process per
    # kill on a real cluster, so it fails the test.
    wait_until(lambda: workers_gone, 10, "the killed TaskManager's Python workers to exit "
               f"(running when the wait began: {[cmdline(p)[:100] for p in workers if is_running(p)]})")
    print(f"\nkill -9 to FINISHED: {recovery:.1f}s, {len(failures)} failure(s), requests "
          f"before the kill/in all: {answered_before}/{len(server.requests)}, the killed "
          f"TaskManager's Python workers gone after: "
          f"{f'{workers_gone[0]:.1f}s' if workers_gone else 'not yet (stray)'}")


def _record_exit(pids: list[int], since: float, gone: list[float]) -> None:
    """Appends the seconds from `since` until none of `pids` runs (polled every 0.1 s)."""
    pause = threading.Event()
    while any(is_running(p) for p in pids) and time.monotonic() - since < 120:
        pause.wait(0.1)
    if not any(is_running(p) for p in pids):
        gone.append(time.monotonic() - since)

