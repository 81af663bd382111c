"""A DEMO server for ``make demo`` and the docker-compose cluster. It is NOT a model.

It speaks enough of the OpenAI / DashScope compatible-mode wire format for the seed scripts to run
without an API key and answers by rules (:mod:`flink_ml_predict.demo_answers`). Every response
carries the ``X-Not-A-Model`` header, and the server says on standard error what it is.

Routes (any prefix, so ``/v1/...`` and ``/compatible-mode/v1/...`` both work): ``POST
.../chat/completions`` (no streaming), ``POST .../embeddings``, ``GET .../models``. HTTP/1.1 with
keep-alive; with an api-key, requests without ``Authorization: Bearer KEY`` get 401. Run it::

    flink-ml-predict demo-server --port 8000 [--host 0.0.0.0] [--api-key KEY]
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import socket
import socketserver
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from .demo_answers import ApiError, chat_completion, embeddings, model_list

__all__ = ["NOT_A_MODEL_HEADER", "DemoServer", "serve"]

_LOGGER = logging.getLogger(__name__)

NOT_A_MODEL_HEADER = ("X-Not-A-Model", "flink-ml-predict demo server: rule-based answers")


# --- the server -----------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every response has a Content-Length
    server_version, sys_version = "flink-ml-predict-demo", ""
    disable_nagle_algorithm = True
    server: _HTTPServer

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class signature
        _LOGGER.debug("demo server: %s %s", self.address_string(), format % args)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            status, payload = 200, self._route(self.command, raw)
        except ApiError as error:
            status, payload = error.status, error.body
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        for name, value in (("Content-Type", "application/json"), NOT_A_MODEL_HEADER,
                            ("X-Request-Id", str(uuid.uuid4())),
                            ("Content-Length", str(len(data)))):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST

    def _route(self, method: str, raw: bytes) -> dict[str, Any]:
        key = self.server.api_key
        if key is not None and self.headers.get("Authorization") != f"Bearer {key}":
            raise ApiError(401, "Incorrect API key provided.", "invalid_api_key")
        path = urlsplit(self.path).path.rstrip("/")
        if method == "GET" and path.endswith("/models"):
            return model_list()
        if method == "POST" and path.endswith(("/chat/completions", "/embeddings")):
            try:
                body = json.loads(raw) if raw.strip() else None
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise ApiError(400, "We could not parse the JSON body of your request.") from None
            if isinstance(body, dict) and body.get("stream"):
                raise ApiError(400, "The demo server does not stream.", param="stream")
            return chat_completion(body) if path.endswith("/chat/completions") else embeddings(body)
        raise ApiError(404, f"Invalid URL ({method} {path or '/'})", "unknown_url")


class _HTTPServer(socketserver.ThreadingTCPServer):
    # TCPServer, not HTTPServer: HTTPServer's bind does a reverse DNS lookup, slow offline.
    daemon_threads = True  # a handler waiting on an idle keep-alive connection never delays exit
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], api_key: str | None) -> None:
        self.api_key, self.lock = api_key, threading.Lock()
        self.connections: set[socket.socket] = set()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        _LOGGER.debug("demo server: error serving %s", client_address, exc_info=True)


class LocalUrls:
    """The URLs of a server listening on ``host``:``port`` (also those of the tests' fakes)."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (127.0.0.1 when listening on every interface)."""
        return f"http://{'127.0.0.1' if self.host in ('', '0.0.0.0') else self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL (``.../v1``)."""
        return self.url + "/v1"

    @property
    def dashscope_base_url(self) -> str:
        """The DashScope compatible-mode base URL (``.../compatible-mode/v1``)."""
        return self.url + "/compatible-mode/v1"


class DemoServer(LocalUrls):
    """The demo server, served by a daemon thread of this process; a context manager.

    Args:
        host: the address to listen on.
        port: the port (0: a free one, then see :attr:`port`).
        api_key: the key requests must carry (None: any or none).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, api_key: str | None = None
                 ) -> None:
        self.host = host
        self._httpd = _HTTPServer((host, port), api_key)
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        name=f"demo-server:{self.port}", daemon=True)

    def start(self) -> DemoServer:
        """Serve in a daemon thread; returns ``self``."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut open keep-alive connections (their handler threads end)."""
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()
        with self._httpd.lock:
            connections = list(self._httpd.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve(host: str, port: int, api_key: str | None) -> int:
    """Serve until SIGINT or SIGTERM (call from the main thread); returns the exit status."""
    stop = threading.Event()
    # Handlers before the announcement: a signal right after it still stops the server cleanly.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        server = DemoServer(host, port, api_key=api_key).start()
    except OSError as exc:
        print(f"demo server: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    print(f"DEMO server (NOT a real model: rule-based answers) on {server.url} -- OpenAI "
          f"base_url {server.base_url}, DashScope base_url {server.dashscope_base_url}. "
          "Ctrl-C to stop.", file=sys.stderr, flush=True)
    stop.wait()
    server.stop()
    return 0
