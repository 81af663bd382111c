"""A STAND-IN HTTP server that speaks the OpenAI / DashScope-compatible wire format.

It is not a model. It answers ``/chat/completions`` with deterministic, rule-based text (see
:func:`default_responder`) and ``/embeddings`` with vectors derived from a hash of each text, so
the README demo runs without an API key and tests can talk to a real HTTP server over real
sockets. Standard library only.

Routes (any prefix, so ``/v1/...`` and ``/compatible-mode/v1/...`` both work):

* ``POST .../chat/completions`` -- non-streaming JSON or ``"stream": true`` server-sent events
* ``POST .../embeddings``       -- ``encoding_format`` ``float`` (default) or ``base64``
* ``GET  .../models``           -- a small fixed list
* ``GET  /_stats``               -- request counts, in-flight high-water mark, first/last times
* anything else                 -- 404 with an OpenAI-style error body

Every response carries ``x-stand-in: true`` and ``x-request-id``. Errors use OpenAI's
``{"error": {"message", "type", "param", "code"}}`` shape.

Faults: :meth:`StandInServer._decide` returns ``None`` here; subclasses (the test fake
``tests/fakes/openai_server.py``) return a :class:`Fault`, which the single handler in this module
knows how to apply on the wire (error status, slow answer, TCP reset, malformed JSON, wrong
content type, empty choices, cut stream).

Run it by hand::

    python -m flink_ml_predict.standin --port 8000 [--api-key K] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import dataclasses
import hashlib
import json
import logging
import random
import re
import socket
import socketserver
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "FAULT_KINDS",
    "Fault",
    "RecordedRequest",
    "Responder",
    "StandInServer",
    "default_responder",
    "embedding_vector",
    "main",
]

_LOGGER = logging.getLogger(__name__)

Responder = Callable[[dict[str, Any]], str]
"""Computes the assistant text from a chat request body (the parsed JSON)."""

FAULT_KINDS = frozenset(
    {
        "status",
        "slow",
        "reset",
        "malformed-json",
        "wrong-content-type",
        "empty-choices",
        "stream-cut",
    }
)

DASHSCOPE_MAX_EMBEDDING_BATCH = 10
STATS_PATH = "/_stats"
"""DashScope's compatible-mode embeddings endpoint rejects more inputs than this."""

_MODELS = ("gpt-4o-mini", "qwen-plus", "qwen-turbo", "text-embedding-3-small", "text-embedding-v3")


# --------------------------------------------------------------------------------------------
# Records and faults
# --------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request the server received (a snapshot when read through ``requests``)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    started: float
    ended: float | None = None
    status: int | None = None
    outcome: str = "ok"


@dataclass(frozen=True)
class Fault:
    """A misbehaviour the handler applies instead of (or on top of) a normal answer.

    ``kind`` is one of :data:`FAULT_KINDS`:

    * ``status``: answer ``status`` with an OpenAI-style error body (and Retry-After headers).
    * ``slow``: sleep ``delay`` seconds, then answer normally.
    * ``reset``: send the status line, headers and part of the body, then abort with a TCP RST.
    * ``malformed-json``: 200 ``application/json`` with truncated JSON (for a stream, an event
      whose data is truncated JSON).
    * ``wrong-content-type``: 200 ``text/html`` with an HTML page.
    * ``empty-choices``: 200 with valid JSON but ``"choices": []`` (``"data": []`` for lists).
    * ``stream-cut``: for a stream, two chunks then a close without ``[DONE]``; otherwise reset.
    """

    kind: str
    status: int = 500
    retry_after: str | None = None
    retry_after_ms: str | None = None
    delay: float = 0.0
    code: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(
                f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}"
            )
        if self.kind == "status" and not 400 <= self.status <= 599:
            raise ValueError(f"a status fault needs a 4xx or 5xx status, not {self.status}")
        if self.delay < 0:
            raise ValueError("delay must not be negative")

    @property
    def name(self) -> str:
        """The outcome recorded for a request that got this fault, e.g. ``status:429``."""
        return f"status:{self.status}" if self.kind == "status" else self.kind

    @classmethod
    def status_code(
        cls,
        status: int,
        *,
        retry_after: str | None = None,
        retry_after_ms: str | None = None,
        code: str | None = None,
    ) -> Fault:
        """An error response with ``status``."""
        return cls(
            "status",
            status=status,
            retry_after=retry_after,
            retry_after_ms=retry_after_ms,
            code=code,
        )

    @classmethod
    def slow(cls, delay: float) -> Fault:
        """Answer normally after ``delay`` seconds."""
        return cls("slow", delay=delay)

    @classmethod
    def reset(cls) -> Fault:
        """Abort the connection with a TCP RST in the middle of the response."""
        return cls("reset")

    @classmethod
    def malformed_json(cls) -> Fault:
        """200 with a body that is not valid JSON."""
        return cls("malformed-json")

    @classmethod
    def wrong_content_type(cls) -> Fault:
        """200 with ``text/html``."""
        return cls("wrong-content-type")

    @classmethod
    def empty_choices(cls) -> Fault:
        """200 with ``"choices": []``."""
        return cls("empty-choices")

    @classmethod
    def stream_cut(cls) -> Fault:
        """Close a stream after two chunks, without ``[DONE]``."""
        return cls("stream-cut")


