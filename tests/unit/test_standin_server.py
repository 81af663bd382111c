"""Tests of the stand-in OpenAI/DashScope-compatible server and its fault-injecting test subclass.

They talk to a real server over real sockets, with the real ``openai`` SDK and with ``http.client``.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import signal
import struct
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest

from flink_ml_predict.standin import StandInServer, default_responder, embedding_vector
from tests.fakes.openai_server import Fault, FaultInjectingServer, request_key

_LOGGER = logging.getLogger(__name__)

API_KEY = "sk-stand-in-test"
LABEL_PROMPT = (
    "Classify the text below into one of the following labels: "
    "[positive, negative, neutral, mixed]. Output only the label."
)
MASK_PROMPT = "把用户文本中的身份证号码的后四位替换为 ****,其余内容原样输出。"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server() -> Iterator[FaultInjectingServer]:
    with FaultInjectingServer(api_key=API_KEY, slow_delay=5.0) as running:
        yield running


@pytest.fixture
def client(server: FaultInjectingServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=10.0
    ) as sdk:
        yield sdk


def _chat(client: openai.OpenAI, user: str, system: str | None = None, **kwargs: Any) -> Any:
    messages: list[Any] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": user})
    return client.chat.completions.create(model="qwen-plus", messages=messages, **kwargs)


def _raw(
    server: StandInServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    key: str | None = API_KEY,
    raw_body: bytes | None = None,
    connection: http.client.HTTPConnection | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request with http.client; returns (status, lower-case headers, body)."""
    conn = connection or http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    payload = (
        raw_body if raw_body is not None else (None if body is None else json.dumps(body).encode())
    )
    try:
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        if connection is None:
            conn.close()


def _chat_body(user: str, **extra: Any) -> dict[str, Any]:
    return {"model": "qwen-plus", "messages": [{"role": "user", "content": user}], **extra}


# ---- chat completions -----------------------------------------------------------------------


def test_chat_completion_with_n_2_has_openai_shape(
    server: FaultInjectingServer, client: openai.OpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}], n=2
    )
    assert raw.headers["x-stand-in"] == "true"
    uuid.UUID(raw.headers["x-request-id"])
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4o-mini"
    assert [c.index for c in completion.choices] == [0, 1]
    assert [c.message.content for c in completion.choices] == ["hello there", "hello there #2"]
    assert {c.finish_reason for c in completion.choices} == {"stop"}
    assert completion.usage is not None
    usage = completion.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0


def test_chat_completion_wire_format_exactly(server: FaultInjectingServer) -> None:
    status, headers, data = _raw(server, "POST", "/v1/chat/completions", _chat_body("echo me"))
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    payload = json.loads(data)
    assert set(payload) == {
        "id",
        "object",
        "created",
        "model",
        "choices",
        "usage",
        "system_fingerprint",
    }
    assert isinstance(payload["created"], int)
    assert payload["system_fingerprint"] is None
    assert payload["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "echo me"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    assert set(payload["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("最爱小孩子猜声音那段,算得上看过的电影里相当浪漫的叙事了。很温和也很有爱。", "positive"),
        ("乏善可陳", "negative"),
        ("乏善可陈", "negative"),
        ("The plot was boring and the acting bad.", "negative"),
        ("A film about a train.", "neutral"),
    ],
)
def test_label_responder(client: openai.OpenAI, text: str, label: str) -> None:
    completion = _chat(client, text, system=LABEL_PROMPT)
    assert completion.choices[0].message.content == label


def test_label_responder_falls_back_to_first_label() -> None:
    body = _chat_body("nothing to see")
    body["messages"].insert(
        0, {"role": "system", "content": "Classify into one label: [spam, ham]"}
    )
    assert default_responder(body) == "spam"


def test_id_number_masking(client: openai.OpenAI) -> None:
    completion = _chat(client, "我的名字叫 码界探索: 412721199803134419.", system=MASK_PROMPT)
    assert completion.choices[0].message.content == "我的名字叫 码界探索: 41272119980313****."
    completion = _chat(client, "a 11010519491231002X b 12345", system=MASK_PROMPT)
    assert completion.choices[0].message.content == "a 11010519491231**** b 12345"


