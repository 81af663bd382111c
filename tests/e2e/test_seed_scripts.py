"""The three seed scripts run unchanged (endpoint and key from the environment) as real Flink jobs
through `flink-ml-predict run`, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT, TEST_KEY, print_rows, run_cli

pytestmark = pytest.mark.flink

CLASSIFY = ("Classify the text below into one of the following labels: [positive, negative, "
            "neutral, mixed]. Output only the label.")


def _chat_bodies(server) -> list[dict]:
    assert server.wait_idle()
    return [r.body for r in server.completed_requests("/chat/completions")]


def test_seed_000_qwen_masks_id_numbers(server) -> None:
    result = run_cli(["run", "sql/seed_000_qwen_masking.sql"],
                     {"QWEN_ENDPOINT": server.dashscope_base_url, "DASHSCOPE_API_KEY": TEST_KEY})
    assert result.returncode == 0, result.stderr
    assert print_rows(result.stdout) == ["+I[1, aaa, 我的名字叫 码界探索: 41272119980313****., positive]"]
    assert server.wait_idle()
    requests = server.completed_requests()
    assert [r.path for r in requests] == ["/compatible-mode/v1/chat/completions"]
    assert requests[0].headers["authorization"] == f"Bearer {TEST_KEY}"
    assert _chat_bodies(server) == [{
        "model": "qwen-plus",
        "messages": [{"role": "system", "content": "将内容中的身份证号 后四位用*号代替。"},
                     {"role": "user", "content": "我的名字叫 码界探索: 412721199803134419."}],
    }]


def test_seed_002_bailian_sentiment_with_vvr_logger_option(server) -> None:
    result = run_cli(["run", "sql/seed_002_bailian_sentiment.sql"],
                     {"BAILIAN_ENDPOINT": server.dashscope_base_url + "/chat/completions",
                      "DASHSCOPE_API_KEY": TEST_KEY})
    assert result.returncode == 0, result.stderr
    assert print_rows(result.stdout) == ["+I[1, 好東西, positive, positive]",
                                         "+I[2, 水餃皇后, negative, negative]"]
    assert "dropped option 'logger' = 'true' of the print connector" in result.stderr
    bodies = _chat_bodies(server)
    assert len(server.requests) == 2  # one request per row, nothing else
    assert sorted(b["messages"][1]["content"] for b in bodies) == sorted(
        ["最愛小孩子猜聲音那段,算得上看過的電影裡相當浪漫的敘事了。很溫和也很有愛。", "乏善可陳"])
    for body in bodies:
        assert body["model"] == "qwen-turbo"
        assert body["messages"][0] == {"role": "system", "content": CLASSIFY}
        assert set(body) == {"model", "messages"}


def test_seed_003_openai_sentiment(server) -> None:
    result = run_cli(["run", "sql/seed_003_openai_sentiment.sql"],
                     {"OPENAI_ENDPOINT": server.base_url + "/chat/completions",
                      "OPENAI_API_KEY": TEST_KEY})
    assert result.returncode == 0, result.stderr
    assert print_rows(result.stdout) == ["+I[1, 好东西, positive, positive]"]
    assert server.wait_idle()
    assert [r.path for r in server.completed_requests()] == ["/v1/chat/completions"]
    assert _chat_bodies(server)[0]["model"] == "gpt-3.5-turbo"


def test_demo_uses_the_demo_server_without_keys() -> None:
    result = run_cli(["demo"])
    assert result.returncode == 0, result.stderr
    assert "DEMO server" in result.stderr and "NOT a real model" in result.stderr
    assert print_rows(result.stdout) == ["+I[1, 好東西, positive, positive]",
                                         "+I[2, 水餃皇后, negative, negative]"]


def test_missing_environment_variable_fails_before_any_job(server, tmp_path) -> None:
    result = run_cli(["run", str(ROOT / "sql/seed_003_openai_sentiment.sql")],
                     {"OPENAI_ENDPOINT": server.base_url})
    assert result.returncode == 1
    assert "environment variable OPENAI_API_KEY is not set" in result.stderr
    assert "statement 1 (line 3)" in result.stderr
    assert server.requests == []