# --------------------------------------------------------------------------------------------
# Content: default responder, embeddings, token estimate
# --------------------------------------------------------------------------------------------

_POSITIVE_WORDS = (
    "love great good excellent wonderful amazing awesome best happy enjoy beautiful romantic"
    " gentle like 爱 浪漫 温和 溫和 好 棒 喜欢 喜歡 精彩 感动 感動 美 赞 讚"
).split()
_NEGATIVE_WORDS = (
    "bad boring terrible awful hate worst poor dull disappointing disappointed waste"
    " 乏善可陈 乏善可陳 差 无聊 無聊 糟糕 失望 烂 爛 难看 難看 讨厌 討厭"
).split()
_LABEL_SYNONYMS = {
    "positive": ("positive", "正面", "积极", "積極"),
    "negative": ("negative", "负面", "負面", "消极", "消極"),
    "neutral": ("neutral", "中性", "中立"),
    "mixed": ("mixed", "混合"),
}
_LABEL_LIST = re.compile(r"\[([^\[\]]+,[^\[\]]+)\]")
_CLASSIFY_HINT = re.compile(r"classif|label|categor|分类|分類|类别|類別|标签|標籤", re.IGNORECASE)
_ID_NUMBER = re.compile(r"(?<![0-9])([0-9]{14})[0-9]{3}[0-9Xx](?![0-9A-Za-z])")


