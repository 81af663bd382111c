"""What the HTTP client makes of failures: a provider's bad response is a retryable "malformed
response" saying what arrived; a bug in our own code is not mapped at all (it fails the job with
its traceback and is never retried).

The real openai SDK throughout: over httpx's MockTransport where a test needs an exact body, and
against the real local server (tests/fakes) end to end."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import openai
import pydantic
import pytest

from flink_ml_predict.definition import build_spec
from flink_ml_predict.errors import (
    ModelCallError,
    PermanentModelCallError,
    RetryableModelCallError,
)
from flink_ml_predict.model import Column
from flink_ml_predict.runtime import client as client_module
from flink_ml_predict.runtime import responses as responses_module
from flink_ml_predict.runtime.client import AsyncModelClient, map_exception
from tests.conftest import TEST_KEY
from tests.fakes.openai_server import Fault
from tests.unit.test_predictor_failures import make_predictor, predict

try:  # the httpx the installed openai SDK is built on
    import httpx2 as httpx
except ImportError:  # openai < 3
    import httpx  # type: ignore[no-redef]

HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>Gateway login</title></head>\n<body><form "
             b"action='/login'><input name='user'></form></body></html>")
CHAT_OK = {"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "positive"},
                        "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8}}


def spec(endpoint: str = "http://127.0.0.1:9/v1", outputs: list[Column] | None = None):
    return build_spec("m", {"provider": "openai", "endpoint": endpoint, "api-key": TEST_KEY,
                            "model": "gpt-4o-mini"},
                      [Column("input", "STRING")], outputs or [Column("content", "STRING")])


def answering(status: int, content_type: str | None, body: bytes) -> Callable[..., Any]:
    """A MockTransport handler that answers every request with this response."""
    def handler(request: Any) -> Any:
        headers = {"content-type": content_type} if content_type else {}
        return httpx.Response(status, headers=headers, content=body)
    return handler


def chat_over(handler: Callable[..., Any], model_spec: Any = None):
    """Runs one chat call of a client whose HTTP goes to `handler`."""
    async def run():
        http = openai.DefaultAsyncHttpxClient(transport=httpx.MockTransport(handler))
        client = AsyncModelClient(model_spec or spec(), http_client=http)
        try:
            return await client.chat([{"role": "user", "content": "text"}], 5.0)
        finally:
            await client.aclose()
    return asyncio.run(run())


def embed_over(handler: Callable[..., Any], texts: list[str]):
    async def run():
        http = openai.DefaultAsyncHttpxClient(transport=httpx.MockTransport(handler))
        client = AsyncModelClient(spec(outputs=[Column("embedding", "ARRAY<FLOAT>")]),
                                  http_client=http)
        try:
            return await client.embed(texts, 5.0)
        finally:
            await client.aclose()
    return asyncio.run(run())


# --- a provider's response that is not what it should be ----------------------------------------


def test_html_page_with_status_200_says_what_arrived() -> None:
    with pytest.raises(RetryableModelCallError) as caught:
        chat_over(answering(200, "text/html; charset=utf-8", HTML_PAGE))
    assert str(caught.value) == (
        "malformed response: expected JSON, got text/html; charset=utf-8: <!DOCTYPE html> "
        "<html><head><title>Gateway login</title></head> <body><form acti")
    assert caught.value.status is None  # the metadata column carries error statuses only
    assert "AttributeError" not in str(caught.value)


def test_body_without_content_type() -> None:
    with pytest.raises(RetryableModelCallError,
                       match="^malformed response: expected JSON, got no content type: Service "
                             "unavailable$"):
        chat_over(answering(200, None, b"Service unavailable"))


def test_truncated_json() -> None:
    body = json.dumps(CHAT_OK).encode()[:40]
    with pytest.raises(RetryableModelCallError, match="^malformed response: expected JSON, got "
                                                      'application/json: {"id": "c1"'):
        chat_over(answering(200, "application/json", body))


def test_bytes_that_are_not_utf8() -> None:
    with pytest.raises(RetryableModelCallError,
                       match="^malformed response: expected JSON, got text/plain: \ufffd\ufffdab$"):
        chat_over(answering(200, "text/plain", b"\xff\xfeab"))


def test_json_of_the_wrong_shape_names_the_field() -> None:
    broken = dict(CHAT_OK, choices=[{"index": 0, "finish_reason": "stop"}])
    with pytest.raises(RetryableModelCallError,
                       match="^malformed response: choices.0.message: Field required$"):
        chat_over(answering(200, "application/json", json.dumps(broken).encode()))
    with pytest.raises(RetryableModelCallError,
                       match="^malformed response: choices: Field required$"):
        chat_over(answering(200, "application/json", b'{"error": "busy"}'))
    with pytest.raises(RetryableModelCallError, match="^malformed response: body: "):
        chat_over(answering(200, "application/json", b'["positive"]'))


def test_json_with_another_content_type_is_read_as_the_sdk_reads_it() -> None:
    answer = chat_over(answering(200, "text/plain", json.dumps(CHAT_OK).encode()))
    assert [c.content for c in answer.choices] == ["positive"]
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (7, 1)


def test_the_key_echoed_in_a_bad_body_is_masked() -> None:
    with pytest.raises(RetryableModelCallError) as caught:
        chat_over(answering(200, "text/html", f"<p>bad key {TEST_KEY}</p>".encode()))
    assert TEST_KEY not in str(caught.value)
    assert "<p>bad key ******</p>" in str(caught.value)


def test_embeddings_of_the_wrong_shape() -> None:
    body = {"object": "list", "data": [{"index": 0, "embedding": "AAAA"}], "model": "e"}
    with pytest.raises(RetryableModelCallError,
                       match="^malformed response: data.0.embedding: Input should be a valid array$"):
        embed_over(answering(200, "application/json", json.dumps(body).encode()), ["a"])
    ok = {"object": "list", "model": "e", "usage": {"prompt_tokens": 2, "total_tokens": 2},
          "data": [{"index": 1, "embedding": [0.5, 1]}, {"index": 0, "embedding": [0.25, 2]}]}
    answer = embed_over(answering(200, "application/json", json.dumps(ok).encode()), ["a", "b"])
    assert answer.vectors == ([0.25, 2.0], [0.5, 1.0])
    assert answer.usage.prompt_tokens == 2


def test_html_page_from_the_real_server_is_retried_then_answered(server) -> None:
    server.script("a", [Fault.wrong_content_type(), None])
    predictor, sleep = make_predictor(server)
    assert predict(predictor, "a") == [("a",)]
    assert len(sleep.delays) == 1
    assert [r.outcome for r in server.requests] == ["wrong-content-type", "ok"]


def test_html_page_from_the_real_server_is_reported(server) -> None:
    server.fail_always("a", Fault.wrong_content_type())

    async def run():
        client = AsyncModelClient(spec(server.base_url))
        try:
            return await client.chat([{"role": "user", "content": "a"}], 5.0)
        finally:
            await client.aclose()

    with pytest.raises(RetryableModelCallError,
                       match="^malformed response: expected JSON, got text/html"):
        asyncio.run(run())


# --- a bug in our own code ----------------------------------------------------------------------


@pytest.mark.parametrize("bug", [KeyError("choices"), TypeError("unsupported operand"),
                                 AttributeError("'NoneType' object has no attribute 'x'")],
                         ids=lambda e: type(e).__name__)
def test_a_bug_of_ours_is_raised_as_itself(monkeypatch, bug: Exception) -> None:
    def broken(usage: Any) -> Any:
        raise bug

    monkeypatch.setattr(responses_module, "usage", broken)
    with pytest.raises(type(bug)) as caught:
        chat_over(answering(200, "application/json", json.dumps(CHAT_OK).encode()))
    assert caught.value is bug
    assert not isinstance(caught.value, ModelCallError)


def test_a_bug_of_ours_is_not_retried(monkeypatch, server) -> None:
    def broken(usage: Any) -> Any:
        raise KeyError("prompt_tokens")

    monkeypatch.setattr(responses_module, "usage", broken)
    predictor, sleep = make_predictor(server)
    with pytest.raises(KeyError, match="prompt_tokens"):
        predict(predictor, "a")
    assert sleep.delays == []
    assert len(server.requests) == 1


@pytest.mark.parametrize("exc", [KeyError("x"), TypeError("x"), AttributeError("x"),
                                 ValueError("x"), RuntimeError("x"), AssertionError("x")],
                         ids=lambda e: type(e).__name__)
def test_map_exception_leaves_other_exceptions_alone(exc: Exception) -> None:
    assert map_exception(exc, client_module._Scrubber(TEST_KEY)) is None


def test_map_exception_maps_decoding_failures_and_sdk_errors() -> None:
    scrub = client_module._Scrubber(TEST_KEY)
    decoding = json.JSONDecodeError("Expecting value", "<html>", 0)
    assert isinstance(map_exception(decoding, scrub), RetryableModelCallError)
    try:
        pydantic.TypeAdapter(int).validate_python("x")
    except pydantic.ValidationError as exc:
        validation = exc
    mapped = map_exception(validation, scrub)
    assert isinstance(mapped, RetryableModelCallError)
    assert str(mapped).startswith("malformed response (ValidationError: ")
    sdk = map_exception(openai.OpenAIError(f"bad key {TEST_KEY}"), scrub)
    assert isinstance(sdk, PermanentModelCallError)
    assert str(sdk) == "OpenAIError: bad key ******"
