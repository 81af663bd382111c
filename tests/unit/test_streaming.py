"""Streamed answers ('stream' = 'true') through the real openai SDK against the real local server:
assembled before the row is emitted, usage and tool calls included; every way a stream can fail
to complete is retried under RETRY (the full answer comes out) and labelled under IGNORE (never a
partial answer). The server streams as seed 004 shows DashScope doing it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

from flink_ml_predict import ModelCallError
from flink_ml_predict.definition import build_spec
from flink_ml_predict.errors import PermanentModelCallError, RetryableModelCallError
from flink_ml_predict.model import CallSettings, Column
from flink_ml_predict.runtime.client import AsyncModelClient
from flink_ml_predict.runtime.predictor import Predictor
from flink_ml_predict.runtime.streaming import ChunkBody, StreamAssembler
from tests.conftest import METADATA_COLUMNS, model_options
from tests.fakes import streaming
from tests.fakes.openai_server import Fault
from tests.fakes.streaming import stream_fault
from tests.unit.test_predictor_failures import RecordedSleep

try:  # the httpx the installed openai SDK is built on
    import httpx2 as httpx
except ImportError:  # openai < 3
    import httpx  # type: ignore[no-redef]

USAGE = [Column("prompt-tokens", "INT"), Column("completion-tokens", "INT"),
         Column("total-tokens", "INT"), Column("finish-reason", "STRING"),
         Column("tool-calls", "STRING")]
ERRORS = [Column(name, type_) for name, type_ in METADATA_COLUMNS]
TOOLS = ('[{"type": "function", "function": {"name": "get_weather", "parameters": '
         '{"type": "object", "properties": {"query": {"type": "string"}}}}}]')


@pytest.fixture
def qwen(server):
    """The test server, streaming and answering tool calls as DashScope's compatible mode."""
    return streaming.install(server)


def predictor(server, outputs=None, timeout: float = 60.0, **options: str):
    spec = build_spec("m", model_options(server.dashscope_base_url, provider="qwen",
                                         model="qwen-plus", **options),
                      [Column("input", "STRING")], outputs or [Column("content", "STRING")])
    sleep = RecordedSleep()
    return Predictor(spec, CallSettings(timeout=timeout), sleep=sleep), sleep


def run(predictor: Predictor, *texts: str) -> list[Any]:
    async def go():
        try:
            return [await predictor.predict(text) for text in texts]
        finally:
            await predictor.aclose()
    return asyncio.run(go())


def test_streamed_answer_is_assembled_with_usage(qwen) -> None:
    streamed, _ = predictor(qwen, outputs=[Column("content", "STRING"), *USAGE], stream="true",
                            top_k="20")
    plain, _ = predictor(qwen, outputs=[Column("content", "STRING"), *USAGE])
    text = "一段足够长的回答,分成几块流式返回。"
    [rows] = run(streamed, text)
    assert run(plain, text) == [rows]  # the same row as the non-streamed answer
    # 18 characters ~ 5 tokens, system prompt 7: the demo's estimate (4 characters a token).
    assert rows == [(text, 12, 5, 17, "stop", None)]
    assert streamed.metrics.counts["tokens-in"] == 12
    assert streamed.metrics.counts["tokens-out"] == 5
    first = qwen.requests[0]
    assert first.body == {"model": "qwen-plus", "stream": True,
                          "stream_options": {"include_usage": True}, "top_k": 20,
                          "messages": [{"role": "system", "content": "You are a helpful assistant."},
                                       {"role": "user", "content": text}]}
    assert "stream" not in qwen.requests[1].body


def test_n_choices_stream_in_the_same_chunks(qwen) -> None:
    streamed, _ = predictor(qwen, stream="true", n="3")
    assert run(streamed, "abc") == [[("abc",), ("abc #2",), ("abc #3",)]]