def message_text(content: Any) -> str:
    """The text of a message ``content``: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return "" if content is None else str(content)


def _keyword_score(text: str, words: Iterable[str]) -> int:
    lowered = text.lower()
    score = 0
    for word in words:
        if word.isascii():
            score += len(re.findall(rf"\b{re.escape(word)}\b", lowered))
        else:
            score += lowered.count(word)
    return score


def _classify(text: str, labels: list[str]) -> str:
    """Pick a label from ``labels`` by counting positive and negative keywords in ``text``."""
    positive = _keyword_score(text, _POSITIVE_WORDS)
    negative = _keyword_score(text, _NEGATIVE_WORDS)
    if positive > negative:
        wanted = "positive"
    elif negative > positive:
        wanted = "negative"
    elif positive:
        wanted = "mixed"
    else:
        wanted = "neutral"
    for candidate in (wanted, "neutral"):
        for label in labels:
            if label.lower() in _LABEL_SYNONYMS[candidate]:
                return label
    return labels[0]


def default_responder(request: dict[str, Any]) -> str:
    """A tiny rule-based imitation of a model, so demos look plausible. Deterministic.

    With ``system`` = the joined system messages and ``user`` = the last user message:

    1. If ``system`` asks to classify (mentions classify/label/category/分类/标签) and contains a
       bracketed list such as ``[positive, negative, neutral, mixed]``, return one label of that
       list by keyword scoring of ``user`` (more positive words -> positive, more negative ->
       negative, a tie with hits -> mixed, no hit -> neutral; a wanted label missing from the list
       falls back to neutral, then to the first label).
    2. Elif ``system`` mentions 身份证: return ``user`` with the last four characters of every
       18-character mainland ID number (17 digits + digit or X) replaced by ``****``.
    3. Else return ``user`` unchanged (echo).
    """
    messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
    system = "\n".join(
        message_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")
    )
    user = next(
        (message_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    match = _LABEL_LIST.search(system)
    if match and _CLASSIFY_HINT.search(system):
        labels = [label.strip().strip("'\"") for label in match.group(1).split(",")]
        labels = [label for label in labels if label]
        if labels:
            return _classify(user, labels)
    if "身份证" in system or "身份證" in system:
        return _ID_NUMBER.sub(r"\1****", user)
    return user


def embedding_vector(text: str, dimension: int) -> list[float]:
    """A deterministic vector for ``text``: sha256-derived values in [-1, 1], float32-exact."""
    raw = bytearray()
    counter = 0
    while len(raw) < 4 * dimension:
        raw += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    integers = struct.unpack(f"<{dimension}I", bytes(raw[: 4 * dimension]))
    values = [i / 0xFFFFFFFF * 2.0 - 1.0 for i in integers]
    # Round through float32 so the "float" and "base64" encodings carry the very same numbers.
    return list(struct.unpack(f"<{dimension}f", struct.pack(f"<{dimension}f", *values)))


def _estimate_tokens(text: str) -> int:
    """A rough token count (about four characters a token, at least one)."""
    return max(1, (len(text) + 3) // 4)


def _error(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class _BadRequest(Exception):
    """A request the server refuses with a 4xx status."""

    def __init__(self, status: int, payload: dict[str, Any]) -> None:
        super().__init__(payload["error"]["message"])
        self.status = status
        self.payload = payload


def _invalid(message: str, param: str | None = None, code: str | None = None) -> _BadRequest:
    return _BadRequest(400, _error(message, "invalid_request_error", code, param))


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a deep accept queue and daemon handler threads."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: StandInServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup (``getfqdn`` can stall offline)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client disconnects are normal here: log at debug level instead of printing."""
        _LOGGER.debug("stand-in: error while serving %s", client_address, exc_info=True)


class _ConnectionCut(Exception):
    """The handler cut the connection on purpose (reset / stream-cut)."""


