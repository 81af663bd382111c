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


def _not_a_timeout(exc: BaseException) -> BaseException | None:
    """The transport's own error under an SDK timeout error when it was no timeout.

    openai's aiohttp transport maps every aiohttp connection error (refused, reset, closed by
    the server) to httpx's ConnectTimeout, which the SDK reports as APITimeoutError.
    """
    cause = exc.__cause__
    while cause is not None:
        if type(cause).__module__.startswith("aiohttp"):
            return None if isinstance(cause, TimeoutError) else cause
        cause = cause.__cause__
    return None


def map_exception(exc: BaseException, scrub: _Scrubber) -> ModelCallError | None:
    """Converts an exception from the SDK (or from decoding its response) to our hierarchy.

    Returns:
        The error to raise instead, or None when ``exc`` is neither the SDK's nor a decoding
        failure: a bug of ours, which must fail the job with its traceback, not be retried.
    """
    if isinstance(exc, ModelCallError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        failure = _not_a_timeout(exc)
        if failure is not None:
            return RetryableModelCallError(
                scrub(f"connection error ({type(failure).__name__}: {failure})"),
                url=called(exc, scrub))
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
        self._response_type = _httpx().Response
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
        return getattr(raw, "http_response", raw)  # with_raw_response.create(), or post()

    async def _post(self, path: str, body: dict[str, Any], timeout: float) -> Any:
        """The raw response to one POST through the SDK's client (its request building, auth,
        timeouts and status errors).

        Not through the typed ``create()`` methods: their parameter transform walks every
        message against the SDK's TypedDicts, the largest single cost of a row in the worker
        (py-spy, bench/chat_throughput.py --profile), for bodies that are plain JSON here already.
        """
        options: dict[str, Any] = {"timeout": request_timeout(timeout)}
        if self._extra_body:
            options["extra_json"] = self._extra_body  # merged as create(extra_body=...) does
        return await self._send(self._client.post, path=path, cast_to=self._response_type,
                                body=body, options=options)

    async def chat(self, messages: list[dict[str, Any]], timeout: float) -> ChatAnswer:
        """One chat completion of the given messages (streamed when the model says so)."""
        if self._stream is not None:
            return await self._chat_stream(messages, timeout, self._stream.idle_timeout)
        response = await self._post(
            "/chat/completions",
            {"model": self._spec.model, "messages": messages, **self._fields}, timeout)
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
        response = await self._post(
            "/embeddings",
            {"model": self._spec.model, "input": texts,
             "encoding_format": "float",  # DashScope documents only float
             **self._fields}, timeout)
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
    """The SDK's async HTTP client, with a pool as large as the operator's concurrency.

    The SDK's aiohttp transport (``openai.DefaultAioHttpClient``, the ``openai[aiohttp]`` extra)
    when it is installed: measured here (bench/chat_throughput.py, README "Benchmarks") it costs
    less CPU per request than the default httpx pool, whose every request checks every pooled
    connection. Otherwise the SDK's default httpx client.
    """
    size = max(max_connections, 10)
    limits = _httpx().Limits(max_connections=size, max_keepalive_connections=size)
    aiohttp_client = getattr(openai, "DefaultAioHttpClient", None)
    if aiohttp_client is not None:
        try:
            return aiohttp_client(limits=limits)
        except RuntimeError:  # the SDK without its aiohttp extra
            _LOGGER.debug("openai's aiohttp transport is not installed; using httpx")
    return openai.DefaultAsyncHttpxClient(limits=limits)


def request_timeout(seconds: float) -> Any:
    """The SDK timeout of one attempt: `seconds` for the model's read and write; connecting gets at
    least MIN_CONNECT_TIMEOUT_S and waiting for a pooled connection is not limited, so a busy event
    loop in the worker is not charged to the model (the predictor bounds the whole attempt)."""
    return _httpx().Timeout(seconds, connect=max(seconds, MIN_CONNECT_TIMEOUT_S), pool=None)
