"""`flink-ml-predict run` on scripts that use the SQL client's own statements, in a new process."""

from __future__ import annotations

import pytest

from tests.conftest import TEST_KEY, run_cli

pytestmark = pytest.mark.flink


def _sink_rows(stdout: str) -> list[str]:
    """Print-sink lines, e.g. 'A> +I[...]' (print-identifier A) or '+I[...]'."""
    return sorted(line for line in stdout.splitlines() if "+I[" in line)


def test_set_reset_statement_set_and_explain(server, tmp_path) -> None:
    script = tmp_path / "job.sql"
    script.write_text("""
-- a comment with ML_PREDICT(TABLE x, MODEL y, DESCRIPTOR(z)); and a ';'
SET 'pipeline.name' = 'cli test';
SET 'table.exec.async-ml-predict.max-concurrent-operations' = '3';
RESET 'pipeline.name';
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
""", encoding="utf-8")
    result = run_cli(["run", str(script)], {"QWEN_ENDPOINT": server.dashscope_base_url,
                                             "DASHSCOPE_API_KEY": TEST_KEY})
    assert result.returncode == 0, result.stderr
    assert _sink_rows(result.stdout) == ["A> +I[1, a;b, a;b]", "A> +I[2, c, c]", "A> +I[3, d, d]",
                                         "B> +I[2, C]", "B> +I[3, D]"]
    assert "== Optimized Execution Plan ==" in result.stdout and "PythonAsyncCalc" in result.stdout
    assert TEST_KEY not in result.stdout + result.stderr
    assert server.wait_idle()
    bodies = [r.body for r in server.requests]
    assert len(bodies) == 5  # 3 rows + 2 rows, one request each
    assert all(b["top_p"] == 0.8 and b["max_tokens"] == 16 and b["model"] == "qwen-turbo"
               and b["messages"][0]["content"] == "It's an echo; say ML_PREDICT back"
               for b in bodies)
    assert server.max_in_flight <= 3


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
    assert _sink_rows(result.stdout) == []


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
    assert _sink_rows(result.stdout) == ["+I[1, a, a]", "+I[2, b, b]"]
