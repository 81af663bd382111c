"""HTTP plumbing of the test fakes: a real threaded HTTP/1.1 server on 127.0.0.1 with a route
table, a request log, in-flight tracking with a gate (:mod:`tests.fakes.gate`), latency and an
api-key check. It knows nothing of OpenAI's routes; :mod:`tests.fakes.openai_server` adds them.

A route is ``handler(exchange)``: it reads the request from the
:class:`~tests.fakes.exchange.Exchange` and answers through it (JSON, bytes, server-sent events, a reset or a cut connection). ``GET /_stats`` is
answered before anything else and is not logged.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import logging
import random
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from flink_ml_predict.demo_server import LocalUrls
from tests.fakes.exchange import ConnectionCut, Exchange, RecordedRequest, Route, error_body
from tests.fakes.gate import DEFAULT_HOLD_TIMEOUT, InFlight, ReleaseRule

__all__ = ["STATS_PATH", "FakeServer"]

_LOGGER = logging.getLogger(__name__)

STATS_PATH = "/_stats"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small header and body writes must not wait for delayed ACKs
    server_version = "flink-ml-predict-test-fake"
    server: _HTTPServer

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self.connection_number = self.server.owner._connection(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._connection(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class signature
        _LOGGER.debug("fake server %s - %s", self.address_string(), format % args)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                data += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return bytes(data)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        self.server.owner._handle(self)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch


class _HTTPServer(socketserver.ThreadingTCPServer):
    # TCPServer, not HTTPServer: HTTPServer's bind does a reverse DNS lookup (slow offline).
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: FakeServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        _LOGGER.debug("fake server: error while serving %s", client_address, exc_info=True)


class FakeServer(LocalUrls):
    """A real HTTP server for tests; a context manager. Routes come from :attr:`routes`.

    Args:
        host: the address to listen on.
        port: 0 for a free port (see :attr:`port` once started).
        api_key: requests without ``Authorization: Bearer <api_key>`` get 401 (None: no check).
        latency: seconds before each answer, or a ``(lo, hi)`` range drawn with ``seed``.
        seed: seed of the latency draws.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, api_key: str | None = None,
                 latency: float | tuple[float, float] = 0.0, seed: int | None = None) -> None:
        self.host, self.port, self.api_key = host, port, api_key
        self.latency = latency
        self.routes: list[tuple[str, str, Route]] = []
        """(method, path suffix, handler); the last added match wins, so a module can override."""
        self.tracker = InFlight()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._log: list[RecordedRequest] = []
        self._connections: dict[socket.socket, int] = {}
        self._accepted = 0
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def add_route(self, method: str, suffix: str, handler: Route) -> None:
        """Answer ``method`` requests whose path ends with ``suffix`` with ``handler``."""
        self.routes.append((method, suffix, handler))

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeServer:
        """Bind, serve in a daemon thread and return ``self``."""
        if self._httpd is not None:
            raise RuntimeError("the fake server is already running")
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), self)
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        name=f"fake-server:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; cut open connections; wake handlers that wait (latency, gate, faults)."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        self.tracker.stop()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=10)
        self._httpd = self._thread = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- latency --------------------------------------------------------------------------------

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
        elif value < 0:
            raise ValueError("latency must not be negative")
        else:
            self._latency = float(value)

    def pause(self, seconds: float) -> None:
        """Sleep in a handler thread; returns early when the server stops."""
        if seconds > 0:
            self._stopping.wait(seconds)

    # ---- the request log, in-flight counts and the gate -------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received since start (or :meth:`reset`)."""
        with self._lock:
            return [dataclasses.replace(r) for r in self._log]

    def completed_requests(self, path_suffix: str | None = None) -> list[RecordedRequest]:
        """The requests whose handling ended (only paths ending in ``path_suffix``)."""
        return [r for r in self.requests if r.ended is not None and (
            path_suffix is None or urlsplit(r.path).path.endswith(path_suffix))]

    @property
    def in_flight(self) -> int:
        """Requests awaiting their answer now (see :mod:`tests.fakes.gate`)."""
        return self.tracker.in_flight

    @property
    def max_in_flight(self) -> int:
        """The most requests in flight together since start (or :meth:`reset`)."""
        return self.tracker.max_in_flight

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is being handled (call before reading the log); False on timeout."""
        return self.tracker.wait_idle(timeout)

    def hold(self, release_when: ReleaseRule | None = None,
             timeout: float = DEFAULT_HOLD_TIMEOUT, linger: float = 0.0) -> None:
        """Hold every answer at the gate (see :meth:`tests.fakes.gate.InFlight.hold`)."""
        self.tracker.hold(release_when, timeout, linger)

    def release(self, count: int | None = None) -> None:
        """Let ``count`` more answers through the gate; None: open it."""
        self.tracker.release(count)

    @contextlib.contextmanager
    def gate(self, release_when: ReleaseRule | None = None,
             timeout: float = DEFAULT_HOLD_TIMEOUT, linger: float = 0.0) -> Iterator[FakeServer]:
        """Hold answers inside the ``with`` block; open the gate when it ends."""
        self.hold(release_when, timeout, linger)
        try:
            yield self
        finally:
            self.release()

    def wait_for_in_flight(self, count: int, timeout: float = 30.0) -> bool:
        """Block until at least ``count`` requests are in flight; False on timeout."""
        return self.tracker.wait_for_in_flight(count, timeout)

    def wait_for_held(self, count: int, timeout: float = 30.0) -> bool:
        """Block until at least ``count`` answers wait at the gate; False on timeout."""
        return self.tracker.wait_for_held(count, timeout)

    @property
    def gate_expired(self) -> int:
        """Answers the gate let go only because they waited past its timeout."""
        return self.tracker.expired

    def stats(self) -> dict[str, Any]:
        """Counts of the logged requests, also served at ``GET /_stats``."""
        with self._lock:
            ended = [r.ended for r in self._log if r.ended is not None]
            bodies = collections.Counter(json.dumps(r.body, sort_keys=True) for r in self._log
                                         if r.body is not None)
            summary = {"requests": len(self._log), "completed": len(ended),
                       # the most requests with one body: a row's attempts (its retries)
                       "max_requests_per_body": max(bodies.values(), default=0),
                       "first_start": min((r.started for r in self._log), default=None),
                       "last_end": max(ended, default=None),
                       "outcomes": dict(collections.Counter(r.outcome for r in self._log))}
        return {**summary, "max_in_flight": self.max_in_flight}

    def reset(self) -> None:
        """Clear the request log, the in-flight high-water mark and the arrival count."""
        with self._lock:
            self._log.clear()
        self.tracker.reset()

    # ---- handling -------------------------------------------------------------------------------

    def answer(self, exchange: Exchange) -> None:
        """Check the key, find the route, call it. Subclasses may wrap this."""
        if self.api_key is not None and exchange.record.headers.get(
                "authorization") != f"Bearer {self.api_key}":
            exchange.send_json(401, error_body("Incorrect API key provided.",
                                               code="invalid_api_key"))
            return
        for method, suffix, handler in reversed(self.routes):
            if method == exchange.method and exchange.path.endswith(suffix):
                handler(exchange)
                return
        exchange.send_json(404, error_body(f"Invalid URL ({exchange.method} {exchange.path or '/'})",
                                           code="unknown_url"))

    def _handle(self, handler: _Handler) -> None:
        try:
            raw = handler._read_body()
        except ValueError:
            handler.close_connection = True
            handler.send_error(400, "Invalid request body framing.")
            return
        if handler.command == "GET" and urlsplit(handler.path).path == STATS_PATH:
            payload = json.dumps(self.stats()).encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        headers: dict[str, str] = {}
        for name, value in handler.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        body, body_ok = None, True
        if raw.strip():
            try:
                body = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError):
                body_ok = False
        record = RecordedRequest(handler.command, handler.path, headers, body, time.monotonic(),
                                 handler.connection_number)
        with self._lock:
            self._log.append(record)
        self.tracker.arrived()
        exchange = Exchange(handler, record, body_ok, raw)
        try:
            self.pause(self._next_latency())
            self.tracker.pass_gate()
            self.answer(exchange)
        except ConnectionCut:
            exchange.status = None
        except OSError:  # the client went away
            _LOGGER.debug("fake server: client left during %s %s", handler.command, handler.path,
                          exc_info=True)
            handler.close_connection, exchange.status = True, None
        except Exception:  # a bug or a failing responder: answer 500, keep serving
            _LOGGER.exception("fake server: error while answering %s %s", handler.command,
                              handler.path)
            if exchange.status is None:
                exchange.send_json(500, error_body("The fake server failed.", "server_error"))
            else:
                handler.close_connection = True
        finally:
            with self._lock:
                record.ended, record.status = time.monotonic(), exchange.status
            if not exchange.answer_started:
                self.tracker.answering()
            self.tracker.done()

    def _next_latency(self) -> float:
        latency = self._latency
        if isinstance(latency, tuple):
            with self._lock:
                return self._rng.uniform(*latency)
        return latency

    def _connection(self, connection: socket.socket, *, add: bool) -> int:
        with self._lock:
            if add:
                self._accepted += 1
                self._connections[connection] = self._accepted
                return self._accepted
            return self._connections.pop(connection, 0)
