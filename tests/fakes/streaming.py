"""Chat completions as DashScope's compatible mode streams them, tool calls, and the ways a stream
goes wrong.

:func:`install` replaces the chat route of a
:class:`~tests.fakes.openai_server.FaultInjectingServer` with one that

* answers with tool calls when the request carries ``tools`` (a call of the first function tool
  with ``{"query": <the user message>}``, ``finish_reason`` ``tool_calls``; streamed too);
* streams (``"stream": true``) as seed 004 shows DashScope doing it: a first chunk with the role,
  the text in pieces, ``"finish_reason": "null"`` (a string) until the finish chunk, tool-call
  deltas whose later pieces carry ``"id": ""``, and with ``stream_options.include_usage`` a final
  chunk with ``"choices": []`` and the usage, then ``data: [DONE]``.

Importing this module registers stream faults in :data:`tests.fakes.faults.APPLIERS` (a request
that is not streamed gets the plain answer, or for ``stream-stall`` no answer at all):

* ``stream-stall``: two chunks, then nothing until the client gives up and closes the connection
  (the client's idle timeout decides; no sleep on either side);
* ``stream-no-done``: every chunk, then the response ends cleanly without ``data: [DONE]``;
* ``stream-bad-chunk``: two chunks, then a chunk of truncated JSON, then the rest;
* ``stream-unfinished``: every chunk but the finish chunk, then ``[DONE]``.

(``stream-cut`` -- two chunks, then the connection closes mid-body -- is in :mod:`.faults`.)
"""

from __future__ import annotations

import json
from typing import Any

from flink_ml_predict.demo_answers import ApiError, chat_completion, message_text
from tests.fakes.answers import Answer, Responder
from tests.fakes.exchange import Exchange
from tests.fakes.faults import APPLIERS, Fault

__all__ = ["STREAM_FAULTS", "chat_answer", "dashscope_events", "install", "stream_fault",
           "with_tool_calls"]


# ---- answers ------------------------------------------------------------------------------------


def _function_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools = body.get("tools")
    return [t["function"] for t in tools or () if isinstance(t, dict) and t.get("type") ==
            "function" and isinstance(t.get("function"), dict)] if isinstance(tools, list) else []


