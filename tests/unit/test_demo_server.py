"""The demo server that `make demo` and docker-compose use: its rule-based answers, that it says it
is not a model, keep-alive, the key check, and a prompt stop on SIGINT / SIGTERM."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from flink_ml_predict.demo_answers import rule_based_answer
from flink_ml_predict.demo_server import DemoServer
from tests.conftest import ROOT, subprocess_environ

KEY = "sk-demo-test"
LABELS = ("Classify the text below into one of the following labels: "
          "[positive, negative, neutral, mixed]. Output only the label.")
MASK = "将内容中的身份证号 后四位用*号代替。"


@pytest.fixture
def demo() -> Iterator[DemoServer]:
    with DemoServer(api_key=KEY) as running:
        yield running


def _chat(sdk: openai.OpenAI, user: str, system: str | None = None) -> Any:
    messages: list[Any] = [{"role": "system", "content": system}] if system else []
    return sdk.chat.completions.create(model="qwen-turbo",
                                       messages=[*messages, {"role": "user", "content": user}])


@pytest.mark.parametrize(("text", "label"), [
    ("最愛小孩子猜聲音那段,算得上看過的電影裡相當浪漫的敘事了。很溫和也很有愛。", "positive"),
    ("乏善可陳", "negative"),
    ("乏善可陈", "negative"),
    ("The plot was boring and the acting bad.", "negative"),
    ("Great cast, boring plot.", "mixed"),
    ("A film about a train.", "neutral"),
])
def test_labels(text: str, label: str) -> None:
    body = {"messages": [{"role": "system", "content": LABELS}, {"role": "user", "content": text}]}
    assert rule_based_answer(body) == label


def test_a_wanted_label_missing_from_the_list_falls_back_to_neutral_then_the_first() -> None:
    def answer(system: str, user: str) -> str:
        return rule_based_answer({"messages": [{"role": "system", "content": system},
                                               {"role": "user", "content": user}]})

    assert answer("Label it: [good, neutral]", "I love it") == "neutral"
    assert answer("Classify into one label: [spam, ham]", "nothing to see") == "spam"


def test_masking_and_echo_over_http(demo: DemoServer) -> None:
    with openai.OpenAI(base_url=demo.dashscope_base_url, api_key=KEY, max_retries=0) as sdk:
        raw = sdk.chat.completions.with_raw_response.create(
            model="qwen-plus", messages=[{"role": "system", "content": MASK},
                                         {"role": "user", "content": "我的名字叫 码界探索: 412721199803134419."}])
        assert raw.headers["x-not-a-model"] == "flink-ml-predict demo server: rule-based answers"
        assert raw.parse().choices[0].message.content == "我的名字叫 码界探索: 41272119980313****."
        assert _chat(sdk, "a 11010519491231002X b", MASK).choices[0].message.content == (
            "a 11010519491231**** b")
        assert _chat(sdk, "just echo", "You are helpful.").choices[0].message.content == "just echo"


def test_embeddings_and_models(demo: DemoServer) -> None:
    with openai.OpenAI(base_url=demo.base_url, api_key=KEY, max_retries=0) as sdk:
        as_base64 = sdk.embeddings.create(model="text-embedding-v3", input=["a", "b"])
        as_float = sdk.embeddings.create(model="text-embedding-v3", input=["a", "b"],
                                         encoding_format="float")
        shorter = sdk.embeddings.create(model="text-embedding-v3", input="a", dimensions=5)
        assert [d.embedding for d in as_base64.data] == [d.embedding for d in as_float.data]
        assert [len(d.embedding) for d in as_float.data] == [8, 8]
        assert as_float.data[0].embedding != as_float.data[1].embedding
        assert len(shorter.data[0].embedding) == 5
        assert "qwen-turbo" in [m.id for m in sdk.models.list()]


def test_key_check_keep_alive_and_refusals(demo: DemoServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", demo.port, timeout=10)
    try:
        def request(method: str, path: str, body: Any = None, key: str | None = KEY
                    ) -> tuple[int, dict[str, Any]]:
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            conn.request(method, path, None if body is None else json.dumps(body), headers)
            response = conn.getresponse()
            return response.status, json.loads(response.read())

        assert request("GET", "/v1/models")[0] == 200
        sock = conn.sock
        status, body = request("POST", "/v1/chat/completions",
                               {"model": "m", "messages": [{"role": "user", "content": "x"}]})
        assert (status, body["choices"][0]["message"]["content"]) == (200, "x")
        assert request("GET", "/v1/models", key="sk-wrong")[1]["error"]["code"] == "invalid_api_key"
        assert request("POST", "/v1/chat/completions", {"model": "m", "stream": True,
                       "messages": [{"role": "user", "content": "x"}]})[0] == 400
        assert request("POST", "/v1/embeddings", {"model": "m"})[0] == 400
        assert request("GET", "/v1/files")[0] == 404
        assert conn.sock is sock  # every answer came on the first connection: kept alive
    finally:
        conn.close()


@pytest.mark.parametrize(("command", "signum"), [("demo-server", signal.SIGINT),
                                                 ("standin", signal.SIGTERM)])
def test_command_says_it_is_not_a_model_and_stops_promptly(command: str, signum: int) -> None:
    """The process ends within seconds of the signal even with a keep-alive connection open."""
    process = subprocess.Popen(
        [sys.executable, "-m", "flink_ml_predict.cli", command, "--port", "0", "--api-key", "k"],
        cwd=ROOT, env=subprocess_environ(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    conn = None
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "DEMO server" in line and "NOT a real model" in line, line
        url = line.split(" on ", 1)[1].split(" ", 1)[0]
        conn = http.client.HTTPConnection(url.removeprefix("http://").split(":")[0],
                                          int(url.rsplit(":", 1)[1]), timeout=10)
        conn.request("GET", "/v1/models", headers={"Authorization": "Bearer k"})
        assert conn.getresponse().read()  # the connection stays open, idle
        sent = time.monotonic()
        process.send_signal(signum)
        assert process.wait(timeout=10) == 0
        print(f"\n{command}: exited {time.monotonic() - sent:.2f}s after signal {signum}")
    finally:
        if conn is not None:
            conn.close()
        if process.poll() is None:
            process.kill()
            process.wait()
