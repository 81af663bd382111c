"""The one HTTP client of every provider: the ``openai`` SDK's async client, SDK retries off.

Sends a row's request, reads the raw response (:mod:`.responses`), and turns SDK exceptions into
:mod:`flink_ml_predict.errors` (the only place that knows the SDK's exception classes). An
exception of our own code (a KeyError, TypeError, AttributeError...) is not mapped at all: it
fails the job with its traceback instead of being retried.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from typing import Any

import openai
import pydantic

from ..errors import ModelCallError, PermanentModelCallError, RetryableModelCallError
from ..model import ModelSpec
from ..options import OutputFormat
from .responses import ChatAnswer, ChatBody, EmbeddingAnswer, EmbeddingBody, decode_body
from .streaming import read_chat_stream

_LOGGER = logging.getLogger(__name__)

# What can succeed when sent again (as openai-python's own _should_retry decides).
RETRYABLE_STATUS = frozenset({408, 409, 429})
MIN_CONNECT_TIMEOUT_S = 10.0


def _retry_after_seconds(headers: Any) -> float | None:
    """Server-directed delay from retry-after-ms or Retry-After (seconds or HTTP date)."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(float(value) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(parsed.timestamp() - time.time(), 0.0) if parsed else None


class _Scrubber:
    """Removes the api-key from any text that may reach a message, a log or a metadata column."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def __call__(self, text: str) -> str:
        return text.replace(self._secret, "******") if self._secret else text


def _headers_map(headers: Any, scrub: _Scrubber) -> dict[str, list[str]]:
    """Response headers for the http-headers-map column: lower-case names, the api-key scrubbed
    from names and values (a server may echo the Authorization header back)."""
    result: dict[str, list[str]] = {}
    if headers is None:
        return result
    for key, value in headers.multi_items():
        result.setdefault(scrub(key.lower()), []).append(scrub(value))
    return result


def called(exc: openai.APIError, scrub: _Scrubber) -> str | None:
    """'POST http://host/v1/chat/completions': what the failed request called, without user
    info or query string (the parts of a URL that may carry a credential)."""
    try:
        request = exc.request
        url = request.url
    except (AttributeError, RuntimeError):  # httpx raises RuntimeError for a missing request
        return None
    host = f"[{url.host}]" if ":" in url.host else url.host
    port = f":{url.port}" if url.port is not None else ""
    return scrub(f"{request.method} {url.scheme}://{host}{port}{url.path}")


def _status_error_message(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else None
    detail = body.get("error", body) if body else None
    if isinstance(detail, dict):
        parts = [str(detail[k]) for k in ("code", "message") if detail.get(k)]
        text = ": ".join(parts) if parts else json.dumps(detail, ensure_ascii=False)
    else:
        text = exc.message
    return f"HTTP {exc.status_code}: {text}"


def map_exception(exc: BaseException, scrub: _Scrubber) -> ModelCallError | None:
    """Converts an exception from the SDK (or from decoding its response) to our hierarchy.

    Returns:
        The error to raise instead, or None when ``exc`` is neither the SDK's nor a decoding
        failure: a bug of ours, which must fail the job with its traceback, not be retried.
    """
    if isinstance(exc, ModelCallError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return RetryableModelCallError("request timed out", url=called(exc, scrub))
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        detail = f" ({type(cause).__name__}: {cause})" if cause else ""
        return RetryableModelCallError(scrub(f"connection error{detail}"), url=called(exc, scrub))
    if isinstance(exc, openai.APIStatusError):
        response = exc.response
        status = exc.status_code
        should_retry = response.headers.get("x-should-retry") if response is not None else None
        retryable = (status in RETRYABLE_STATUS or status >= 500) if should_retry is None \
            else should_retry == "true"
        kind = RetryableModelCallError if retryable else PermanentModelCallError
        return kind(scrub(_status_error_message(exc)), status=status,
                    headers=_headers_map(response.headers, scrub), request_id=exc.request_id,
                    retry_after=_retry_after_seconds(response.headers), url=called(exc, scrub))
    if isinstance(exc, openai.APIResponseValidationError):
        response = exc.response
        return RetryableModelCallError(scrub(f"malformed response: {exc.message}"),
                                       status=exc.status_code,
                                       headers=_headers_map(response.headers, scrub),
                                       url=called(exc, scrub))
    if isinstance(exc, (json.JSONDecodeError, pydantic.ValidationError)):
        return RetryableModelCallError(scrub(f"malformed response ({type(exc).__name__}: {exc})"))
    if isinstance(exc, openai.OpenAIError):
        return PermanentModelCallError(scrub(f"{type(exc).__name__}: {exc}"))
    return None


class AsyncModelClient:
    """Sends chat and embeddings requests of one model.

    One instance per Flink worker and model, created on the event loop that uses it.

    Args:
        spec: the model.
        max_connections: size of the connection pool (the operator's concurrency).
        http_client: the SDK's HTTP client to use instead of a new pool (e.g. with a mock
            transport in tests).
    """

    def __init__(self, spec: ModelSpec, *, max_connections: int = 100,
                 http_client: Any = None) -> None:
        self._spec = spec
        self._scrub = _Scrubber(spec.api_key.reveal())
        self._client = openai.AsyncOpenAI(
            api_key=spec.api_key.reveal(),
            base_url=spec.base_url,
            max_retries=0,  # tenacity is the only retry owner
            timeout=spec.connection.request_timeout,
            http_client=http_client or _http_client(max_connections),
        )
        # The request fields that do not change from row to row are prepared once, here.
        settings = spec.chat or spec.embedding
        assert settings is not None
        self._fields: dict[str, Any] = dict(settings.body)
        self._extra_body = dict(settings.extra_body) or None
        chat = spec.chat
        self._stream = chat.stream if chat is not None else None
        if chat is not None:
            if chat.structured is not None:
                self._fields["response_format"] = (
                    chat.structured.response_format()
                    if chat.output_format is OutputFormat.JSON_SCHEMA else {"type": "json_object"})
            elif chat.response_format is not None:
                self._fields["response_format"] = {"type": chat.response_format}

    async def _send(self, create: Any, **kwargs: Any) -> Any:
        """The SDK's raw response to one request; SDK failures mapped, our own bugs untouched."""
        try:
            raw = await create(**kwargs)
        except Exception as exc:
            mapped = map_exception(exc, self._scrub)
            if mapped is None:
                raise
            raise mapped from exc
        return raw.http_response

    async def chat(self, messages: list[dict[str, Any]], timeout: float) -> ChatAnswer:
        """One chat completion of the given messages (streamed when the model says so)."""
        if self._stream is not None:
            return await self._chat_stream(messages, timeout, self._stream.idle_timeout)
        response = await self._send(
            self._client.chat.completions.with_raw_response.create,
            model=self._spec.model,
            messages=messages,
            timeout=request_timeout(timeout),
            extra_body=self._extra_body,
            **self._fields,
        )
        return decode_body(response, ChatBody, self._scrub).answer()

    async def _chat_stream(self, messages: list[dict[str, Any]], timeout: float,
                           idle_timeout: float) -> ChatAnswer:
        """A streamed chat completion, assembled (:mod:`.streaming`): the first chunk must come
        within ``timeout``, each later one within ``idle_timeout`` of the one before."""
        deadline = time.monotonic() + timeout
        try:
            async with asyncio.timeout(timeout):
                response = await self._send(
                    self._client.chat.completions.with_raw_response.create,
                    model=self._spec.model,
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                    # A backstop only: the waits for chunks are bounded in read_chat_stream.
                    timeout=request_timeout(max(timeout, idle_timeout)),
                    extra_body=self._extra_body,
                    **self._fields,
                )
        except TimeoutError:
            raise RetryableModelCallError("request timed out") from None
        return await read_chat_stream(
            response, first_timeout=max(deadline - time.monotonic(), 0.0),
            idle_timeout=idle_timeout, map_error=lambda exc: map_exception(exc, self._scrub),
            scrub=self._scrub)

    async def embed(self, texts: list[str], timeout: float) -> EmbeddingAnswer:
        """Embeddings of several texts in one request, in input order."""
        response = await self._send(
            self._client.embeddings.with_raw_response.create,
            model=self._spec.model,
            input=texts,
            encoding_format="float",  # DashScope documents only float
            timeout=request_timeout(timeout),
            extra_body=self._extra_body,
            **self._fields,
        )
        return decode_body(response, EmbeddingBody, self._scrub).answer(len(texts))

    async def aclose(self) -> None:
        """Closes the connection pool."""
        await self._client.close()


def _httpx() -> Any:
    """The httpx module the installed openai SDK is built on."""
    try:
        import httpx2 as httpx
    except ImportError:  # openai < 3
        import httpx  # type: ignore[no-redef]
    return httpx


def _http_client(max_connections: int) -> Any:
    """The SDK's default async HTTP client with a pool as large as the operator's concurrency."""
    size = max(max_connections, 10)
    return openai.DefaultAsyncHttpxClient(
        limits=_httpx().Limits(max_connections=size, max_keepalive_connections=size))


def request_timeout(seconds: float) -> Any:
    """The SDK timeout of one attempt: `seconds` for the model's read and write; connecting gets at
    least MIN_CONNECT_TIMEOUT_S and waiting for a pooled connection is not limited, so a busy event
    loop in the worker is not charged to the model (the predictor bounds the whole attempt)."""
    return _httpx().Timeout(seconds, connect=max(seconds, MIN_CONNECT_TIMEOUT_S), pool=None)
