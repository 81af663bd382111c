"""Failure strategies inside real Flink jobs: IGNORE never becomes a job failure (not even through
the operator timeout), FAILOVER fails the job with a clear message, token limits apply."""

from __future__ import annotations

import re

import pytest

from flink_ml_predict import StatementError, execute_script
from flink_ml_predict.runtime.tokens import TokenCounter
from tests.conftest import METADATA_OUTPUT, TEST_KEY, collect, model_ddl
from tests.fakes.openai_server import Fault

pytestmark = pytest.mark.flink

ROWS = "CREATE TEMPORARY VIEW src(id, txt) AS SELECT * FROM (VALUES (1, 'ok'), (2, 'slow'), (3, 'bad'))"


def test_ignore_survives_a_model_slower_than_the_operator_timeout(t_env, server) -> None:
    """Flink's Java provider fails the job here (its operator timeout fires under IGNORE)."""
    server.fail_always("slow", Fault.slow(30.0))
    server.fail_always("bad", Fault.status_code(503))
    ddl = model_ddl("m", server.base_url, output=METADATA_OUTPUT, error_handling_strategy="RETRY",
                    retry_fallback_strategy="IGNORE", request_timeout="60s",
                    retry_initial_backoff="50ms", retry_max_backoff="100ms")
    execute_script(t_env, ddl + ";\n" + ROWS)
    rows = sorted(collect(t_env, "SELECT id, content, `error-string`, `http-status-code` FROM "
                                 "ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt), "
                                 "MAP['timeout', '4s'])"))
    assert rows[0] == (1, "ok", None, None)
    assert rows[1][:2] == (2, None) and rows[1][2] == "request timed out" and rows[1][3] is None
    assert rows[2][:2] == (3, None) and "HTTP 503" in rows[2][2] and rows[2][3] == 503
    assert server.attempts("bad") > 2  # retried until the row's budget (inside the 4 s timeout) ran out


def test_failover_fails_the_job_with_a_clear_message(t_env, server) -> None:
    server.fail_always("bad", Fault.status_code(500))
    script = (model_ddl("m", server.base_url, error_handling_strategy="FAILOVER") + ";\n" + ROWS
              + ";\nCREATE TEMPORARY TABLE sink (id INT, txt STRING, content STRING) "
              "WITH ('connector' = 'blackhole');\n"
              "INSERT INTO sink SELECT * FROM ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt))")
    with pytest.raises(StatementError) as caught:
        execute_script(t_env, script)
    message = str(caught.value)
    assert re.match(r"statement 4 \(line \d+\): job failed: ML_PREDICT with model m", message)
    assert "ML_PREDICT with model m failed (error-handling-strategy FAILOVER)" in message
    assert "HTTP 500" in message and TEST_KEY not in message
    assert server.attempts("bad") == 1


def test_context_overflow_truncates_and_skips_with_qwens_tokenizer(t_env, server) -> None:
    text = "通义千问是阿里云研发的大语言模型，能够回答问题、创作文字。"
    counter = TokenCounter.for_model("qwen-plus", "qwen")
    assert counter.count(text) > 5
    script = "\n".join([
        model_ddl("tail", server.dashscope_base_url, provider="qwen", model="qwen-plus",
                  max_context_size="5") + ";",
        model_ddl("head", server.dashscope_base_url, provider="qwen", model="qwen-plus",
                  max_context_size="5", context_overflow_action="truncated-head-log") + ";",
        model_ddl("skip", server.dashscope_base_url, provider="qwen", model="qwen-plus",
                  max_context_size="5", context_overflow_action="skipped-log") + ";",
        f"CREATE TEMPORARY VIEW src(id, txt) AS SELECT * FROM (VALUES (1, '{text}'), (2, '短句'))",
    ])
    execute_script(t_env, script)
    tail = sorted(collect(t_env, "SELECT id, content FROM ML_PREDICT(TABLE src, MODEL tail, "
                                 "DESCRIPTOR(txt))"))
    head = sorted(collect(t_env, "SELECT id, content FROM ML_PREDICT(TABLE src, MODEL head, "
                                 "DESCRIPTOR(txt))"))
    skip = sorted(collect(t_env, "SELECT id, content FROM ML_PREDICT(TABLE src, MODEL skip, "
                                 "DESCRIPTOR(txt))"))
    assert tail == [(1, counter.truncate_tail(text, 5)), (2, "短句")]
    assert head == [(1, counter.truncate_head(text, 5)), (2, "短句")]
    assert text.startswith(tail[0][1]) and text.endswith(head[0][1])
    assert counter.count(tail[0][1]) <= 5 and counter.count(head[0][1]) <= 5
    assert skip == [(2, "短句")]
    assert len(server.requests) == 5  # the skipped row was never sent
