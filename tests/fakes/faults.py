"""Faults: what a request gets instead of (or on top of) its normal answer, and which request
gets which.

:class:`Fault` names a misbehaviour; :data:`APPLIERS` maps each kind to the function that puts it
on the wire (add a kind by adding an applier). :class:`FaultPlan` decides, per request key, from
per-key scripts, per-key "always" faults and seeded random rates, in that order.
"""

from __future__ import annotations

import collections
import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

from tests.fakes.answers import Answer
from tests.fakes.exchange import Exchange, error_body

__all__ = ["APPLIERS", "FAULT_KINDS", "RANDOM_FAULT_KEYS", "Fault", "FaultPlan", "apply_fault"]


@dataclass(frozen=True)
class Fault:
    """A misbehaviour applied to one request. ``kind`` is a key of :data:`APPLIERS`:

    * ``status``: answer ``status`` with an OpenAI-style error body (and Retry-After headers).
    * ``slow``: wait ``delay`` seconds, then answer normally.
    * ``hang``: no answer at all: hold the request until the client gives up (closes the
      connection) or the server stops; a client timeout without any race on the clock.
    * ``reset``: send the status line, headers and half the body, then abort with a TCP RST.
    * ``malformed-json``: 200 ``application/json`` with truncated JSON (for a stream, an event
      whose data is truncated JSON).
    * ``wrong-content-type``: 200 ``text/html`` with an HTML page.
    * ``empty-choices``: 200 with valid JSON but ``"choices": []`` (``"data": []`` for lists).
    * ``stream-cut``: for a stream, two chunks then a close without ``[DONE]``; otherwise reset.
    * ``after-arrivals``: answer normally once the server has received ``arrivals`` requests
      (other requests' progress, not time, decides; the gate's hold timeout at most).
    """

    kind: str
    status: int = 500
    retry_after: str | None = None
    retry_after_ms: str | None = None
    delay: float = 0.0
    code: str | None = None
    arrivals: int = 0

    def __post_init__(self) -> None:
        if self.kind not in APPLIERS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(APPLIERS)}")
        if self.kind == "status" and not 400 <= self.status <= 599:
            raise ValueError(f"a status fault needs a 4xx or 5xx status, not {self.status}")
        if self.delay < 0:
            raise ValueError("delay must not be negative")

    @property
    def name(self) -> str:
        """The outcome recorded for a request that got this fault, e.g. ``status:429``."""
        return f"status:{self.status}" if self.kind == "status" else self.kind

    @classmethod
    def status_code(cls, status: int, *, retry_after: str | None = None,
                    retry_after_ms: str | None = None, code: str | None = None) -> Fault:
        """An error response with ``status``."""
        return cls("status", status=status, retry_after=retry_after,
                   retry_after_ms=retry_after_ms, code=code)

    @classmethod
    def slow(cls, delay: float) -> Fault:
        """Answer normally after ``delay`` seconds."""
        return cls("slow", delay=delay)

    @classmethod
    def hang(cls) -> Fault:
        """Never answer: hold the request until the client closes the connection."""
        return cls("hang")

    @classmethod
    def after_arrivals(cls, count: int) -> Fault:
        """Answer once ``count`` requests have reached the server (this one included)."""
        return cls("after-arrivals", arrivals=count)

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


# ---- putting faults on the wire ------------------------------------------------------------


def _status(exchange: Exchange, fault: Fault, answer: Answer) -> None:
    headers = {name: value for name, value in (("Retry-After", fault.retry_after),
                                               ("retry-after-ms", fault.retry_after_ms)) if value}
    if fault.status == 429:
        body = error_body("Requests rate limit exceeded, please try again later.",
                          "rate_limit_error", fault.code or "Throttling.RateQuota")
    elif fault.status >= 500:
        body = error_body("The server had an error while processing your request. Sorry about "
                          "that!", "server_error", fault.code)
    else:
        body = error_body(f"Injected error {fault.status}.", code=fault.code)
    exchange.send_json(fault.status, body, headers)


def _slow(exchange: Exchange, fault: Fault, answer: Answer) -> None:
    exchange.pause(fault.delay)
    answer.send(exchange)


def _after_arrivals(exchange: Exchange, fault: Fault, answer: Answer) -> None:
    exchange.wait_for_arrivals(fault.arrivals)
    answer.send(exchange)


def _hang(exchange: Exchange, fault: Fault, answer: Answer) -> None:
    exchange.wait_for_disconnect()


def _reset(exchange: Exchange, fault: Fault, answer: Answer) -> None:
    first = answer.events[0] if answer.events is not None else answer.payload
    exchange.reset(json.dumps(first, ensure_ascii=False).encode())


def _stream_cut(exchange: Exchange, fault: Fault, answer: Answer) -> None:
    if answer.events is None:
        _reset(exchange, fault, answer)
    else:
        exchange.send_events(answer.events[:2], done=False)