def test_tool_calls_streamed_and_not_give_the_same_column(qwen) -> None:
    outputs = [Column("content", "STRING"), Column("finish-reason", "STRING"),
               Column("tool-calls", "STRING")]
    streamed, _ = predictor(qwen, outputs=outputs, stream="true", tools=TOOLS)
    plain, _ = predictor(qwen, outputs=outputs, tools=TOOLS)
    [[(content, finish, calls)]] = run(streamed, "北京天气")
    [[(_, _, plain_calls)]] = run(plain, "北京天气")
    assert (content, finish) == (None, "tool_calls")
    parsed = json.loads(calls)
    assert [(c["type"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in parsed] == [("function", "get_weather", {"query": "北京天气"})]
    assert parsed[0]["id"].startswith("call_")
    assert json.loads(plain_calls)[0]["function"] == parsed[0]["function"]
    assert qwen.requests[0].body["tools"] == json.loads(TOOLS)


@pytest.mark.parametrize("fault, message", [
    (Fault.stream_cut(), "stream cut after 2 chunks: connection error ("),
    (stream_fault("stream-no-done"), "stream cut: ended after 5 chunks without [DONE]"),
    (stream_fault("stream-bad-chunk"), "malformed stream chunk: not JSON: {"),
    (stream_fault("stream-unfinished"), "stream incomplete: choice 0 had no finish_reason"),
    (stream_fault("stream-stall"), "stream stalled: no chunk for 1s after 2 chunks "
                                   "(stream-idle-timeout)"),
    (Fault.malformed_json(), "malformed stream chunk: not JSON"),
    (Fault.status_code(503), "HTTP 503"),
])
def test_a_stream_that_does_not_complete_is_retried_then_labelled(qwen, fault, message) -> None:
    text = "完整的回答 in three pieces"
    qwen.script(text, [fault, None])
    retrying, sleep = predictor(qwen, stream="true", stream_idle_timeout="1s")
    assert run(retrying, text) == [[(text,)]]
    assert qwen.attempts(text) == 2 and len(sleep.delays) == 1
    assert retrying.metrics.counts["retries"] == 1
    qwen.script(text, [fault])
    ignoring, _ = predictor(qwen, outputs=ERRORS, stream="true", stream_idle_timeout="1s",
                            error_handling_strategy="IGNORE")
    [[(content, error, status, _)]] = run(ignoring, text)
    assert content is None and message in error
    assert qwen.attempts(text) == 3


def test_no_first_chunk_within_the_request_timeout(qwen) -> None:
    qwen.script("slow", [Fault.hang()])
    ignoring, _ = predictor(qwen, outputs=ERRORS, stream="true", request_timeout="1s",
                            error_handling_strategy="IGNORE")
    [[(content, error, _, _)]] = run(ignoring, "slow")
    assert content is None and error == "request timed out"


def test_a_failing_stream_under_failover_fails_the_row(qwen) -> None:
    qwen.script("x", [Fault.stream_cut()])
    failing, _ = predictor(qwen, stream="true", error_handling_strategy="FAILOVER")
    with pytest.raises(ModelCallError, match="stream cut after 2 chunks"):
        run(failing, "x")


# ---- the client on exact bytes (httpx's MockTransport) -----------------------------------------


def stream_over(body: bytes, content_type: str = "text/event-stream"):
    def handler(request: Any) -> Any:
        return httpx.Response(200, headers={"content-type": content_type}, content=body)

    async def go():
        spec = build_spec("m", model_options("http://127.0.0.1:9/compatible-mode/v1",
                                             provider="qwen", model="qwen-long", stream="true"),
                          [Column("input", "STRING")], [Column("content", "STRING")])
        http = openai.DefaultAsyncHttpxClient(transport=httpx.MockTransport(handler))
        client = AsyncModelClient(spec, http_client=http)
        try:
            return await client.chat([{"role": "user", "content": "q"}], 5.0)
        finally:
            await client.aclose()
    return asyncio.run(go())


SEED_004 = (  # the shape of seed 004's output, with DashScope's "null" finish reasons
    b'data: {"choices":[{"delta":{"content":"\\u6587\\u7ae0","role":"assistant"},'
    b'"finish_reason":"null","index":0,"logprobs":null}],"object":"chat.completion.chunk"}\n\n'
    b': a comment line\n'
    b'data: {"choices":[{"delta":{"content":"\\u4e3b\\u8981"},"finish_reason":"null","index":0}],'
    b'"object":"chat.completion.chunk"}\n\n'
    b'data: {"choices":[{"delta":{"content":""},"finish_reason":"stop","index":0}],'
    b'"object":"chat.completion.chunk"}\n\n'
    b'data: {"choices":[],"usage":{"prompt_tokens":3019,"completion_tokens":104,'
    b'"total_tokens":3123}}\n\n'
    b"data: [DONE]\n\n")


def test_seed_004_stream_shape() -> None:
    answer = stream_over(SEED_004)
    assert [(c.content, c.finish_reason, c.tool_calls) for c in answer.choices] == [
        ("文章主要", "stop", None)]
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens,
            answer.usage.total_tokens) == (3019, 104, 3123)


def test_a_json_answer_to_a_stream_request_is_read_as_json() -> None:
    body = {"choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}]}
    answer = stream_over(json.dumps(body).encode(), "application/json")
    assert answer.choices[0].content == "ok"


def test_an_html_page_is_a_malformed_response() -> None:
    with pytest.raises(RetryableModelCallError, match="malformed response: expected JSON, got "
                                                      "text/html: <html>"):
        stream_over(b"<html>login</html>", "text/html")


def test_an_error_event_fails_the_stream() -> None:
    body = (b'data: {"choices":[{"delta":{"content":"a"},"index":0}]}\n\n'
            b'data: {"error":{"message":"Input data may contain inappropriate content.",'
            b'"code":"data_inspection_failed"}}\n\n')
    with pytest.raises(PermanentModelCallError, match="stream failed after 1 chunks: APIError: "
                                                      "Input data may contain inappropriate"):
        stream_over(body)


def test_a_chunk_of_the_wrong_shape_is_malformed() -> None:
    with pytest.raises(RetryableModelCallError, match="malformed stream chunk: choices: Field "
                                                      "required"):
        stream_over(b'data: {"object":"chat.completion.chunk"}\n\ndata: [DONE]\n\n')


def test_tool_call_deltas_merge_as_the_sdk_accumulates_them() -> None:
    assembler = StreamAssembler()
    for chunk in (
        {"choices": [{"index": 0, "delta": {"content": "", "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": '}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "", "type": "function", "function": {"arguments": '"杭州"}'}},
            {"index": 1, "id": "call_2", "type": "function",
             "function": {"name": "get_time", "arguments": "{}"}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ):
        assembler.add(ChunkBody.model_validate(chunk))
    [choice] = assembler.answer().choices
    assert choice.content is None and choice.finish_reason == "tool_calls"
    assert json.loads(choice.tool_calls or "") == [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "杭州"}'}},
        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]
