"""What comes back from a model: answers as the predictor uses them, read from the raw body.

A 200 response is read from its raw body into small pydantic models of the fields we use, so a
body that is not what a provider should send (an HTML page, truncated JSON, a missing field) is a
retryable "malformed response" saying what arrived. The SDK would hand back a ``str`` for a body
that is not JSON (``openai._response``: "If the API responds with content that isn't JSON then we
just return the (decoded) text").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic

from ..errors import RetryableModelCallError

SNIPPET_BYTES = 80


@dataclass(frozen=True)
class Usage:
    """Token usage reported by the service for one request (None: not reported)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


@dataclass(frozen=True)
class Choice:
    """One choice of a chat completion.

    Attributes:
        content: the message text (None when the model only called tools).
        finish_reason: why generation stopped (stop, length, tool_calls, ...).
        tool_calls: the tool calls of the message as JSON text, if any.
    """

    content: str | None
    finish_reason: str | None = None
    tool_calls: str | None = None


@dataclass(frozen=True)
class ChatAnswer:
    """The choices of one chat completion, in choice order."""

    choices: tuple[Choice, ...]
    usage: Usage


@dataclass(frozen=True)
class EmbeddingAnswer:
    """One vector per input, in input order."""

    vectors: tuple[list[float], ...]
    usage: Usage


class _Message(pydantic.BaseModel):
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class _Choice(pydantic.BaseModel):
    index: int | None = None
    message: _Message
    finish_reason: str | None = None


class _UsageBody(pydantic.BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


UsageBody = _UsageBody
"""The usage object of a response body (or of a stream's final chunk)."""


class ChatBody(pydantic.BaseModel):
    """The fields of a chat completion that we read (others are ignored)."""

    choices: list[_Choice]
    usage: _UsageBody | None = None

    def answer(self) -> ChatAnswer:
        """The choices in index order, with the usage."""
        if not self.choices:
            raise RetryableModelCallError("response had no choices")
        ordered = sorted(self.choices, key=lambda c: c.index or 0)
        return ChatAnswer(tuple(
            Choice(c.message.content, c.finish_reason,
                   json.dumps(c.message.tool_calls, ensure_ascii=False)
                   if c.message.tool_calls else None) for c in ordered), usage(self.usage))


class _Embedding(pydantic.BaseModel):
    index: int
    embedding: list[float]


class EmbeddingBody(pydantic.BaseModel):
    """The fields of an embeddings response that we read (others are ignored)."""

    data: list[_Embedding]
    usage: _UsageBody | None = None

    def answer(self, inputs: int) -> EmbeddingAnswer:
        """One vector per input in input order; a count that does not match is an error."""
        data = sorted(self.data, key=lambda d: d.index)
        if len(data) != inputs or [d.index for d in data] != list(range(inputs)):
            raise RetryableModelCallError(
                f"response had {len(data)} embeddings (indexes {[d.index for d in data][:10]}) "
                f"for {inputs} inputs")
        return EmbeddingAnswer(tuple(d.embedding for d in data), usage(self.usage))


def usage(body: _UsageBody | None) -> Usage:
    """Usage from a usage body; total_tokens derived when a server leaves it out."""
    if body is None:
        return Usage()
    total = body.total_tokens
    if total is None and body.prompt_tokens is not None:
        total = body.prompt_tokens + (body.completion_tokens or 0)
    return Usage(body.prompt_tokens, body.completion_tokens, total)


_Body = TypeVar("_Body", bound=pydantic.BaseModel)


def decode_body(response: Any, body_type: type[_Body], scrub: Callable[[str], str]) -> _Body:
    """The body of a successful HTTP response (the SDK's httpx response) as ``body_type``.

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
