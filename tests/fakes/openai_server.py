"""Fault-injecting OpenAI/DashScope-compatible server for tests.

:class:`FaultInjectingServer` is the package's :class:`~flink_ml_predict.standin.StandInServer`
with a :meth:`_decide` that picks faults; the one handler in ``standin.py`` applies them. Faults
come, in this order of precedence, from per-key scripts, per-key "always" faults and seeded random
rates. A request's key is the content of its last user message (chat) or its input text
(embeddings with a single string).
"""

from __future__ import annotations

import collections
import logging
import random
import threading
from typing import Any

from flink_ml_predict.standin import Fault, RecordedRequest, StandInServer, message_text

__all__ = ["Fault", "FaultInjectingServer", "RecordedRequest", "request_key"]

_LOGGER = logging.getLogger(__name__)

_RANDOM_FAULT_KEYS = (
    "429",
    "429-retry-after",
    "timeout",
    "reset",
    "malformed-json",
    "wrong-content-type",
    "empty-choices",
    "stream-cut",
)


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


class FaultInjectingServer(StandInServer):
    """A :class:`StandInServer` that misbehaves on request.

    ``slow_delay`` (seconds) is the delay of a random ``timeout`` fault; ``random_retry_after``
    is the Retry-After value of a random ``429-retry-after`` fault.
    """

    def __init__(self, *args: Any, slow_delay: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slow_delay = slow_delay
        self.random_retry_after = "1"
        self._fault_lock = threading.Lock()
        self._scripts: dict[str, collections.deque[Fault | None]] = {}
        self._always: dict[str, Fault] = {}
        self._random_rng: random.Random | None = None
        self._random_rates: list[tuple[str, float]] = []

    def script(self, key: str, faults: list[Fault | None]) -> None:
        """The next ``len(faults)`` requests for ``key`` get these faults in order (None = normal).

        Calling it again for the same key appends to the queue.
        """
        with self._fault_lock:
            self._scripts.setdefault(key, collections.deque()).extend(faults)

    def fail_always(self, key: str, fault: Fault) -> None:
        """Every request for ``key`` (once its script, if any, is used up) gets ``fault``."""
        with self._fault_lock:
            self._always[key] = fault

    def set_random_faults(self, *, seed: int, rates: dict[str, float]) -> None:
        """Give other requests random faults, drawn independently with ``random.Random(seed)``.

        Rate keys: an HTTP status such as ``"429"``/``"500"``/``"502"``/``"503"``,
        ``"429-retry-after"``, ``"timeout"`` (:meth:`Fault.slow` of ``slow_delay``), ``"reset"``,
        ``"malformed-json"``, ``"wrong-content-type"``, ``"empty-choices"``, ``"stream-cut"``.
        Rates must add up to at most 1.
        """
        for name, rate in rates.items():
            if not (name in _RANDOM_FAULT_KEYS or (name.isdigit() and 400 <= int(name) <= 599)):
                raise ValueError(f"unknown random fault {name!r}")
            if rate < 0:
                raise ValueError(f"rate of {name!r} must not be negative")
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError("fault rates add up to more than 1")
        with self._fault_lock:
            self._random_rng = random.Random(seed)
            self._random_rates = list(rates.items())

    def clear_faults(self) -> None:
        """Forget scripts, always-faults and random rates."""
        with self._fault_lock:
            self._scripts.clear()
            self._always.clear()
            self._random_rng = None
            self._random_rates = []

    def fault_counts(self) -> dict[str, int]:
        """How many requests got each outcome (``"ok"`` or a fault name like ``"status:429"``)."""
        return dict(collections.Counter(r.outcome for r in self.requests))

    def _random_fault(self, name: str) -> Fault:
        if name == "429-retry-after":
            return Fault.status_code(429, retry_after=self.random_retry_after)
        if name == "timeout":
            return Fault.slow(self.slow_delay)
        if name.isdigit():
            return Fault.status_code(int(name))
        return Fault(name)

    def _decide(self, request: RecordedRequest) -> Fault | None:
        key = request_key(request.body)
        with self._fault_lock:
            if key is not None:
                queue = self._scripts.get(key)
                if queue:
                    return queue.popleft()
                if key in self._always:
                    return self._always[key]
            if self._random_rng is None:
                return None
            draw = self._random_rng.random()
            for name, rate in self._random_rates:
                if draw < rate:
                    return self._random_fault(name)
                draw -= rate
        return None
