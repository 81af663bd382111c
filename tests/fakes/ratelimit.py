"""An RPM-limited mode of the fake server: 429 over a requests-per-minute limit, answered as a
provider answers it (DashScope's ``Throttling.RateQuota`` body, a Retry-After header or not).

    limit = RequestRateLimit(1200).install(server)   # first in server.fault_sources
    ... run ...
    limit.admitted, limit.rejected

Shapes:

* ``"bucket"`` (default): a token bucket of ``burst`` requests (default one second's share,
  rpm / 60, at least 1) refilled at rpm / 60 a second -- per-minute limits enforced per second, as
  DashScope documents (RPS = RPM / 60) and OpenAI does over short periods.
* ``"window"``: fixed windows of ``window`` seconds (default a minute) of rpm x window / 60
  requests each, as simple mocks do; a burst goes through at the start of each window.

``retry_after``: ``"seconds"`` (``Retry-After`` in whole seconds, rounded up), ``"ms"``
(``retry-after-ms``, rounded up to a millisecond) or None (no header: the client must back off on
its own). A rejected request uses up capacity only with ``count_rejected`` (OpenAI documents that
failed requests count toward the per-minute limit); the bucket then goes down to -``burst``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from tests.fakes.exchange import RecordedRequest
from tests.fakes.faults import Fault

__all__ = ["RequestRateLimit"]


class RequestRateLimit:
    """A fault source (see ``FaultInjectingServer.fault_sources``) enforcing a request rate.

    Args:
        rpm: requests per minute.
        shape: ``"bucket"`` or ``"window"``.
        burst: bucket capacity in requests (bucket only).
        window: seconds of a fixed window (window only).
        retry_after: ``"seconds"``, ``"ms"`` or None.
        count_rejected: a rejected request uses up capacity too.
        paths: path suffixes that are limited (others always pass).
        clock: monotonic seconds.
    """

    def __init__(self, rpm: float, *, shape: str = "bucket", burst: float | None = None,
                 window: float = 60.0, retry_after: str | None = "seconds",
                 count_rejected: bool = False, paths: Iterable[str] = ("/chat/completions", "/embeddings"),
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rpm <= 0:
            raise ValueError("rpm must be positive")
        if shape not in ("bucket", "window"):
            raise ValueError(f"unknown shape {shape!r}: bucket or window")
        if retry_after not in ("seconds", "ms", None):
            raise ValueError(f"unknown retry_after {retry_after!r}: seconds, ms or None")
        self.rpm, self.shape, self.retry_after = rpm, shape, retry_after
        self.burst = burst if burst is not None else max(1.0, rpm / 60.0)
        self.window = window
        self.count_rejected = count_rejected
        self.paths = tuple(paths)
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._last: float | None = None
        self._window_start: float | None = None
        self._window_count = 0
        self.admitted = 0
        self.rejected = 0
        self.decisions: list[tuple[float, bool]] = []
        """(time, admitted) of every limited request, in order of decision."""

    def install(self, server: object) -> RequestRateLimit:
        """Put this limit first among ``server.fault_sources``; returns ``self``."""
        server.fault_sources.insert(0, self)  # type: ignore[attr-defined]
        return self

    def __call__(self, request: RecordedRequest) -> Fault | None:
        if not urlsplit(request.path).path.rstrip("/").endswith(self.paths):
            return None
        with self._lock:
            now = self._clock()
            wait = self._bucket(now) if self.shape == "bucket" else self._window(now)
            admitted = wait is None
            self.decisions.append((now, admitted))
            if admitted:
                self.admitted += 1
                return None
            self.rejected += 1
        assert wait is not None
        if self.retry_after == "seconds":
            return Fault.status_code(429, retry_after=str(max(1, math.ceil(wait))))
        if self.retry_after == "ms":
            return Fault.status_code(429, retry_after_ms=str(max(1, math.ceil(wait * 1000))))
        return Fault.status_code(429)

    def _bucket(self, now: float) -> float | None:
        """None when admitted, else seconds until a request would be."""
        rate = self.rpm / 60.0
        if self._last is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        if self.count_rejected:
            self._tokens = max(self._tokens - 1.0, -self.burst)
        return (1.0 - self._tokens) / rate

    def _window(self, now: float) -> float | None:
        if self._window_start is None or now >= self._window_start + self.window:
            start = self._window_start if self._window_start is not None else now
            self._window_start = start + self.window * math.floor((now - start) / self.window)
            self._window_count = 0
        if self._window_count < self.rpm * self.window / 60.0:
            self._window_count += 1
            return None
        return self._window_start + self.window - now
