"""One request and its answer on the wire: what a route handler of the fake server reads from and
writes through (JSON, bytes, server-sent events, a cut connection, a TCP reset, no answer)."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.fakes.gate import DEFAULT_HOLD_TIMEOUT

__all__ = ["ConnectionCut", "Exchange", "RecordedRequest", "Route", "error_body"]


def error_body(message: str, type_: str = "invalid_request_error", code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    """An OpenAI-style error body."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


@dataclass
class RecordedRequest:
    """One request the server received (a snapshot when read through ``requests``)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    started: float
    connection: int  # which TCP connection it came on (1, 2, ... in order of acceptance)
    ended: float | None = None
    status: int | None = None
    outcome: str = "ok"
    answered: float | None = None  # when the answer's first byte was about to be written


class ConnectionCut(Exception):
    """A route cut the connection on purpose (no complete answer was sent)."""


class Exchange:
    """One request being answered: what a route handler reads and writes through."""

    def __init__(self, handler: Any, record: RecordedRequest, body_ok: bool,
                 raw_body: bytes = b"") -> None:
        self._handler = handler
        self.record = record
        self.body_ok = body_ok  # False: the body was not JSON
        self.raw_body = raw_body  # the request body as received (e.g. a multipart upload)
        self.status: int | None = None  # the status sent, None before the answer starts
        self.answer_started = False
        self.request_id = str(uuid.uuid4())

    @property
    def method(self) -> str:
        return self.record.method

    @property
    def path(self) -> str:
        """The path without query string or trailing slash."""
        return urlsplit(self.record.path).path.rstrip("/")

    @property
    def body(self) -> Any:
        """The parsed JSON body (None when empty or not JSON)."""
        return self.record.body

    @property
    def outcome(self) -> str:
        return self.record.outcome

    @outcome.setter
    def outcome(self, value: str) -> None:
        """What the request log records for this request: ``ok`` or a fault name."""
        self.record.outcome = value

    def pause(self, seconds: float) -> None:
        """Wait without holding up other requests; returns early when the server stops."""
        self._handler.server.owner.pause(seconds)

    def wait_for_arrivals(self, count: int) -> None:
        """Wait until the server has received ``count`` requests (the gate's hold timeout at most:
        then the server's ``gate_expired`` counts it)."""
        self._handler.server.owner.tracker.wait_for_arrived(count, DEFAULT_HOLD_TIMEOUT)

    # ---- answering ------------------------------------------------------------------------------

    def start(self, status: int, content_type: str, headers: dict[str, str] | None = None) -> None:
        """Send the status line and headers (the answer has started: no longer in flight)."""
        handler = self._handler
        handler.server.owner.tracker.answering()
        self.answer_started, self.status = True, status
        # Before any byte goes: a client cannot have seen the answer earlier than this.
        self.record.answered = time.monotonic()
        handler.send_response(status)
        for name, value in {"Content-Type": content_type, "x-fake-server": "tests.fakes",
                            "x-request-id": self.request_id, **(headers or {})}.items():
            handler.send_header(name, value)
        if handler.close_connection:
            handler.send_header("Connection", "close")
        handler.end_headers()

    def write(self, data: bytes) -> None:
        self._handler.wfile.write(data)

    def send_bytes(self, status: int, content_type: str, payload: bytes,
                   headers: dict[str, str] | None = None) -> None:
        self.start(status, content_type, {**(headers or {}), "Content-Length": str(len(payload))})
        self.write(payload)

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(status, "application/json",
                        json.dumps(payload, ensure_ascii=False).encode(), headers)

    def start_events(self) -> None:
        """Start a 200 ``text/event-stream`` answer in chunked transfer encoding."""
        self.start(200, "text/event-stream; charset=utf-8",
                   {"Transfer-Encoding": "chunked", "Cache-Control": "no-cache"})

    def send_event(self, event: Any) -> None:
        """One ``data:`` event (a str is sent as it is, anything else as JSON)."""
        text = event if isinstance(event, str) else json.dumps(event, ensure_ascii=False)
        data = f"data: {text}\n\n".encode()
        self.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end_events(self) -> None:
        self.write(b"0\r\n\r\n")

    def send_events(self, events: list[Any], *, done: bool = True) -> None:
        """A whole event stream, ending with ``[DONE]`` (``done=False``: then cut)."""
        self.start_events()
        for event in [*events, "[DONE]"] if done else events:
            self.send_event(event)
        if not done:
            self.cut()
        self.end_events()

    def cut(self) -> None:
        """Close the connection where the answer stands (the client sees it end early)."""
        self._handler.close_connection = True
        raise ConnectionCut

    def reset(self, payload: bytes) -> None:
        """200 with the Content-Length of ``payload``, half of it, then a TCP RST."""
        self.start(200, "application/json", {"Content-Length": str(len(payload))})
        self.write(payload[: len(payload) // 2])
        handler = self._handler
        handler.close_connection = True
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The buffered reader holds a reference to the socket: the RST goes when both are closed.
        handler.rfile.close()
        handler.connection.close()
        raise ConnectionCut

    def wait_for_disconnect(self) -> None:
        """Block until the client closes the connection (or the server stops): no answer."""
        self._handler.close_connection = True
        with contextlib.suppress(OSError):
            while self._handler.connection.recv(4096):
                pass


Route = Callable[[Exchange], None]
