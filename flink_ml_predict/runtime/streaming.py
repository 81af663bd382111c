"""Streamed chat answers ('stream' = 'true'): the server-sent events of one chat completion read
from the raw response and assembled into the same :class:`~.responses.ChatAnswer` a non-streamed
call gives, before any row is emitted.

The request itself goes through the SDK (``stream=True``, ``stream_options.include_usage``; status
errors, connecting and the wait for the headers are the SDK's). The events are read here, from
the raw body, for what the SDK's ``AsyncStream`` does not check: it ends quietly when a stream
stops without ``data: [DONE]``, and it builds chunks without validating them. Each chunk is read
into a small pydantic model; per choice index the content deltas are joined, the tool-call deltas
merged (arguments concatenated, as the SDK's ``accumulate_delta`` does), the finish reason kept
(DashScope writes ``"null"`` for none); usage comes from the final chunk.

A stream that does not complete is a :class:`~flink_ml_predict.errors.RetryableModelCallError`
(the row is retried or follows its strategy; a partial answer is never the result): the
connection dropped or reset, no ``[DONE]``, ``[DONE]`` before every choice finished, a chunk that
is not a JSON chunk, no first chunk within the request timeout, or no chunk for longer than
``stream-idle-timeout``. Transport failures are handed to the client's ``map_exception`` rules as
the SDK's own stream would raise them (APIConnectionError, APITimeoutError).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import openai
import pydantic

from ..errors import ModelCallError, RetryableModelCallError
from .responses import SNIPPET_BYTES, ChatAnswer, ChatBody, Choice, UsageBody, decode_body, usage

__all__ = ["ChunkBody", "StreamAssembler", "read_chat_stream"]

DONE = "[DONE]"


class _FunctionDelta(pydantic.BaseModel):
    name: str | None = None
    arguments: str | None = None


class _ToolCallDelta(pydantic.BaseModel):
    index: int = 0
    id: str | None = None
    type: str | None = None
    function: _FunctionDelta | None = None


class _Delta(pydantic.BaseModel):
    content: str | None = None
    tool_calls: list[_ToolCallDelta] | None = None


class _ChunkChoice(pydantic.BaseModel):
    index: int
    delta: _Delta = pydantic.Field(default_factory=_Delta)
    finish_reason: str | None = None


class ChunkBody(pydantic.BaseModel):
    """The fields of a ``chat.completion.chunk`` that we read (others are ignored)."""

    choices: list[_ChunkChoice]
    usage: UsageBody | None = None


@dataclass
class _ToolCall:
    id: str = ""
    type: str = ""
    name: str = ""
    arguments: str = ""

    def merge(self, delta: _ToolCallDelta) -> None:
        self.id = self.id or delta.id or ""
        self.type = delta.type or self.type
        if delta.function is not None:
            self.name += delta.function.name or ""
            self.arguments += delta.function.arguments or ""

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type or "function",
                "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class _Partial:
    """One choice as its deltas arrive."""

    texts: list[str] = field(default_factory=list)
    tool_calls: dict[int, _ToolCall] = field(default_factory=dict)
    finish_reason: str | None = None


class StreamAssembler:
    """Joins the chunks of one streamed chat completion into a :class:`ChatAnswer`."""

    def __init__(self) -> None:
        self._choices: dict[int, _Partial] = {}
        self._usage: UsageBody | None = None
        self.chunks = 0

    def add(self, chunk: ChunkBody) -> None:
        """One chunk's deltas, finish reasons and usage."""
        self.chunks += 1
        if chunk.usage is not None:
            self._usage = chunk.usage
        for choice in chunk.choices:
            partial = self._choices.setdefault(choice.index, _Partial())
            if choice.delta.content:
                partial.texts.append(choice.delta.content)
            for delta in choice.delta.tool_calls or ():
                partial.tool_calls.setdefault(delta.index, _ToolCall()).merge(delta)
            if choice.finish_reason not in (None, "", "null"):
                partial.finish_reason = choice.finish_reason

    def answer(self) -> ChatAnswer:
        """The assembled answer of a stream that ended with ``[DONE]``.

        Raises:
            RetryableModelCallError: no choice, or a choice that never finished.
        """
        if not self._choices:
            raise RetryableModelCallError(f"stream had no choices ({self.chunks} chunks)")
        choices = []
        for index in sorted(self._choices):
            partial = self._choices[index]
            if partial.finish_reason is None:
                raise RetryableModelCallError(
                    f"stream incomplete: choice {index} had no finish_reason before [DONE] "
                    f"({self.chunks} chunks)")
            calls = [partial.tool_calls[i].as_json() for i in sorted(partial.tool_calls)]
            text = "".join(partial.texts)
            choices.append(Choice(None if calls and not text else text, partial.finish_reason,
                                  json.dumps(calls, ensure_ascii=False) if calls else None))
        return ChatAnswer(tuple(choices), usage(self._usage))


