"""`flink-ml-predict run --jobmanager`: the Python functions run in the TaskManagers, so the job's
summary is made of the figures the cluster's REST API reported while the job ran; Ctrl-C cancels
the job on the cluster (the cluster would otherwise run it on)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.conftest import StandaloneCluster
from tests.conftest import ROOT, TEST_KEY, model_ddl, run_cli, subprocess_environ
from tests.fakes.openai_server import FaultInjectingServer

pytestmark = pytest.mark.cluster

ROWS = 60


def test_summary_of_a_cluster_job_comes_from_the_rest_metrics(cluster: StandaloneCluster,
                                                              tmp_path: Path) -> None:
    # 20 rows a second, requests of 0.2 s, two at a time: the job runs for seconds, over several
    # Python bundles (metrics reach Flink when a bundle ends; an input without pauses would make
    # one bundle of the whole job) and metric fetches (every 500 ms here).
    with FaultInjectingServer(api_key=TEST_KEY, latency=0.2) as server:
        script = tmp_path / "progress.sql"
        script.write_text(
            model_ddl("m", server.base_url + "/chat/completions") + ";\n"
            "CREATE TEMPORARY TABLE ids (id BIGINT) WITH ('connector' = 'datagen', "
            "'fields.id.kind' = 'sequence', 'fields.id.start' = '1', "
            f"'fields.id.end' = '{ROWS}', 'rows-per-second' = '20');\n"
            "CREATE TEMPORARY VIEW src AS SELECT id, CONCAT('row ', CAST(id AS STRING)) AS txt "
            "FROM ids;\n"
            "CREATE TEMPORARY TABLE progress_sink (id BIGINT, content STRING) "
            "WITH ('connector' = 'blackhole');\n"
            "INSERT INTO progress_sink SELECT id, content FROM ML_PREDICT(TABLE src, MODEL m, "
            "DESCRIPTOR(txt), MAP['max-concurrent-operations', '2']);\n", encoding="utf-8")
        result = run_cli(["run", str(script), "--jobmanager", cluster.jobmanager, "-p", "1"])
        assert server.wait_idle()
        sent = len(server.completed_requests())
    assert result.returncode == 0, result.stderr
    assert sent == ROWS
    header = re.search(r"^statement 5 \(line \d+\): job [0-9a-f]{32} finished after [\d.]+ s "
                       r"\(figures as the cluster last reported them\)$", result.stderr, re.M)
    assert header, result.stderr
    figures = re.search(r"^  model m: (\d+) rows? \([\d.]+/s\), (\d+) requests?, 0 retries, "
                        r"0 failures, tokens (\d+) in / (\d+) out$", result.stderr, re.M)
    assert figures, result.stderr
    rows, requests, tokens_in, _ = (int(g) for g in figures.groups())
    # Read while the job ran: some, and never more than the server answered.
    assert 0 < requests <= sent and rows <= requests and tokens_in > 0, result.stderr


def test_ctrl_c_cancels_the_job_on_the_cluster(cluster: StandaloneCluster, tmp_path: Path) -> None:
    with FaultInjectingServer(api_key=TEST_KEY) as server:
        server.hold()  # every answer waits: the job runs until it is cancelled
        script = tmp_path / "held.sql"
        script.write_text(
            model_ddl("m", server.base_url + "/chat/completions") + ";\n"
            "CREATE TEMPORARY VIEW src(id, txt) AS VALUES (1, 'a'), (2, 'b'), (3, 'c');\n"
            "CREATE TEMPORARY TABLE held_sink (id INT, txt STRING, content STRING) "
            "WITH ('connector' = 'blackhole');\n"
            "INSERT INTO held_sink SELECT * FROM ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt), "
            "MAP['max-concurrent-operations', '1']);\n", encoding="utf-8")
        process = subprocess.Popen(
            [sys.executable, "-m", "flink_ml_predict.cli", "run", str(script), "--jobmanager",
             cluster.jobmanager, "-p", "1"], cwd=ROOT, env=subprocess_environ(),
            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert server.wait_for_held(1, timeout=180)
            os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C
            _, err = process.communicate(timeout=120)
        finally:
            server.release()
            if process.poll() is None:
                process.kill()
                process.communicate()
    stderr = err.decode()
    assert process.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 2 and "Traceback" not in stderr, stderr
    found = re.fullmatch(r"interrupted: cancelled job ([0-9a-f]{32}) of statement 4 \(line \d+\) "
                         r"\((?:0 rows done by model m|no model rows done)\)", lines[1])
    assert found, lines
    # The cancel was acknowledged; the job reaches CANCELED once its tasks are gone.
    assert cluster.wait_for_state(found.group(1), ("CANCELED",))["state"] == "CANCELED"
