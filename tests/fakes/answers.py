"""Normal answers of the OpenAI / DashScope-compatible routes, before they go on the wire.

The answer text and the response bodies come from the product's demo answers
(:mod:`flink_ml_predict.demo_answers`: rule-based, deterministic); this module adds what only
tests need: streamed chat completions, DashScope's embedding batch cap, and the key a request is
matched on by fault scripts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flink_ml_predict.demo_answers import (
    ApiError,
    chat_completion,
    embeddings,
    message_text,
    model_list,
)
from tests.fakes.exchange import Exchange

__all__ = ["DASHSCOPE_MAX_EMBEDDING_BATCH", "Answer", "ApiError", "Responder", "chat_answer",
           "embeddings_answer", "models_answer", "request_key", "stream_events"]

Responder = Callable[[dict[str, Any]], "str | list[str]"]
"""Computes the assistant text from a chat request body (the parsed JSON): one text (choice k > 0
gets `` #k+1``) or one text per choice."""

DASHSCOPE_MAX_EMBEDDING_BATCH = 10
"""DashScope's compatible-mode embeddings endpoint rejects more inputs than this."""


@dataclass(frozen=True)
class Answer:
    """A normal answer: a JSON body, or (for ``"stream": true``) the events of a stream."""

    payload: dict[str, Any]
    events: list[dict[str, Any]] | None = None

    @property
    def stream(self) -> bool:
        return self.events is not None

    def send(self, exchange: Exchange) -> None:
        """Write this answer as it is."""
        if self.events is not None:
            exchange.send_events(self.events)
        else:
            exchange.send_json(200, self.payload)


def request_key(body: Any) -> str | None:
    """The key a request is matched on: last user message (chat) or single input (embeddings)."""
    if not isinstance(body, dict):
        return None
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return message_text(message.get("content"))
        return None
    given = body.get("input")
    if isinstance(given, str):
        return given
    if isinstance(given, list) and len(given) == 1 and isinstance(given[0], str):
        return given[0]
    return None


def _parsed(exchange: Exchange) -> Any:
    if not exchange.body_ok:
        raise ApiError(400, "We could not parse the JSON body of your request. (HINT: This likely "
                       "means you aren't using your HTTP library correctly. The OpenAI API expects "
                       "a JSON payload.)")
    return exchange.body


def chat_answer(exchange: Exchange, responder: Responder) -> Answer:
    """A chat completion of ``responder``'s text (streamed when the request asks).

    Raises:
        ApiError: a request the service would refuse (400).
    """
    completion = chat_completion(_parsed(exchange), responder)
    body = exchange.body
    if not body.get("stream"):
        return Answer(completion)
    options = body.get("stream_options")
    return Answer(completion, stream_events(
        completion, include_usage=isinstance(options, dict) and bool(options.get("include_usage"))))


def stream_events(completion: dict[str, Any], *, include_usage: bool) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` events of a completion: a role chunk, each choice's text in
    two or three pieces, a finish chunk and (``include_usage``) a usage chunk."""
    fields = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}

    def chunk(choices: list[dict[str, Any]]) -> dict[str, Any]:
        out = {**fields, "object": "chat.completion.chunk", "choices": choices}
        return {**out, "usage": None} if include_usage else out

    def delta(i: int, data: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": i, "delta": data, "logprobs": None, "finish_reason": finish}

    texts = [c["message"]["content"] for c in completion["choices"]]
    pieces = [_pieces(text) for text in texts]
    events = [chunk([delta(i, {"role": "assistant", "content": ""}) for i in range(len(texts))])]
    for step in range(max(len(p) for p in pieces)):
        events.append(chunk([delta(i, {"content": p[step]})
                             for i, p in enumerate(pieces) if step < len(p)]))
    events.append(chunk([delta(i, {}, "stop") for i in range(len(texts))]))
    if include_usage:
        events.append({**chunk([]), "usage": completion["usage"]})
    return events


def _pieces(text: str) -> list[str]:
    """``text`` in 2-3 pieces for streaming (one piece when it is shorter than 2)."""
    if len(text) < 2:
        return [text]
    size = -(-len(text) // (3 if len(text) >= 3 else 2))
    return [text[i : i + size] for i in range(0, len(text), size)]


def embeddings_answer(exchange: Exchange, dimension: int) -> Answer:
    """Embeddings of the inputs (``dimension`` unless the request gives ``dimensions``).

    Raises:
        ApiError: a request the service would refuse, e.g. more than
            :data:`DASHSCOPE_MAX_EMBEDDING_BATCH` inputs on a DashScope compatible-mode path.
    """
    body = _parsed(exchange)
    given = body.get("input") if isinstance(body, dict) else None
    if "compatible-mode" in exchange.path and isinstance(given, list) and len(
            given) > DASHSCOPE_MAX_EMBEDDING_BATCH:
        raise ApiError(400, "<400> InternalError.Algo.InvalidParameter: Value error, batch size "
                       f"is invalid, it should not be larger than {DASHSCOPE_MAX_EMBEDDING_BATCH}."
                       ": input.contents", "InvalidParameter", type_="InvalidParameter")
    return Answer(embeddings(body, dimension))


def models_answer(exchange: Exchange) -> Answer:
    """The model list."""
    return Answer(model_list())
