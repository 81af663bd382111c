"""`flink-ml-predict run` on scripts that use the SQL client's own statements, in a new process."""

from __future__ import annotations

import pytest

from tests.conftest import TEST_KEY, print_rows, run_cli
from tests.fakes.openai_server import FaultInjectingServer

pytestmark = pytest.mark.flink

BOUNDED_ROWS = 12


def test_set_reset_statement_set_and_explain(server, tmp_path) -> None:
    script = tmp_path / "job.sql"
    many = ", ".join(f"({i}, 'm{i}')" for i in range(1, BOUNDED_ROWS + 1))
    script.write_text("""
-- a comment with ML_PREDICT(TABLE x, MODEL y, DESCRIPTOR(z)); and a ';'
SET 'pipeline.name' = 'cli test';
SET 'table.exec.async-ml-predict.max-concurrent-operations' = '3';
-- one Python bundle per job: the gate's rounds below are not cut by a bundle's end
SET 'python.fn-execution.bundle.time' = '3600000';
SET;
RESET 'pipeline.name';
SET;
CREATE MODEL IF NOT EXISTS `labeller` INPUT (`input` STRING) OUTPUT (`content` STRING) WITH (
  'provider' = 'qwen', 'endpoint' = '${QWEN_ENDPOINT}', 'api-key' = '${DASHSCOPE_API_KEY}',
  'model' = 'qwen-turbo', 'top_p' = '0.8', 'max_tokens' = '16',
  'system-prompt' = 'It''s an echo; say ML_PREDICT back'
);
CREATE MODEL IF NOT EXISTS labeller INPUT (`input` STRING) OUTPUT (`content` STRING) WITH (
  'provider' = 'qwen', 'endpoint' = 'http://unused.invalid', 'api-key' = 'x', 'model' = 'y');
CREATE TEMPORARY VIEW src(id, txt) AS SELECT * FROM (VALUES (1, 'a;b'), (2, 'c'), (3, 'd'));
CREATE TEMPORARY TABLE out_a (id INT, txt STRING, content STRING)
  WITH ('connector' = 'print', 'print-identifier' = 'A');
CREATE TEMPORARY TABLE out_b (id INT, content STRING)
  WITH ('connector' = 'print', 'print-identifier' = 'B');
EXPLAIN SELECT * FROM ML_PREDICT(TABLE src, MODEL labeller, DESCRIPTOR(txt));
EXECUTE STATEMENT SET BEGIN
  INSERT INTO out_a SELECT * FROM ML_PREDICT(TABLE src, MODEL labeller, DESCRIPTOR(txt));
  INSERT INTO out_b SELECT id, UPPER(content) FROM ML_PREDICT(TABLE src, MODEL labeller,
    DESCRIPTOR(txt)) WHERE id > 1;
END;
CREATE TEMPORARY MODEL bounded INPUT (`input` STRING) OUTPUT (`content` STRING) WITH (
  'provider' = 'openai', 'endpoint' = '${BOUNDED_ENDPOINT}', 'api-key' = '${DASHSCOPE_API_KEY}',
  'model' = 'gpt-4o-mini');
CREATE TEMPORARY VIEW many(id, txt) AS VALUES """ + many + """;
CREATE TEMPORARY TABLE out_c (id INT, content STRING) WITH ('connector' = 'blackhole');
INSERT INTO out_c SELECT id, content FROM ML_PREDICT(TABLE many, MODEL bounded, DESCRIPTOR(txt));
""", encoding="utf-8")
    # The bounded model's server holds each round of answers until 3 requests wait together, and
    # 0.1 s longer: the SET bound is reached however loaded the machine, and a job allowing more
    # (Flink's default is 10) sends a fourth in that window (see tests/fakes/gate.py).
    with FaultInjectingServer(api_key=TEST_KEY) as bounded:
        bounded.hold(release_when=lambda s: s.in_flight >= 3 or s.arrived > BOUNDED_ROWS - 6,
                     linger=0.1)
        result = run_cli(["run", str(script)], {"QWEN_ENDPOINT": server.dashscope_base_url,
                                                 "BOUNDED_ENDPOINT": bounded.base_url,
                                                 "DASHSCOPE_API_KEY": TEST_KEY})
        assert bounded.wait_idle()
    assert result.returncode == 0, result.stderr
    assert sorted(print_rows(result.stdout)) == [
        "A> +I[1, a;b, a;b]", "A> +I[2, c, c]", "A> +I[3, d, d]", "B> +I[2, C]", "B> +I[3, D]"]
    # SET lists the configuration: 'pipeline.name' in the listing before RESET, not after it.
    assert result.stdout.count("'pipeline.name' = 'cli test'") == 1, result.stdout
    assert result.stdout.count(
        "'table.exec.async-ml-predict.max-concurrent-operations' = '3'") == 2
    assert "== Optimized Execution Plan ==" in result.stdout and "PythonAsyncCalc" in result.stdout
    assert TEST_KEY not in result.stdout + result.stderr
    assert server.wait_idle()
    bodies = [r.body for r in server.requests]
    assert len(bodies) == 5  # 3 rows + 2 rows, one request each
    assert all(b["top_p"] == 0.8 and b["max_tokens"] == 16 and b["model"] == "qwen-turbo"
               and b["messages"][0]["content"] == "It's an echo; say ML_PREDICT back"
               for b in bodies)
    answered = sorted(r.body["messages"][-1]["content"] for r in bounded.completed_requests())
    assert answered == sorted(f"m{i}" for i in range(1, BOUNDED_ROWS + 1))
    assert (bounded.max_in_flight, bounded.gate_expired) == (3, 0)