def _httpx() -> Any:
    try:
        import httpx2 as httpx
    except ImportError:  # openai < 3
        import httpx  # type: ignore[no-redef]
    return httpx


async def _events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str | None, str]]:
    """(event name, data) of each server-sent event (comments and other fields skipped); an
    event still open when the body ends is given too."""
    name: str | None = None
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = None, []
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if key == "data":
            data.append(value)
        elif key == "event":
            name = value
    if data:
        yield name, "\n".join(data)


def _chunk(name: str | None, data: str, response: Any, scrub: Callable[[str], str]) -> ChunkBody:
    """One event's chunk; an error event raises the SDK's APIError (as its stream would)."""
    try:
        parsed = json.loads(data)
    except json.JSONDecodeError:
        snippet = " ".join(data[:SNIPPET_BYTES].split())
        raise RetryableModelCallError(scrub(f"malformed stream chunk: not JSON: {snippet}")) \
            from None
    if name == "error" or (isinstance(parsed, dict) and parsed.get("error")):
        detail = parsed.get("error") if isinstance(parsed, dict) else parsed
        message = detail.get("message") if isinstance(detail, dict) else None
        raise openai.APIError(str(message or "An error occurred during streaming"),
                              request=response.request, body=detail)
    try:
        return ChunkBody.model_validate(parsed)
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "chunk"
        raise RetryableModelCallError(f"malformed stream chunk: {where}: {first['msg']}") from None


async def read_chat_stream(response: Any, *, first_timeout: float, idle_timeout: float,
                           map_error: Callable[[BaseException], ModelCallError | None],
                           scrub: Callable[[str], str]) -> ChatAnswer:
    """The assembled answer of a streamed chat completion (an httpx response, body unread).

    Args:
        response: the SDK's raw HTTP response of a ``stream=True`` request.
        first_timeout: seconds, from now, within which the first chunk must arrive.
        idle_timeout: the longest pause between later chunks, seconds.
        map_error: the client's mapping of SDK exceptions to ours (None: a bug of ours).
        scrub: removes the api-key from any text of an error.

    Raises:
        ModelCallError: the stream failed or did not complete (see the module docstring).
    """
    httpx = _httpx()
    assembler = StreamAssembler()
    deadline = time.monotonic() + first_timeout
    try:
        content_type = response.headers.get("content-type") or ""
        if "event-stream" not in content_type:  # a server that answered without streaming
            await response.aread()
            return decode_body(response, ChatBody, scrub).answer()
        events = _events(response.aiter_lines()).__aiter__()
        while True:
            wait = idle_timeout if assembler.chunks else max(deadline - time.monotonic(), 0.0)
            try:
                async with asyncio.timeout(wait):
                    name, data = await events.__anext__()
            except StopAsyncIteration:
                raise RetryableModelCallError(
                    f"stream cut: ended after {assembler.chunks} chunks without [DONE]") from None
            except TimeoutError:
                if assembler.chunks:
                    raise RetryableModelCallError(
                        f"stream stalled: no chunk for {idle_timeout:g}s after "
                        f"{assembler.chunks} chunks (stream-idle-timeout)") from None
                raise RetryableModelCallError(
                    f"request timed out: no chunk within {first_timeout:g}s") from None
            if data.strip() == DONE:
                return assembler.answer()
            assembler.add(_chunk(name, data, response, scrub))
    except ModelCallError:
        raise
    except Exception as exc:
        error: BaseException = exc
        what = "stream cut"
        if isinstance(exc, httpx.TimeoutException):
            error = openai.APITimeoutError(request=response.request)
        elif isinstance(exc, (httpx.RequestError, httpx.StreamError, OSError)):
            error = openai.APIConnectionError(request=response.request)
        else:
            what = "stream failed"
        if error is not exc:
            error.__cause__ = exc
        mapped = map_error(error)
        if mapped is None:
            raise
        raise type(mapped)(scrub(f"{what} after {assembler.chunks} chunks: {mapped}"),
                           status=mapped.status, headers=mapped.headers,
                           request_id=mapped.request_id) from exc
    finally:
        await response.aclose()