class _Handler(BaseHTTPRequestHandler):
    """The one request handler: normal answers, errors and every fault kind."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small header and body writes must not wait for delayed ACKs
    server_version = "flink-ml-predict-stand-in/0.1"
    sys_version = ""
    server: _HTTPServer

    def version_string(self) -> str:
        return self.server_version

    # ---- connection lifecycle ---------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.server.owner._track_connection(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track_connection(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class signature
        level = logging.DEBUG if self.server.owner.quiet else logging.INFO
        _LOGGER.log(level, "stand-in %s - %s", self.address_string(), format % args)

    # ---- verbs ------------------------------------------------------------------------------

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    # ---- request handling -------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        return self.rfile.read(length) if length else b""

    def _dispatch(self, method: str) -> None:
        owner = self.server.owner
        self._status: int | None = None
        self._request_id = str(uuid.uuid4())
        try:
            raw = self._read_body()
        except ValueError:
            self.close_connection = True
            self._send_json(400, _error("Invalid request body framing.", "invalid_request_error"))
            return
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        body: Any = None
        body_ok = True
        if raw.strip():
            try:
                body = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError):
                body_ok = False
        record = owner._begin(method, self.path, headers, body)
        self._outcome = "ok"
        try:
            self._serve(owner, method, record, body_ok)
        except _ConnectionCut:
            self._status = None
            self.close_connection = True
        except (ConnectionError, BrokenPipeError, TimeoutError, OSError):
            _LOGGER.debug(
                "stand-in: client went away during %s %s", method, self.path, exc_info=True
            )
            self._status = None
            self.close_connection = True
        except Exception:  # a bug or a failing responder: answer 500, keep serving
            _LOGGER.exception("stand-in: error while answering %s %s", method, self.path)
            if self._status is None:
                self._send_json(500, _error("The stand-in server failed.", "server_error"))
            else:
                self.close_connection = True
        finally:
            owner._end(record, self._status, self._outcome)

    def _serve(
        self, owner: StandInServer, method: str, record: RecordedRequest, body_ok: bool
    ) -> None:
        """Answer one request (setting ``self._outcome`` when a fault is applied)."""
        owner._pause(owner._next_latency())
        if (
            owner.api_key is not None
            and record.headers.get("authorization") != f"Bearer {owner.api_key}"
        ):
            self._send_json(
                401,
                _error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
            )
            return
        path = urlsplit(self.path).path.rstrip("/")
        route = None
        if method == "POST" and path.endswith("/chat/completions"):
            route = "chat"
        elif method == "POST" and path.endswith("/embeddings"):
            route = "embeddings"
        elif method == "GET" and path.endswith("/models"):
            route = "models"
        elif method == "GET" and path == STATS_PATH:
            self._send_json(200, owner.stats())
            return
        if route is None:
            message = f"Invalid URL ({method} {path or '/'})"
            self._send_json(404, _error(message, "invalid_request_error", "unknown_url"))
            return
        try:
            if not body_ok:
                raise _invalid(
                    "We could not parse the JSON body of your request. (HINT: This likely means "
                    "you aren't "
                    "using your HTTP library correctly. The OpenAI API expects a JSON payload.)"
                )
            if route == "chat":
                stream, answer = self._chat(owner, record.body)
            elif route == "embeddings":
                stream, answer = False, self._embeddings(owner, path, record.body)
            else:
                stream, answer = False, self._models()
        except _BadRequest as bad:
            self._send_json(bad.status, bad.payload)
            return

        fault = owner._decide(record)
        if fault is None:
            self._send_answer(stream, answer)
            return
        self._outcome = fault.name  # recorded even if the client goes away while we answer
        if fault.kind == "slow":
            owner._pause(fault.delay)
            self._send_answer(stream, answer)
        elif fault.kind == "status":
            self._send_fault_status(fault)
        elif fault.kind == "reset" or (fault.kind == "stream-cut" and not stream):
            self._send_reset(stream, answer)
        elif fault.kind == "stream-cut":
            self._send_stream(answer[:2], done=False)
            raise _ConnectionCut
        elif fault.kind == "malformed-json":
            if stream:
                text = json.dumps(answer[0], ensure_ascii=False)
                self._send_stream([text[: len(text) // 2]], done=True)
            else:
                text = json.dumps(answer, ensure_ascii=False)
                self._send_bytes(200, "application/json", text[: len(text) // 2].encode())
        elif fault.kind == "wrong-content-type":
            page = (
                "<!DOCTYPE html><html><head><title>Stand-in</title></head>"
                "<body><h1>Not JSON</h1></body></html>"
            )
            self._send_bytes(200, "text/html; charset=utf-8", page.encode())
        elif fault.kind == "empty-choices":
            if stream:
                self._send_stream([dict(answer[0], choices=[])], done=True)
            else:
                field = "choices" if "choices" in answer else "data"
                self._send_json(200, dict(answer, **{field: []}))

    # ---- normal answers ---------------------------------------------------------------------

    def _chat(self, owner: StandInServer, body: Any) -> tuple[bool, Any]:
        """Validate a chat request; returns (stream?, response dict or list of chunk dicts)."""
        if not isinstance(body, dict):
            raise _invalid("The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _invalid(
                "you must provide a model parameter", "model", "missing_required_parameter"
            )
        messages = body.get("messages")
        if (
            not isinstance(messages, list)
            or not messages
            or not all(isinstance(m, dict) for m in messages)
        ):
            raise _invalid(
                "'messages' is a required property and must be a non-empty array of messages",
                "messages",
                "missing_required_parameter",
            )
        n = body.get("n", 1)
        if n is None:
            n = 1
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 128:
            raise _invalid(
                f"{n!r} is not valid for 'n': expected an integer from 1 to 128",
                "n",
                "invalid_value",
            )
        text = owner.responder(body)
        if not isinstance(text, str):
            raise TypeError(f"responder returned {type(text).__name__}, expected str")
        contents = [text if i == 0 or n == 1 else f"{text} #{i + 1}" for i in range(n)]
        prompt_tokens = sum(_estimate_tokens(message_text(m.get("content"))) for m in messages)
        completion_tokens = sum(_estimate_tokens(c) for c in contents)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if not body.get("stream"):
            return False, {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                    for i, content in enumerate(contents)
                ],
                "usage": usage,
                "system_fingerprint": None,
            }
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))

        def chunk(choices: list[dict[str, Any]]) -> dict[str, Any]:
            out: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": choices,
            }
            if include_usage:
                out["usage"] = None
            return out

        def delta(i: int, data: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"index": i, "delta": data, "logprobs": None, "finish_reason": finish}

        chunks = [chunk([delta(i, {"role": "assistant", "content": ""}) for i in range(n)])]
        pieces = [_split(content) for content in contents]
        for step in range(max(len(p) for p in pieces)):
            chunks.append(
                chunk(
                    [delta(i, {"content": p[step]}) for i, p in enumerate(pieces) if step < len(p)]
                )
            )
        chunks.append(chunk([delta(i, {}, "stop") for i in range(n)]))
        if include_usage:
            chunks.append(dict(chunk([]), usage=usage))
        return True, chunks

    def _embeddings(self, owner: StandInServer, path: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _invalid("The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _invalid(
                "you must provide a model parameter", "model", "missing_required_parameter"
            )
        given = body.get("input")
        texts = [given] if isinstance(given, str) else given
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise _invalid(
                "'input' is a required property: a string or a non-empty array of strings",
                "input",
                "missing_required_parameter",
            )
        if "compatible-mode" in path and len(texts) > DASHSCOPE_MAX_EMBEDDING_BATCH:
            raise _BadRequest(
                400,
                _error(
                    "<400> InternalError.Algo.InvalidParameter: Value error, batch size is "
                    f"invalid, it should not be larger than {DASHSCOPE_MAX_EMBEDDING_BATCH}."
                    ": input.contents",
                    "InvalidParameter",
                    "InvalidParameter",
                ),
            )
        dimension = body.get("dimensions")
        if dimension is None:
            dimension = owner.embedding_dimension
        if (
            not isinstance(dimension, int)
            or isinstance(dimension, bool)
            or not 1 <= dimension <= 65536
        ):
            raise _invalid(
                f"{dimension!r} is not valid for 'dimensions'", "dimensions", "invalid_value"
            )
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise _invalid(
                f"{encoding!r} is not one of ['float', 'base64'] - 'encoding_format'",
                "encoding_format",
                "invalid_value",
            )
        data = []
        for i, text in enumerate(texts):
            vector = embedding_vector(text, dimension)
            embedding: Any = vector
            if encoding == "base64":
                embedding = base64.b64encode(struct.pack(f"<{dimension}f", *vector)).decode("ascii")
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        tokens = sum(_estimate_tokens(t) for t in texts)
        return {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _models(self) -> dict[str, Any]:
        created = 1_700_000_000
        return {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": created, "owned_by": "stand-in"}
                for m in _MODELS
            ],
        }

    # ---- writing ----------------------------------------------------------------------------

    def _start(self, status: int, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self._status = status
        self.send_header("Content-Type", content_type)
        self.send_header("x-stand-in", "true")
        self.send_header("x-request-id", self._request_id)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")

    def _send_bytes(
        self, status: int, content_type: str, payload: bytes, headers: dict[str, str] | None = None
    ) -> None:
        self._start(
            status, content_type, dict(headers or {}, **{"Content-Length": str(len(payload))})
        )
        self.end_headers()
        self.wfile.write(payload)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(
            status, "application/json", json.dumps(payload, ensure_ascii=False).encode(), headers
        )

    def _send_answer(self, stream: bool, answer: Any) -> None:
        if stream:
            self._send_stream(answer, done=True)
        else:
            self._send_json(200, answer)

    def _send_stream(self, events: list[Any], *, done: bool) -> None:
        """Server-sent events over chunked transfer encoding (strings are sent as they are)."""
        self._start(
            200,
            "text/event-stream; charset=utf-8",
            {"Transfer-Encoding": "chunked", "Cache-Control": "no-cache"},
        )
        self.end_headers()
        lines = [e if isinstance(e, str) else json.dumps(e, ensure_ascii=False) for e in events]
        if done:
            lines.append("[DONE]")
        for line in lines:
            data = f"data: {line}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        if done:
            self.wfile.write(b"0\r\n\r\n")

    def _send_fault_status(self, fault: Fault) -> None:
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = fault.retry_after
        if fault.retry_after_ms is not None:
            headers["retry-after-ms"] = fault.retry_after_ms
        if fault.status == 429:
            payload = _error(
                "Requests rate limit exceeded, please try again later.",
                "rate_limit_error",
                fault.code or "Throttling.RateQuota",
            )
        elif fault.status >= 500:
            payload = _error(
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                fault.code,
            )
        else:
            payload = _error(f"Injected error {fault.status}.", "invalid_request_error", fault.code)
        self._send_json(fault.status, payload, headers)

    def _send_reset(self, stream: bool, answer: Any) -> None:
        """Send the status line, the headers and half the body, then abort with a TCP RST."""
        payload = json.dumps(answer if not stream else answer[0], ensure_ascii=False).encode()
        self._start(200, "application/json", {"Content-Length": str(len(payload))})
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2])
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The buffered reader holds a reference to the socket; the real close (and so the RST)
        # happens only once both are closed.
        self.rfile.close()
        self.connection.close()
        raise _ConnectionCut


def _split(text: str) -> list[str]:
    """Split ``text`` into 2-3 pieces for streaming (one piece when it is shorter than 2)."""
    if len(text) < 2:
        return [text]
    count = 3 if len(text) >= 3 else 2
    size = -(-len(text) // count)
    return [text[i : i + size] for i in range(0, len(text), size)]


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class StandInServer:
    """A real HTTP server with OpenAI/DashScope-compatible routes and canned, deterministic answers.

    Use as a context manager or call :meth:`start` / :meth:`stop`. ``latency`` (seconds, or a
    ``(lo, hi)`` range drawn with ``random.Random(seed)``) may be changed while it runs.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        latency: float | tuple[float, float] = 0.0,
        seed: int | None = None,
        embedding_dimension: int = 8,
        quiet: bool = True,
        responder: Responder | None = None,
    ) -> None:
        if embedding_dimension < 1:
            raise ValueError("embedding_dimension must be at least 1")
        self.host = host
        self.port = port
        self.api_key = api_key
        self.embedding_dimension = embedding_dimension
        self.quiet = quiet
        self.responder: Responder = responder or default_responder
        self.latency = latency
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._log: list[RecordedRequest] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> StandInServer:
        """Bind, serve in a daemon thread and return ``self``."""
        if self._httpd is not None:
            raise RuntimeError("the stand-in server is already running")
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), self)
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"stand-in-server:{self.port}",
            daemon=True,
        )
        self._thread.start()
        _LOGGER.debug("stand-in server listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and open connections, join the thread."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()  # wakes handlers sleeping for latency or a slow fault
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=10)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> StandInServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- addresses --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (127.0.0.1 when bound to all interfaces)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI-style base URL (``.../v1``)."""
        return self.url + "/v1"

    @property
    def dashscope_base_url(self) -> str:
        """DashScope compatible-mode base URL (``.../compatible-mode/v1``)."""
        return self.url + "/compatible-mode/v1"

    # ---- latency ----------------------------------------------------------------------------

    @property
    def latency(self) -> float | tuple[float, float]:
        """Seconds to wait before each answer, or a ``(lo, hi)`` range to draw from."""
        return self._latency

    @latency.setter
    def latency(self, value: float | tuple[float, float]) -> None:
        if isinstance(value, tuple):
            lo, hi = (float(v) for v in value)
            if not 0 <= lo <= hi:
                raise ValueError(f"latency range must satisfy 0 <= lo <= hi, got {value!r}")
            self._latency: float | tuple[float, float] = (lo, hi)
        else:
            if value < 0:
                raise ValueError("latency must not be negative")
            self._latency = float(value)

    def _next_latency(self) -> float:
        latency = self._latency
        if isinstance(latency, tuple):
            with self._lock:
                return self._rng.uniform(*latency)
        return latency

    def _pause(self, seconds: float) -> None:
        """Sleep without blocking other requests; returns early when the server stops."""
        if seconds > 0:
            self._stopping.wait(seconds)

    # ---- the request log --------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received since start (or :meth:`reset`)."""
        with self._lock:
            return [dataclasses.replace(r) for r in self._log]

    def completed_requests(self, path_suffix: str | None = None) -> list[RecordedRequest]:
        """Snapshot of the requests whose handling ended (only paths ending in ``path_suffix``)."""
        return [
            r
            for r in self.requests
            if r.ended is not None
            and (path_suffix is None or urlsplit(r.path).path.endswith(path_suffix))
        ]

    @property
    def in_flight(self) -> int:
        """Requests being handled right now (body read, response not yet fully written)."""
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The highest :attr:`in_flight` seen since start (or :meth:`reset`)."""
        with self._lock:
            return self._max_in_flight

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is in flight; returns False on timeout.

        A client can read the last byte of a response before the handler thread has recorded the
        request as ended; call this before inspecting :attr:`requests` after the client is done.
        """
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    def stats(self) -> dict[str, Any]:
        """Counts of the model requests (not of stats requests), also served at ``GET /_stats``."""
        with self._lock:
            log = [r for r in self._log if urlsplit(r.path).path != STATS_PATH]
            ended = [r.ended for r in log if r.ended is not None]
            return {
                "requests": len(log),
                "completed": len(ended),
                "max_in_flight": self._max_in_flight,
                "first_start": min((r.started for r in log), default=None),
                "last_end": max(ended, default=None),
                "outcomes": dict(collections.Counter(r.outcome for r in log)),
            }

    def reset(self) -> None:
        """Clear the request log and the in-flight high-water mark."""
        with self._lock:
            self._log.clear()
            self._max_in_flight = self._in_flight

    def _begin(self, method: str, path: str, headers: dict[str, str], body: Any) -> RecordedRequest:
        record = RecordedRequest(
            method=method, path=path, headers=headers, body=body, started=time.monotonic()
        )
        with self._lock:
            self._log.append(record)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        return record

    def _end(self, record: RecordedRequest, status: int | None, outcome: str) -> None:
        with self._lock:
            record.ended = time.monotonic()
            record.status = status
            record.outcome = outcome
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.notify_all()

    def _track_connection(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    # ---- fault hook -------------------------------------------------------------------------

    def _decide(self, request: RecordedRequest) -> Fault | None:
        """The fault to apply to ``request``, or None for a normal answer. Subclasses override.

        Called from handler threads (concurrently) for requests that passed authentication,
        routing and validation; ``request.body`` is the parsed JSON body.
        """
        return None


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _parse_latency(text: str) -> float | tuple[float, float]:
    if "," in text:
        lo, hi = text.split(",", 1)
        return (float(lo), float(hi))
    return float(text)


def main(argv: list[str] | None = None) -> int:
    """Serve until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m flink_ml_predict.standin",
        description="A STAND-IN OpenAI/DashScope-compatible server with canned answers "
        "(not a model).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY'")
    parser.add_argument(
        "--latency", type=_parse_latency, default=0.0, help="seconds, or LO,HI for a random range"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--embedding-dimension", type=int, default=8)
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s"
    )
    server = StandInServer(
        args.host,
        args.port,
        api_key=args.api_key,
        latency=args.latency,
        seed=args.seed,
        embedding_dimension=args.embedding_dimension,
        quiet=not args.verbose,
    )
    try:
        server.start()
    except OSError as exc:
        print(f"stand-in server: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(
        f"STAND-IN server (NOT a real model: rule-based canned answers) on {server.url} -- "
        f"OpenAI base_url {server.base_url}, DashScope base_url {server.dashscope_base_url}. "
        "Ctrl-C to stop.",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
