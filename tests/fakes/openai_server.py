"""The fault-injecting OpenAI / DashScope-compatible server the tests run against.

:class:`FaultInjectingServer` is a :class:`~tests.fakes.server.FakeServer` with the OpenAI routes
(any prefix, so ``/v1/...`` and ``/compatible-mode/v1/...`` both work):

* ``POST .../chat/completions`` -- JSON, or server-sent events for ``"stream": true``
* ``POST .../embeddings``       -- ``encoding_format`` ``float`` (default) or ``base64``
* ``GET  .../models``

Each answer is computed first (a request the service would refuse gets its 400 then), then the
request's fault is decided (:meth:`FaultInjectingServer.fault_for`: every source in
:attr:`~FaultInjectingServer.fault_sources`, first non-None wins; the built-in one is the
:class:`~tests.fakes.faults.FaultPlan` of scripts, always-faults and random rates), then either
the answer or the fault goes on the wire. A request's key is the content of its last user message
(chat) or its input text (embeddings with a single string).

Run it on its own (for benchmarks)::

    python -m tests.fakes.openai_server --port 8000 [--api-key K] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import collections
import signal
import sys
import threading
from collections.abc import Callable

from tests.fakes.answers import (
    Answer,
    ApiError,
    Responder,
    chat_answer,
    embeddings_answer,
    models_answer,
    request_key,
)
from tests.fakes.exchange import Exchange, RecordedRequest
from tests.fakes.faults import Fault, FaultPlan, apply_fault
from tests.fakes.server import FakeServer
from tests.fakes.structured import StructuredResponder

__all__ = ["Fault", "FaultInjectingServer", "RecordedRequest", "request_key"]

FaultSource = Callable[[RecordedRequest], "Fault | None"]
"""Decides a request's fault (None: no opinion); see ``FaultInjectingServer.fault_sources``."""


class FaultInjectingServer(FakeServer):
    """A fake OpenAI/DashScope-compatible server that misbehaves on request.

    Args:
        host, port, api_key, latency, seed: as for :class:`~tests.fakes.server.FakeServer`.
        embedding_dimension: the length of vectors when a request gives no ``dimensions``.
        responder: computes the chat answer text (default: :attr:`structured`, the demo's
            rule-based answers and JSON of the schema a request carries).
        slow_delay: seconds of a random ``timeout`` fault.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, api_key: str | None = None,
                 latency: float | tuple[float, float] = 0.0, seed: int | None = None,
                 embedding_dimension: int = 8, responder: Responder | None = None,
                 slow_delay: float = 30.0) -> None:
        super().__init__(host, port, api_key=api_key, latency=latency, seed=seed)
        if embedding_dimension < 1:
            raise ValueError("embedding_dimension must be at least 1")
        self.embedding_dimension = embedding_dimension
        self.structured = StructuredResponder()
        """Structured answers: the response formats received and scripted wrong answers."""
        self.responder: Responder = responder or self.structured
        self.plan = FaultPlan(slow_delay)
        self.fault_sources: list[FaultSource] = [lambda r: self.plan.decide(request_key(r.body))]
        """Consulted in order for each request; a new source (e.g. a rate limiter) goes first."""
        self.add_route("POST", "/chat/completions",
                       lambda e: self.respond(e, lambda: chat_answer(e, self.responder)))
        self.add_route("POST", "/embeddings", lambda e: self.respond(
            e, lambda: embeddings_answer(e, self.embedding_dimension)))
        self.add_route("GET", "/models", lambda e: self.respond(e, lambda: models_answer(e)))

    # ---- answering ------------------------------------------------------------------------------

    def respond(self, exchange: Exchange, compute: Callable[[], Answer]) -> None:
        """Answer with ``compute()``'s answer or, if the request gets one, its fault."""
        try:
            answer = compute()
        except ApiError as error:
            exchange.send_json(error.status, error.body)
            return
        fault = self.fault_for(exchange.record)
        if fault is None:
            answer.send(exchange)
        else:
            apply_fault(exchange, fault, answer)

    def fault_for(self, request: RecordedRequest) -> Fault | None:
        """The fault of a request that passed authentication, routing and validation (called
        concurrently from handler threads), or None for its normal answer."""
        for source in self.fault_sources:
            fault = source(request)
            if fault is not None:
                return fault
        return None

    # ---- the fault plan (kept on the server for the tests that use it) ----------------------

    @property
    def slow_delay(self) -> float:
        """Seconds of a random ``timeout`` fault."""
        return self.plan.slow_delay

    @slow_delay.setter
    def slow_delay(self, value: float) -> None:
        self.plan.slow_delay = value

    @property
    def random_retry_after(self) -> str:
        """Retry-After of a random ``429-retry-after`` fault."""
        return self.plan.random_retry_after

    @random_retry_after.setter
    def random_retry_after(self, value: str) -> None:
        self.plan.random_retry_after = value

    def script(self, key: str, faults: list[Fault | None]) -> None:
        """See :meth:`tests.fakes.faults.FaultPlan.script`."""
        self.plan.script(key, faults)

    def fail_always(self, key: str, fault: Fault) -> None:
        """See :meth:`tests.fakes.faults.FaultPlan.fail_always`."""
        self.plan.fail_always(key, fault)

    def set_random_faults(self, *, seed: int, rates: dict[str, float]) -> None:
        """See :meth:`tests.fakes.faults.FaultPlan.set_random_faults`."""
        self.plan.set_random_faults(seed=seed, rates=rates)

    def clear_faults(self) -> None:
        """Forget scripts, always-faults and random rates."""
        self.plan.clear()

    # ---- reading the log ------------------------------------------------------------------------

    def fault_counts(self) -> dict[str, int]:
        """How many requests got each outcome (``"ok"`` or a fault name like ``"status:429"``)."""
        return dict(collections.Counter(r.outcome for r in self.requests))

    def requests_for(self, key: str) -> list[RecordedRequest]:
        """The requests whose key (last user message, or single input) is ``key``."""
        return [r for r in self.requests if request_key(r.body) == key]

    def attempts(self, key: str) -> int:
        """How many requests for ``key`` the server received."""
        return len(self.requests_for(key))


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT or SIGTERM; the first line on stdout gives the URL."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.openai_server",
                                     description="The tests' fake OpenAI-compatible server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--latency-max", type=float, default=None,
                        help="draw each answer's latency uniformly from [--latency, this]")
    parser.add_argument("--rpm", type=float, default=None,
                        help="answer 429 above this many requests a minute (tests/fakes/ratelimit)")
    args = parser.parse_args(argv)
    latency: float | tuple[float, float] = args.latency
    if args.latency_max is not None:
        latency = (args.latency, args.latency_max)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with FaultInjectingServer(args.host, args.port, api_key=args.api_key,
                              latency=latency, seed=0) as server:
        if args.rpm is not None:
            from tests.fakes.ratelimit import RequestRateLimit

            RequestRateLimit(args.rpm, retry_after="seconds").install(server)
        print(f"fake server on {server.url}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
