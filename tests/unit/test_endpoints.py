"""An 'endpoint' ending in the path of an API the package does not call is refused when the model
is created, with the URL to use; an HTTP error names the URL that was called (never the key)."""

from __future__ import annotations

import asyncio

import pytest

from flink_ml_predict.definition import build_spec
from flink_ml_predict.errors import (
    ModelDefinitionError,
    PermanentModelCallError,
    RetryableModelCallError,
)
from flink_ml_predict.model import Column
from flink_ml_predict.runtime.client import AsyncModelClient
from tests.conftest import TEST_KEY
from tests.fakes.openai_server import Fault, FaultInjectingServer


def spec(endpoint: str, output: str = "STRING"):
    return build_spec("m", {"provider": "openai", "endpoint": endpoint, "api-key": TEST_KEY,
                            "model": "gpt-4o-mini"},
                      [Column("input", "STRING")], [Column("content", output)],
                      where="statement 1 (line 1)")


@pytest.mark.parametrize("endpoint, says, use", [
    ("https://api.openai.com/v1/completions", "ends in /completions, OpenAI's legacy Completions "
     "API", "give the base URL https://api.openai.com/v1 or"),
    ("https://api.openai.com/v1/responses", "ends in /responses, OpenAI's Responses API",
     "https://api.openai.com/v1/chat/completions"),
    ("https://api.openai.com/v1/audio/transcriptions", "ends in /audio/transcriptions, OpenAI's "
     "Audio API", "give the base URL https://api.openai.com/v1 or"),
    ("https://api.openai.com/v1/images/generations/", "ends in /images/generations, OpenAI's "
     "Images API", "https://api.openai.com/v1"),
    ("https://api.openai.com/v1/files", "ends in /files, the Files API", "https://api.openai.com/v1"),
    ("http://127.0.0.1:8000/v1/models", "ends in /models, the model list API",
     "http://127.0.0.1:8000/v1/chat/completions"),
    ("https://dashscope.aliyuncs.com/compatible-mode/v1/models/qwen-plus",
     "ends in /models/qwen-plus", "give the base URL https://dashscope.aliyuncs.com/"
     "compatible-mode/v1 or"),
    ("https://dashscope.aliyuncs.com/api/v1/services/aigc/text-generation/generation",
     "is DashScope's native API", "give the OpenAI-compatible endpoint "
     "https://dashscope.aliyuncs.com/compatible-mode/v1 (or"),
    ("https://dashscope-intl.aliyuncs.com/api/v1/apps/abc123/completion",
     "is DashScope's native API", "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"),
    ("http://localhost:11434/api/embeddings", "is Ollama's native API",
     "http://localhost:11434/v1 (or"),
])
def test_endpoints_of_apis_we_do_not_call_are_refused(endpoint: str, says: str, use: str) -> None:
    with pytest.raises(ModelDefinitionError) as raised:
        spec(endpoint)
    message = str(raised.value)
    assert message.startswith(f"statement 1 (line 1): CREATE MODEL m: option 'endpoint': "
                              f"'{endpoint}' {says}"), message
    assert "which flink_ml_predict does not call" in message and use in message, message


@pytest.mark.parametrize("endpoint, base", [
    ("https://api.openai.com/v1/chat/completions", "https://api.openai.com/v1"),
    ("https://api.openai.com/v1/embeddings", "https://api.openai.com/v1"),
    ("https://dashscope.aliyuncs.com/compatible-mode/v1", "https://dashscope.aliyuncs.com/"
     "compatible-mode/v1"),
    ("http://localhost:11434/v1", "http://localhost:11434/v1"),
    # Azure AI model inference: '/models' is the base URL itself, not a path after one.
    ("https://res.services.ai.azure.com/models", "https://res.services.ai.azure.com/models"),
    ("https://res.services.ai.azure.com/models/chat/completions",
     "https://res.services.ai.azure.com/models"),
])
def test_base_urls_and_the_two_api_paths_are_accepted(endpoint: str, base: str) -> None:
    output = "ARRAY<FLOAT>" if endpoint.endswith("/embeddings") else "STRING"
    assert spec(endpoint, output).base_url == base


def test_an_http_error_names_the_url_called_and_never_the_key() -> None:
    with FaultInjectingServer(api_key=TEST_KEY) as server:
        server.fail_always("text", Fault.status_code(404))

        async def call() -> None:
            client = AsyncModelClient(spec(f"{server.base_url}/chat/completions"))
            try:
                await client.chat([{"role": "user", "content": "text"}], 5.0)
            finally:
                await client.aclose()

        with pytest.raises(PermanentModelCallError) as raised:
            asyncio.run(call())
    error = raised.value
    assert str(error).startswith("HTTP 404: "), error
    assert error.url == f"POST {server.base_url}/chat/completions"
    assert error.described() == f"{error} (POST {server.base_url}/chat/completions)"
    assert TEST_KEY not in error.described() and error.status == 404


def test_a_connection_error_names_the_url_called() -> None:
    async def call() -> None:
        client = AsyncModelClient(spec("http://127.0.0.1:9/v1"))
        try:
            await client.chat([{"role": "user", "content": "text"}], 5.0)
        finally:
            await client.aclose()

    with pytest.raises(RetryableModelCallError) as raised:
        asyncio.run(call())
    message = raised.value.described()
    assert message.startswith("connection error"), message
    assert message.endswith(" (POST http://127.0.0.1:9/v1/chat/completions)"), message