def _malformed_json(exchange: Exchange, fault: Fault, answer: Answer) -> None:
    text = json.dumps(answer.events[0] if answer.events else answer.payload, ensure_ascii=False)
    if answer.events is not None:
        exchange.send_events([text[: len(text) // 2]])
    else:
        exchange.send_bytes(200, "application/json", text[: len(text) // 2].encode())


def _wrong_content_type(exchange: Exchange, fault: Fault, answer: Answer) -> None:
    page = ("<!DOCTYPE html><html><head><title>Fake</title></head>"
            "<body><h1>Not JSON</h1></body></html>")
    exchange.send_bytes(200, "text/html; charset=utf-8", page.encode())


def _empty_choices(exchange: Exchange, fault: Fault, answer: Answer) -> None:
    if answer.events is not None:
        exchange.send_events([{**answer.events[0], "choices": []}])
    else:
        field = "choices" if "choices" in answer.payload else "data"
        exchange.send_json(200, {**answer.payload, field: []})


Applier = Callable[[Exchange, Fault, Answer], None]

APPLIERS: dict[str, Applier] = {
    "status": _status, "slow": _slow, "hang": _hang, "reset": _reset,
    "malformed-json": _malformed_json, "wrong-content-type": _wrong_content_type,
    "empty-choices": _empty_choices, "stream-cut": _stream_cut,
    "after-arrivals": _after_arrivals,
}
"""Fault kind -> the function that answers ``exchange`` with it instead of ``answer``."""

FAULT_KINDS = frozenset(APPLIERS)


def apply_fault(exchange: Exchange, fault: Fault, answer: Answer) -> None:
    """Answer with ``fault``; the request log records its name as the outcome."""
    exchange.outcome = fault.name  # recorded even if the client goes away meanwhile
    APPLIERS[fault.kind](exchange, fault, answer)


# ---- which request gets which fault ---------------------------------------------------------

RANDOM_FAULT_KEYS = ("429", "429-retry-after", "timeout", "hang", "reset", "malformed-json",
                     "wrong-content-type", "empty-choices", "stream-cut")


class FaultPlan:
    """Decides a request's fault from its key (thread-safe).

    ``slow_delay`` (seconds) is the delay of a random ``timeout`` fault; ``random_retry_after``
    is the Retry-After value of a random ``429-retry-after`` fault.
    """

    def __init__(self, slow_delay: float = 30.0) -> None:
        self.slow_delay = slow_delay
        self.random_retry_after = "1"
        self._lock = threading.Lock()
        self._scripts: dict[str, collections.deque[Fault | None]] = {}
        self._always: dict[str, Fault] = {}
        self._rng: random.Random | None = None
        self._rates: list[tuple[str, float]] = []

    def script(self, key: str, faults: list[Fault | None]) -> None:
        """The next ``len(faults)`` requests for ``key`` get these faults in order (None = normal);
        calling it again for the same key appends to the queue."""
        with self._lock:
            self._scripts.setdefault(key, collections.deque()).extend(faults)

    def fail_always(self, key: str, fault: Fault) -> None:
        """Every request for ``key`` (once its script, if any, is used up) gets ``fault``."""
        with self._lock:
            self._always[key] = fault

    def set_random_faults(self, *, seed: int, rates: dict[str, float]) -> None:
        """Give other requests random faults, drawn independently with ``random.Random(seed)``.

        Rate keys: an HTTP status such as ``"429"``/``"500"``/``"502"``/``"503"``,
        ``"429-retry-after"``, ``"timeout"`` (:meth:`Fault.slow` of ``slow_delay``), ``"hang"``,
        ``"reset"``, ``"malformed-json"``, ``"wrong-content-type"``, ``"empty-choices"``,
        ``"stream-cut"``. Rates must add up to at most 1.
        """
        for name, rate in rates.items():
            if not (name in RANDOM_FAULT_KEYS or (name.isdigit() and 400 <= int(name) <= 599)):
                raise ValueError(f"unknown random fault {name!r}")
            if rate < 0:
                raise ValueError(f"rate of {name!r} must not be negative")
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError("fault rates add up to more than 1")
        with self._lock:
            self._rng, self._rates = random.Random(seed), list(rates.items())

    def clear(self) -> None:
        """Forget scripts, always-faults and random rates."""
        with self._lock:
            self._scripts.clear()
            self._always.clear()
            self._rng, self._rates = None, []

    def decide(self, key: str | None) -> Fault | None:
        """The fault for the next request with ``key`` (None: a normal answer)."""
        with self._lock:
            if key is not None:
                if queue := self._scripts.get(key):
                    return queue.popleft()
                if key in self._always:
                    return self._always[key]
            if self._rng is None:
                return None
            draw = self._rng.random()
            for name, rate in self._rates:
                if draw < rate:
                    return self._random_fault(name)
                draw -= rate
        return None

    def _random_fault(self, name: str) -> Fault:
        if name == "429-retry-after":
            return Fault.status_code(429, retry_after=self.random_retry_after)
        if name == "timeout":
            return Fault.slow(self.slow_delay)
        return Fault.status_code(int(name)) if name.isdigit() else Fault(name)
