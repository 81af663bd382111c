"""Tests of the tests' fake OpenAI/DashScope-compatible server (tests/fakes/): wire format, request
log, in-flight counts and the gate, faults.

They talk to a real server over real sockets, with the real ``openai`` SDK and with ``http.client``.
"""

from __future__ import annotations

import base64
import collections
import http.client
import json
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

from flink_ml_predict.demo_answers import embedding_vector
from tests.conftest import ROOT
from tests.fakes.openai_server import Fault, FaultInjectingServer, request_key
from tests.fakes.server import FakeServer

API_KEY = "sk-fake-server-test"
LABEL_PROMPT = ("Classify the text below into one of the following labels: "
                "[positive, negative, neutral, mixed]. Output only the label.")


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
    server: FakeServer,
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
    assert raw.headers["x-fake-server"] == "tests.fakes"
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


def test_default_answers_are_the_demos_rule_based_ones(client: openai.OpenAI) -> None:
    assert _chat(client, "乏善可陈", system=LABEL_PROMPT).choices[0].message.content == "negative"
    assert _chat(client, "just echo").choices[0].message.content == "just echo"


def test_custom_responder() -> None:
    with (
        FaultInjectingServer(responder=lambda body: body["model"].upper()) as running,
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
    requests = server.completed_requests("/chat/completions")
    assert len(requests) == 3
    assert len({r.connection for r in requests}) == 1  # one connection, kept alive


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
        assert headers["x-fake-server"] == "tests.fakes"
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
    # Every answer waits at the gate until all 20 requests are in flight together, so the overlap
    # is certain however loaded the machine is; a server that handled requests one at a time
    # would never reach 20 and the gate would time out (gate_expired) instead.
    server.hold(release_when=lambda state: state.in_flight >= 20, timeout=30)
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(
            pool.map(lambda i: _chat(client, f"q{i}").choices[0].message.content, range(20))
        )
    assert server.gate_expired == 0, f"only {server.max_in_flight} requests were in flight together"
    assert answers == [f"q{i}" for i in range(20)]
    assert server.wait_idle()
    assert server.max_in_flight == 20
    assert server.in_flight == 0
    assert len(server.completed_requests("/chat/completions")) == 20
    server.reset()
    assert server.max_in_flight == 0 and server.requests == []


def test_gate_holds_answers_until_released(server: FaultInjectingServer) -> None:
    statuses: queue.Queue[int] = queue.Queue()

    def call(i: int) -> None:
        statuses.put(_raw(server, "POST", "/v1/chat/completions", _chat_body(f"g{i}"))[0])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(3)]
    with server.gate():
        for thread in threads:
            thread.start()
        assert server.wait_for_held(3, timeout=30)
        assert (server.in_flight, server.tracker.held, statuses.qsize()) == (3, 3, 0)
        server.release(1)
        assert statuses.get(timeout=30) == 200  # exactly one answer went
        assert (server.in_flight, server.tracker.held, statuses.qsize()) == (2, 2, 0)
    for thread in threads:  # leaving the block opened the gate
        thread.join(timeout=30)
    assert [statuses.get_nowait() for _ in range(2)] == [200, 200]
    assert server.wait_idle()
    assert server.max_in_flight == 3 and server.gate_expired == 0


def test_gate_that_times_out_opens_for_good(server: FaultInjectingServer) -> None:
    server.hold(timeout=0.2)  # a rule that never comes true, in short
    started = time.monotonic()
    assert _raw(server, "POST", "/v1/chat/completions", _chat_body("late"))[0] == 200
    assert time.monotonic() - started >= 0.2
    assert server.gate_expired == 1
    assert _raw(server, "POST", "/v1/chat/completions", _chat_body("open"))[0] == 200
    assert server.gate_expired == 1  # the second answer was not held


def test_a_round_lingers_before_it_goes(server: FaultInjectingServer) -> None:
    server.hold(release_when=lambda state: state.in_flight >= 1, linger=0.3)
    started = time.monotonic()
    assert _raw(server, "POST", "/v1/chat/completions", _chat_body("r"))[0] == 200
    assert time.monotonic() - started >= 0.3
    assert server.gate_expired == 0


def test_200_concurrent_keep_alive_connections(server: FaultInjectingServer) -> None:
    connections = [
        http.client.HTTPConnection("127.0.0.1", server.port, timeout=30) for _ in range(200)
    ]
    # Each round's answers are held until all 200 requests are in flight together.
    server.hold(release_when=lambda state: state.in_flight >= 200, timeout=60)
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
        assert server.gate_expired == 0
        assert server.max_in_flight == 200
        requests = server.completed_requests("/v1/embeddings")
        assert len(requests) == 400
        per_connection = collections.Counter(r.connection for r in requests)
        assert len(per_connection) == 200 and set(per_connection.values()) == {2}
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


@pytest.mark.parametrize(("late", "ends_with_the_client"),
                         [(Fault.slow(30.0), False), (Fault.hang(), True)], ids=["slow", "hang"])
def test_a_late_or_no_answer_times_out_the_client(
    server: FaultInjectingServer, late: Fault, ends_with_the_client: bool
) -> None:
    server.script("k", [late, Fault.slow(0.05)])
    with openai.OpenAI(
        base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=0.3
    ) as sdk:
        with pytest.raises(openai.APITimeoutError):
            _chat(sdk, "k")
        assert _chat(sdk, "k").choices[0].message.content == "k"
    # A hung request ends when its client closes the connection; a slow one sleeps on (and
    # stop() must not wait for it: see this test's runtime).
    assert server.wait_idle(timeout=10 if ends_with_the_client else 0) is ends_with_the_client
    assert [(r.status, r.outcome) for r in server.requests] == [(None, late.name), (200, "slow")]


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


# ---- the command line (for benchmarks) --------------------------------------------------------


def test_command_line_server_answers_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", "--port", "0", "--latency", "0.01"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split(" on ", 1)[1].strip()
        with openai.OpenAI(base_url=url + "/v1", api_key="any", max_retries=0) as sdk:
            assert _chat(sdk, "cli").choices[0].message.content == "cli"
        with urllib.request.urlopen(url + "/_stats", timeout=10) as response:
            stats = json.load(response)
        assert (stats["requests"], stats["completed"], stats["max_in_flight"]) == (1, 1, 1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