def test_echo_without_special_system_prompt(client: openai.OpenAI) -> None:
    assert (
        _chat(client, "just echo", system="You are helpful.").choices[0].message.content
        == "just echo"
    )


def test_custom_responder() -> None:
    with (
        StandInServer(responder=lambda body: body["model"].upper()) as running,
        openai.OpenAI(base_url=running.base_url, api_key="any", max_retries=0) as sdk,
    ):
        assert _chat(sdk, "x").choices[0].message.content == "QWEN-PLUS"


def test_dashscope_base_url_and_keep_alive(server: FaultInjectingServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for text in ("one", "two", "three"):
            status, _, data = _raw(
                server,
                "POST",
                "/compatible-mode/v1/chat/completions",
                _chat_body(text),
                connection=conn,
            )
            assert status == 200
            assert json.loads(data)["choices"][0]["message"]["content"] == text
    finally:
        conn.close()
    assert server.wait_idle()
    assert len(server.completed_requests("/chat/completions")) == 3


def test_streaming(client: openai.OpenAI, server: FaultInjectingServer) -> None:
    chunks = list(
        _chat(client, "streamed answer", n=2, stream=True, stream_options={"include_usage": True})
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    texts = ["", ""]
    finish = {}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finish[choice.index] = choice.finish_reason
    assert texts == ["streamed answer", "streamed answer #2"]
    assert finish == {0: "stop", 1: "stop"}
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert 2 <= len(content_chunks) <= 3
    assert chunks[-1].choices == [] and chunks[-1].usage is not None

    status, headers, data = _raw(
        server, "POST", "/v1/chat/completions", _chat_body("hi there", stream=True)
    )
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    events = [line for line in data.decode().split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[-2].removeprefix("data: "))["choices"][0]["finish_reason"] == "stop"


# ---- embeddings -----------------------------------------------------------------------------


def test_embeddings_float_and_base64_agree(
    server: FaultInjectingServer, client: openai.OpenAI
) -> None:
    as_base64 = client.embeddings.create(
        model="text-embedding-v3", input=["alpha", "beta"]
    )  # SDK asks base64
    as_float = client.embeddings.create(
        model="text-embedding-v3", input=["alpha", "beta"], encoding_format="float"
    )
    assert [d.embedding for d in as_base64.data] == [d.embedding for d in as_float.data]
    assert as_float.data[0].embedding == embedding_vector("alpha", 8)
    assert as_float.data[0].embedding != as_float.data[1].embedding
    assert all(-1.0 <= v <= 1.0 for d in as_float.data for v in d.embedding)
    assert as_float.object == "list" and as_float.model == "text-embedding-v3"
    assert as_float.usage.total_tokens == as_float.usage.prompt_tokens > 0
    assert server.wait_idle()
    assert [r.body["encoding_format"] for r in server.completed_requests("/embeddings")] == [
        "base64",
        "float",
    ]

    status, _, data = _raw(
        server,
        "POST",
        "/v1/embeddings",
        {"model": "m", "input": "alpha", "encoding_format": "base64"},
    )
    assert status == 200
    encoded = json.loads(data)["data"][0]["embedding"]
    assert isinstance(encoded, str)
    assert list(struct.unpack("<8f", base64.b64decode(encoded))) == embedding_vector("alpha", 8)


def test_embeddings_dimensions(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="text-embedding-3-small", input="gamma", dimensions=5)
    assert len(result.data) == 1
    assert len(result.data[0].embedding) == 5
    assert result.data[0].embedding == embedding_vector("gamma", 5)


def test_dashscope_embedding_batch_cap(server: FaultInjectingServer) -> None:
    with openai.OpenAI(base_url=server.dashscope_base_url, api_key=API_KEY, max_retries=0) as sdk:
        assert (
            len(
                sdk.embeddings.create(
                    model="text-embedding-v3", input=[f"t{i}" for i in range(10)]
                ).data
            )
            == 10
        )
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.embeddings.create(model="text-embedding-v3", input=[f"t{i}" for i in range(11)])
    assert caught.value.code == "InvalidParameter"
    assert "batch size is invalid, it should not be larger than 10" in caught.value.message
    with openai.OpenAI(
        base_url=server.base_url, api_key=API_KEY, max_retries=0
    ) as sdk:  # no cap on /v1
        assert len(sdk.embeddings.create(model="m", input=[f"t{i}" for i in range(11)]).data) == 11


# ---- errors ---------------------------------------------------------------------------------


def test_wrong_api_key_is_401(server: FaultInjectingServer) -> None:
    with (
        openai.OpenAI(base_url=server.base_url, api_key="sk-wrong", max_retries=0) as sdk,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        _chat(sdk, "hi")
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    status, _, data = _raw(server, "POST", "/v1/embeddings", {"model": "m", "input": "x"}, key=None)
    assert status == 401
    assert json.loads(data) == {
        "error": {
            "message": "Incorrect API key provided.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }


def test_bad_requests_and_unknown_routes(server: FaultInjectingServer) -> None:
    cases = [
        ("POST", "/v1/chat/completions", b"{not json", 400),
        (
            "POST",
            "/v1/chat/completions",
            json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(),
            400,
        ),
        ("POST", "/v1/chat/completions", json.dumps({"model": "m"}).encode(), 400),
        ("POST", "/v1/embeddings", json.dumps({"model": "m"}).encode(), 400),
        ("POST", "/v1/embeddings", json.dumps({"input": "x"}).encode(), 400),
        ("POST", "/v1/completions", b"{}", 404),
        ("GET", "/v1/chat/completions", None, 404),
        ("DELETE", "/v1/models", None, 404),
    ]
    for method, path, raw_body, expected in cases:
        status, headers, data = _raw(server, method, path, raw_body=raw_body)
        assert status == expected, (method, path, raw_body)
        assert headers["x-stand-in"] == "true"
        error = json.loads(data)["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == "invalid_request_error"


def test_models_list(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert "qwen-plus" in ids and "text-embedding-v3" in ids


# ---- concurrency ----------------------------------------------------------------------------


def test_max_in_flight_counts_concurrent_requests(
    server: FaultInjectingServer, client: openai.OpenAI
) -> None:
    all_arrived = threading.Event()

    def gated(body: dict[str, Any]) -> str:
        # Hold every answer until all 20 requests are in flight at once. This makes the overlap
        # certain on a loaded machine (0.2 s of latency alone would not); a server that handled
        # requests one at a time would never open the gate and the test would fail below.
        if server.in_flight >= 20:
            all_arrived.set()
        all_arrived.wait(timeout=10)
        return default_responder(body)

    server.responder = gated
    server.latency = 0.2
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(
            pool.map(lambda i: _chat(client, f"q{i}").choices[0].message.content, range(20))
        )
    assert all_arrived.is_set(), (
        f"only {server.max_in_flight} requests were ever in flight together"
    )
    assert answers == [f"q{i}" for i in range(20)]
    assert server.wait_idle()
    assert server.max_in_flight == 20
    assert server.in_flight == 0
    assert len(server.completed_requests("/chat/completions")) == 20
    server.reset()
    assert server.max_in_flight == 0 and server.requests == []


def test_200_concurrent_keep_alive_connections(server: FaultInjectingServer) -> None:
    connections = [
        http.client.HTTPConnection("127.0.0.1", server.port, timeout=10) for _ in range(200)
    ]
    try:
        body = json.dumps({"model": "m", "input": "x"}).encode()
        headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
        for _ in range(2):  # the second round reuses every connection
            for conn in connections:
                conn.request("POST", "/v1/embeddings", body=body, headers=headers)
            for conn in connections:
                response = conn.getresponse()
                assert response.status == 200
                response.read()
        assert server.wait_idle()
        assert server.max_in_flight <= 200
        assert len(server.completed_requests("/v1/embeddings")) == 400
    finally:
        for conn in connections:
            conn.close()


# ---- faults through the SDK -----------------------------------------------------------------


def test_status_faults(server: FaultInjectingServer, client: openai.OpenAI) -> None:
    server.script(
        "k",
        [
            Fault.status_code(429, retry_after="1"),
            Fault.status_code(429, retry_after_ms="250"),
            Fault.status_code(500),
            Fault.status_code(502),
            Fault.status_code(503, code="ServiceUnavailable"),
        ],
    )
    with pytest.raises(openai.RateLimitError) as limited:
        _chat(client, "k")
    assert limited.value.response.headers["retry-after"] == "1"
    assert limited.value.type == "rate_limit_error"
    assert limited.value.code == "Throttling.RateQuota"
    with pytest.raises(openai.RateLimitError) as limited_ms:
        _chat(client, "k")
    assert limited_ms.value.response.headers["retry-after-ms"] == "250"
    for expected in (500, 502, 503):
        with pytest.raises(openai.InternalServerError) as failed:
            _chat(client, "k")
        assert failed.value.status_code == expected
        assert failed.value.type == "server_error"
    assert failed.value.code == "ServiceUnavailable"
    assert _chat(client, "k").choices[0].message.content == "k"
    assert server.wait_idle()
    assert [(r.status, r.outcome) for r in server.requests] == [
        (429, "status:429"),
        (429, "status:429"),
        (500, "status:500"),
        (502, "status:502"),
        (503, "status:503"),
        (200, "ok"),
    ]


def test_reset_fault_is_a_connection_error(
    server: FaultInjectingServer, client: openai.OpenAI
) -> None:
    server.script("k", [Fault.reset()])
    with pytest.raises(openai.APIConnectionError):
        _chat(client, "k")
    assert (
        _chat(client, "k").choices[0].message.content == "k"
    )  # the client recovers on a new connection
    assert server.wait_idle()
    first = server.requests[0]
    assert (first.status, first.outcome) == (None, "reset")
    server.script("e", [Fault.reset()])
    with pytest.raises(openai.APIConnectionError):
        client.embeddings.create(model="m", input="e")


def test_malformed_json_fault(server: FaultInjectingServer, client: openai.OpenAI) -> None:
    server.script("k", [Fault.malformed_json()])
    # The SDK does not wrap the decode error of a 200 response: a bare json.JSONDecodeError escapes.
    with pytest.raises(json.JSONDecodeError):
        _chat(client, "k")
    server.script("k", [Fault.malformed_json()])
    with pytest.raises(json.JSONDecodeError):
        list(_chat(client, "k", stream=True))
    server.script("k", [Fault.malformed_json()])
    status, headers, data = _raw(server, "POST", "/v1/embeddings", {"model": "m", "input": "k"})
    assert status == 200 and headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(data)
    assert server.wait_idle()
    assert server.fault_counts() == {"malformed-json": 3}


def test_wrong_content_type_fault_returns_text(
    server: FaultInjectingServer, client: openai.OpenAI
) -> None:
    server.script("k", [Fault.wrong_content_type()])
    # Without strict validation the SDK hands back the HTML body as a plain str.
    result = _chat(client, "k")
    assert isinstance(result, str)
    assert result.startswith("<!DOCTYPE html>")
    strict = openai.OpenAI(
        base_url=server.base_url, api_key=API_KEY, max_retries=0, _strict_response_validation=True
    )
    server.script("k", [Fault.wrong_content_type()])
    with strict, pytest.raises(openai.APIResponseValidationError):
        _chat(strict, "k")


def test_empty_choices_fault(server: FaultInjectingServer, client: openai.OpenAI) -> None:
    server.script("k", [Fault.empty_choices(), Fault.empty_choices()])
    assert _chat(client, "k").choices == []
    assert [c.choices for c in _chat(client, "k", stream=True)] == [[]]
    server.script("e", [Fault.empty_choices()])
    with pytest.raises(
        ValueError, match="No embedding data"
    ):  # the SDK's base64 post-parser refuses it
        client.embeddings.create(model="m", input="e")
    server.script("e", [Fault.empty_choices()])
    assert client.embeddings.create(model="m", input="e", encoding_format="float").data == []


def test_stream_cut_fault(server: FaultInjectingServer, client: openai.OpenAI) -> None:
    server.script("k", [Fault.stream_cut(), Fault.stream_cut()])
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in _chat(client, "k", stream=True):
            received.append(chunk)
    assert len(received) == 2
    with pytest.raises(openai.APIConnectionError):  # not a stream: behaves like reset
        _chat(client, "k")
    assert server.wait_idle()
    records = server.requests
    assert [(r.status, r.outcome) for r in records] == [
        (None, "stream-cut"),
        (None, "stream-cut"),
    ], records


def test_slow_fault_times_out_the_client(server: FaultInjectingServer) -> None:
    server.script("k", [Fault.slow(5.0), Fault.slow(0.05)])
    with openai.OpenAI(
        base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=0.3
    ) as sdk:
        with pytest.raises(openai.APITimeoutError):
            _chat(sdk, "k")
        assert _chat(sdk, "k").choices[0].message.content == "k"
    # stop() must not wait for the handler still sleeping out its 5 s (see this test's runtime)


# ---- scripts, always-faults, random faults --------------------------------------------------


def test_script_applies_in_order_only_to_its_key(
    server: FaultInjectingServer, client: openai.OpenAI
) -> None:
    server.script("a", [Fault.status_code(429), None, Fault.status_code(500)])
    outcomes = []
    for user in ("b", "a", "b", "a", "a", "b", "a"):
        try:
            outcomes.append((user, _chat(client, user).choices[0].message.content))
        except openai.APIStatusError as error:
            outcomes.append((user, error.status_code))
    assert outcomes == [
        ("b", "b"),
        ("a", 429),
        ("b", "b"),
        ("a", "a"),
        ("a", 500),
        ("b", "b"),
        ("a", "a"),
    ]


def test_script_is_exact_under_concurrency(
    server: FaultInjectingServer, client: openai.OpenAI
) -> None:
    server.script("hot", [Fault.status_code(503)] * 7)

    def call(_: int) -> int:
        try:
            _chat(client, "hot")
        except openai.APIStatusError as error:
            return error.status_code
        return 200

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(call, range(30)))
    assert statuses.count(503) == 7 and statuses.count(200) == 23
    assert server.wait_idle()
    assert server.fault_counts() == {"status:503": 7, "ok": 23}


def test_fail_always(server: FaultInjectingServer, client: openai.OpenAI) -> None:
    server.fail_always("bad", Fault.status_code(502))
    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            _chat(client, "bad")
    assert _chat(client, "good").choices[0].message.content == "good"
    server.clear_faults()
    assert _chat(client, "bad").choices[0].message.content == "bad"


def test_random_faults_are_reproducible(server: FaultInjectingServer) -> None:
    rates = {
        "429": 0.15,
        "429-retry-after": 0.1,
        "500": 0.1,
        "502": 0.05,
        "503": 0.05,
        "malformed-json": 0.05,
    }

    def run() -> list[tuple[int | None, str]]:
        server.reset()
        server.set_random_faults(seed=1234, rates=rates)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            for i in range(60):
                _raw(server, "POST", "/v1/chat/completions", _chat_body(f"r{i}"), connection=conn)
        finally:
            conn.close()
        assert server.wait_idle()
        return [(r.status, r.outcome) for r in server.requests]

    first = run()
    assert first == run()
    outcomes = {outcome for _, outcome in first}
    assert "ok" in outcomes and "status:429" in outcomes and len(outcomes) >= 4
    with pytest.raises(ValueError):
        server.set_random_faults(seed=1, rates={"418-teapot": 0.1})
    with pytest.raises(ValueError):
        server.set_random_faults(seed=1, rates={"500": 0.7, "502": 0.7})


def test_random_timeout_uses_slow_delay(server: FaultInjectingServer) -> None:
    server.slow_delay = 0.01
    server.set_random_faults(seed=5, rates={"timeout": 1.0})
    status, _, _ = _raw(server, "POST", "/v1/chat/completions", _chat_body("t"))
    assert status == 200
    assert server.wait_idle()
    assert server.fault_counts() == {"slow": 1}


def test_fault_validation_and_request_key() -> None:
    with pytest.raises(ValueError):
        Fault("explode")
    with pytest.raises(ValueError):
        Fault.status_code(200)
    assert request_key(_chat_body("x")) == "x"
    assert request_key({"model": "m", "input": "y"}) == "y"
    assert request_key({"model": "m", "input": ["y", "z"]}) is None


# ---- the command line -----------------------------------------------------------------------


def test_main_serves_until_interrupted() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "flink_ml_predict.standin", "--port", "0", "--api-key", "k"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "STAND-IN" in line and "NOT a real model" in line
        url = line.split(" on ", 1)[1].split(" ", 1)[0]
        with openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as sdk:
            assert _chat(sdk, "cli").choices[0].message.content == "cli"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
