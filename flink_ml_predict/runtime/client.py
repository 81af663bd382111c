"""The one HTTP client of every provider: the ``openai`` SDK's async client, SDK retries off.

Turns a row into a request, a response into values, and SDK exceptions into
:mod:`flink_ml_predict.errors` (the only place that knows the SDK's exception classes).

A 200 response is read from its raw body into small pydantic models of the fields we use, so a
body that is not what a provider should send (an HTML page, truncated JSON, a missing field) is a
retryable "malformed response" saying what arrived, while an exception of our own code (a
KeyError, TypeError, AttributeError...) is not mapped at all: it fails the job with its traceback.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, TypeVar

import openai
import pydantic

from .. import options as opts
from ..errors import ModelCallError, PermanentModelCallError, RetryableModelCallError
from ..model import ModelSpec

_LOGGER = logging.getLogger(__name__)

# What can succeed when sent again (as openai-python's own _should_retry decides).
RETRYABLE_STATUS = frozenset({408, 409, 429})
MIN_CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Usage:
    """Token usage reported by the service for one request."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class ChatAnswer:
    """The choices of one chat completion, in choice order."""

    contents: tuple[str | None, ...]
    usage: Usage


@dataclass(frozen=True)
class EmbeddingAnswer:
    """One vector per input, in input order."""

    vectors: tuple[list[float], ...]
    usage: Usage


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


def _headers_map(headers: Any) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    if headers is None:
        return result
    for key, value in headers.multi_items():
        result.setdefault(key.lower(), []).append(value)
    return result


class _Scrubber:
    """Removes the api-key from any text that may reach a message or a log."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def __call__(self, text: str) -> str:
        return text.replace(self._secret, "******") if self._secret else text


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
        return RetryableModelCallError("request timed out")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        detail = f" ({type(cause).__name__}: {cause})" if cause else ""
        return RetryableModelCallError(scrub(f"connection error{detail}"))
    if isinstance(exc, openai.APIStatusError):
        response = exc.response
        status = exc.status_code
        should_retry = response.headers.get("x-should-retry") if response is not None else None
        retryable = (status in RETRYABLE_STATUS or status >= 500) if should_retry is None \
            else should_retry == "true"
        kind = RetryableModelCallError if retryable else PermanentModelCallError
        return kind(scrub(_status_error_message(exc)), status=status,
                    headers=_headers_map(response.headers), request_id=exc.request_id,
                    retry_after=_retry_after_seconds(response.headers))
    if isinstance(exc, openai.APIResponseValidationError):
        response = exc.response
        return RetryableModelCallError(scrub(f"malformed response: {exc.message}"),
                                       status=exc.status_code,
                                       headers=_headers_map(response.headers))
    if isinstance(exc, (json.JSONDecodeError, pydantic.ValidationError)):
        return RetryableModelCallError(scrub(f"malformed response ({type(exc).__name__}: {exc})"))
    if isinstance(exc, openai.OpenAIError):
        return PermanentModelCallError(scrub(f"{type(exc).__name__}: {exc}"))
    return None


class _Message(pydantic.BaseModel):
    content: str | None = None


class _Choice(pydantic.BaseModel):
    index: int | None = None
    message: _Message


class _UsageBody(pydantic.BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _ChatBody(pydantic.BaseModel):
    """The fields of a chat completion that we read (others are ignored)."""

    choices: list[_Choice]
    usage: _UsageBody | None = None


class _Embedding(pydantic.BaseModel):
    index: int
    embedding: list[float]


class _EmbeddingBody(pydantic.BaseModel):
    """The fields of an embeddings response that we read (others are ignored)."""

    data: list[_Embedding]
    usage: _UsageBody | None = None


_Body = TypeVar("_Body", bound=pydantic.BaseModel)
SNIPPET_BYTES = 80


def decode_body(response: Any, body_type: type[_Body], scrub: _Scrubber) -> _Body:
    """The body of a successful HTTP response (the SDK's httpx response) as ``body_type``.

    The SDK hands back the body as a ``str`` when the content type is not JSON and the body does
    not parse as JSON (``openai._response``: "If the API responds with content that isn't JSON
    then we just return the (decoded) text"); reading the raw body ourselves sees that case.

    Raises:
        RetryableModelCallError: "malformed response: expected JSON, got <content type>: <first
            bytes>" for a body that is not JSON, or naming the first missing or wrong field.
    """
    try:
        return body_type.model_validate_json(response.content)
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        if first["type"] == "json_invalid":
            content_type = response.headers.get("content-type") or "no content type"
            start = response.content[:SNIPPET_BYTES].decode("utf-8", "replace")
            detail = f"expected JSON, got {content_type}: {' '.join(start.split())}"
        else:
            where = ".".join(str(part) for part in first["loc"]) or "body"
            detail = f"{where}: {first['msg']}"
        # No status: the http-status-code column is for error statuses (this one was 200).
        raise RetryableModelCallError(scrub(f"malformed response: {detail}")) from None


def _usage(usage: _UsageBody | None) -> Usage:
    if usage is None:
        return Usage()
    return Usage(usage.prompt_tokens or 0, usage.completion_tokens or 0)


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
            timeout=spec.get(opts.REQUEST_TIMEOUT),
            http_client=http_client or _http_client(max_connections),
        )
        standard, extra = spec.request_fields()
        self._fields = standard
        self._extra_body = extra or None
        if spec.task == opts.CHAT:
            fmt = spec.get(opts.RESPONSE_FORMAT)
            if fmt is not None:
                self._fields["response_format"] = {"type": fmt}
            if spec.get(opts.MAX_TOKENS) is not None:
                self._fields["max_tokens"] = spec.get(opts.MAX_TOKENS)
        self._system_prompt = spec.get(opts.SYSTEM_PROMPT)

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

    async def chat(self, text: str, timeout: float) -> ChatAnswer:
        """One chat completion for one row: the system prompt, then the row's text."""
        response = await self._send(
            self._client.chat.completions.with_raw_response.create,
            model=self._spec.model,
            messages=[{"role": "system", "content": self._system_prompt},
                      {"role": "user", "content": text}],
            timeout=request_timeout(timeout),
            extra_body=self._extra_body,
            **self._fields,
        )
        body = decode_body(response, _ChatBody, self._scrub)
        if not body.choices:
            raise RetryableModelCallError("response had no choices")
        ordered = sorted(body.choices, key=lambda c: c.index or 0)
        return ChatAnswer(tuple(c.message.content for c in ordered), _usage(body.usage))

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
        body = decode_body(response, _EmbeddingBody, self._scrub)
        data = sorted(body.data, key=lambda d: d.index)
        if len(data) != len(texts):
            raise RetryableModelCallError(
                f"response had {len(data)} embeddings for {len(texts)} inputs")
        return EmbeddingAnswer(tuple(d.embedding for d in data), _usage(body.usage))

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