def with_tool_calls(completion: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The completion with every choice calling the first function tool of the request."""
    function = _function_tools(body)[0]
    user = next((message_text(m.get("content")) for m in reversed(body["messages"])
                 if m.get("role") == "user"), "")
    arguments = json.dumps({"query": user}, ensure_ascii=False)
    choices = [{**choice, "finish_reason": "tool_calls",
                "message": {"role": "assistant", "content": "", "tool_calls": [
                    {"id": f"call_{completion['id'][-8:]}_{choice['index']}", "type": "function",
                     "function": {"name": function["name"], "arguments": arguments}}]}}
               for choice in completion["choices"]]
    return {**completion, "choices": choices}


def _pieces(text: str, count: int = 3) -> list[str]:
    size = max(1, -(-len(text) // count))
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def dashscope_events(completion: dict[str, Any], *, include_usage: bool) -> list[dict[str, Any]]:
    """The chunks of a completion as DashScope's compatible mode streams them (see the module
    docstring); every choice streams in the same chunks."""
    base = {k: completion[k] for k in ("id", "created", "model")}

    def chunk(choices: list[dict[str, Any]]) -> dict[str, Any]:
        out = {**base, "object": "chat.completion.chunk", "system_fingerprint": None,
               "choices": choices}
        return {**out, "usage": None} if include_usage else out

    def delta(index: int, data: dict[str, Any], finish: str = "null") -> dict[str, Any]:
        return {"index": index, "delta": data, "finish_reason": finish, "logprobs": None}

    steps: dict[int, list[dict[str, Any]]] = {}
    for choice in completion["choices"]:
        message, index = choice["message"], choice["index"]
        deltas: list[dict[str, Any]] = []
        for call_index, call in enumerate(message.get("tool_calls") or ()):
            for n, piece in enumerate(_pieces(call["function"]["arguments"])):
                function = {"name": call["function"]["name"], "arguments": piece} if n == 0 \
                    else {"arguments": piece}
                deltas.append({"tool_calls": [{"index": call_index,
                                               "id": call["id"] if n == 0 else "",
                                               "type": "function", "function": function}]})
        deltas.extend({"content": piece} for piece in _pieces(message.get("content") or "")
                      if piece)
        steps[index] = [{"role": "assistant", "content": "", **(deltas[0] if deltas else {})},
                        *deltas[1:]]
    events = [chunk([delta(i, d[step]) for i, d in steps.items() if step < len(d)])
              for step in range(max(len(d) for d in steps.values()))]
    events.append(chunk([delta(c["index"], {"content": ""}, c["finish_reason"])
                         for c in completion["choices"]]))
    if include_usage:
        events.append({**chunk([]), "usage": completion["usage"]})
    return events


def chat_answer(exchange: Exchange, responder: Responder) -> Answer:
    """The answer to a chat request: tool calls when it carries tools, streamed when it asks.

    Raises:
        ApiError: a request the service would refuse (400).
    """
    if not exchange.body_ok:
        raise ApiError(400, "We could not parse the JSON body of your request.")
    body = exchange.body
    completion = chat_completion(body, responder)
    if _function_tools(body):
        completion = with_tool_calls(completion, body)
    if not body.get("stream"):
        return Answer(completion)
    options = body.get("stream_options")
    usage = isinstance(options, dict) and bool(options.get("include_usage"))
    return Answer(completion, dashscope_events(completion, include_usage=usage))


def install(server: Any) -> Any:
    """Serve chat completions of ``server`` (a FaultInjectingServer) through :func:`chat_answer`;
    its responder, faults and request log work as before. Returns ``server``."""
    server.add_route("POST", "/chat/completions", lambda e: server.respond(
        e, lambda: chat_answer(e, server.responder)))
    return server


# ---- stream faults ----------------------------------------------------------------------------

STREAM_FAULTS = ("stream-stall", "stream-no-done", "stream-bad-chunk", "stream-unfinished")


def stream_fault(kind: str) -> Fault:
    """A :class:`~tests.fakes.faults.Fault` of one of :data:`STREAM_FAULTS`."""
    if kind not in STREAM_FAULTS:
        raise ValueError(f"unknown stream fault {kind!r}; expected one of {STREAM_FAULTS}")
    return Fault(kind)


def _finishes(event: dict[str, Any]) -> bool:
    return any(c.get("finish_reason") not in (None, "null") for c in event.get("choices", ()))


def _stall(exchange: Exchange, fault: Fault, answer: Answer) -> None:
    if answer.events is not None:
        exchange.start_events()
        for event in answer.events[:2]:
            exchange.send_event(event)
    exchange.wait_for_disconnect()


def _no_done(exchange: Exchange, fault: Fault, answer: Answer) -> None:
    if answer.events is None:
        answer.send(exchange)
        return
    exchange.start_events()
    for event in answer.events:
        exchange.send_event(event)
    exchange.end_events()


def _bad_chunk(exchange: Exchange, fault: Fault, answer: Answer) -> None:
    if answer.events is None:
        answer.send(exchange)
        return
    text = json.dumps(answer.events[2 % len(answer.events)], ensure_ascii=False)
    exchange.send_events([*answer.events[:2], text[: len(text) // 2], *answer.events[2:]])


def _unfinished(exchange: Exchange, fault: Fault, answer: Answer) -> None:
    if answer.events is None:
        answer.send(exchange)
        return
    exchange.send_events([e for e in answer.events if not _finishes(e)])


APPLIERS.update({"stream-stall": _stall, "stream-no-done": _no_done,
                 "stream-bad-chunk": _bad_chunk, "stream-unfinished": _unfinished})