def test_failed_job_exits_non_zero_with_the_reason(server, tmp_path) -> None:
    script = tmp_path / "fail.sql"
    script.write_text(f"""
CREATE MODEL m INPUT (`input` STRING) OUTPUT (`content` STRING) WITH (
  'provider' = 'openai', 'endpoint' = '{server.base_url}/chat/completions',
  'api-key' = 'sk-wrong-key-abcdefghijklmnop', 'model' = 'gpt-4o-mini');
CREATE TEMPORARY VIEW src(id, txt) AS VALUES (1, 'a');
CREATE TEMPORARY TABLE sink (id INT, txt STRING, content STRING) WITH ('connector' = 'print');
INSERT INTO sink SELECT * FROM ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt));
""", encoding="utf-8")
    result = run_cli(["run", str(script)])
    assert result.returncode == 1
    assert "statement 4 (line 7): job failed:" in result.stderr
    assert "HTTP 401" in result.stderr and "invalid_api_key" in result.stderr
    assert "sk-wrong-key-abcdefghijklmnop" not in result.stderr + result.stdout
    assert print_rows(result.stdout) == []


def test_script_with_a_byte_order_mark_runs(server, tmp_path) -> None:
    script = tmp_path / "bom.sql"
    script.write_text("\ufeffCREATE MODEL m1 INPUT (`input` STRING) OUTPUT (`content` STRING) "
                      "WITH ('provider' = 'openai', 'endpoint' = '${OPENAI_ENDPOINT}', "
                      "'api-key' = '${OPENAI_API_KEY}', 'model' = 'gpt-4o-mini');\n"
                      "CREATE TEMPORARY VIEW src(id, txt) AS VALUES (1, 'a'), (2, 'b');\n"
                      "CREATE TEMPORARY TABLE sink (id INT, txt STRING, content STRING) "
                      "WITH ('connector' = 'print');\n"
                      "INSERT INTO sink SELECT * FROM ML_PREDICT(TABLE src, MODEL m1, "
                      "DESCRIPTOR(txt));\n", encoding="utf-8")
    assert script.read_bytes().startswith(b"\xef\xbb\xbfCREATE")
    result = run_cli(["run", str(script)], {"OPENAI_ENDPOINT": server.base_url,
                                             "OPENAI_API_KEY": TEST_KEY})
    assert result.returncode == 0, result.stderr
    assert print_rows(result.stdout) == ["+I[1, a, a]", "+I[2, b, b]"]
