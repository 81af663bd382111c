"""The client's own transport (the SDK's aiohttp client when installed) and its direct POST:
the request the server receives, and a refused connection reported as a connection error, not
as a timeout (the aiohttp transport raises httpx's ConnectTimeout for every connection error).

The real openai SDK against the real local server (tests/fakes) and a closed port."""

from __future__ import annotations

import asyncio

import pytest

from flink_ml_predict.definition import build_spec
from flink_ml_predict.errors import RetryableModelCallError
from flink_ml_predict.model import Column
from flink_ml_predict.runtime.client import AsyncModelClient
from tests.conftest import TEST_KEY, free_port


def spec(endpoint: str, provider: str = "openai", **options: str):
    return build_spec("m", {"provider": provider, "endpoint": endpoint, "api-key": TEST_KEY,
                            "model": "qwen-plus", **options},
                      [Column("input", "STRING")], [Column("content", "STRING")])


def test_the_request_carries_the_model_messages_body_and_extra_body(server) -> None:
    async def run():
        client = AsyncModelClient(spec(server.dashscope_base_url, "qwen", temperature="0.25",
                                       top_k="5"))
        try:
            return await client.chat([{"role": "user", "content": "héllo"}], 5.0)
        finally:
            await client.aclose()

    answer = asyncio.run(run())
    assert answer.choices[0].content == "héllo"
    [request] = server.requests
    assert request.path.endswith("/chat/completions")
    assert request.body["model"] == "qwen-plus"
    assert request.body["messages"] == [{"role": "user", "content": "héllo"}]
    assert request.body["temperature"] == 0.25
    assert request.body["top_k"] == 5  # a DashScope field: the SDK's extra_body
    assert request.headers["authorization"] == f"Bearer {TEST_KEY}"


def test_a_refused_connection_is_a_connection_error_not_a_timeout() -> None:
    async def run():
        client = AsyncModelClient(spec(f"http://127.0.0.1:{free_port()}/v1"))
        try:
            await client.chat([{"role": "user", "content": "x"}], 5.0)
        finally:
            await client.aclose()

    with pytest.raises(RetryableModelCallError) as raised:
        asyncio.run(run())
    assert str(raised.value).startswith("connection error (")
    assert "timed out" not in str(raised.value)
