"""Counters of one model function, kept locally and reported to Flink's metric system.

Registered under the operator's metric group as ``flink_ml_predict.<model>.<name>``: counters
rows (input rows done, whatever their outcome), requests, failures, retries, rows-skipped,
rows-truncated, rows-failed, rows-dropped, tokens-in, tokens-out, throttled (429 answers),
cooldown-ms (time requests waited for the shared cooldown after a 429 and the pacing that follows
it), limit-wait-ms (time requests waited for requests-per-minute / tokens-per-minute), cache-hits
(rows answered by the cache or by an identical request in flight); gauge in-flight; distribution
latency-ms.

PyFlink's metrics are Beam metrics, and Beam drops an update made on a thread that is not
processing a bundle (it finds the metrics container through a thread-local). An async function's
coroutines run on PyFlink's event-loop thread, so updates are kept here and applied by
:meth:`Metrics.flush` on the operation's bundle thread (see ``_pyflink_compat``).
"""

from __future__ import annotations

import threading
from typing import Any

COUNTERS = ("rows", "requests", "failures", "retries", "rows-skipped", "rows-truncated",
            "rows-failed", "rows-dropped", "tokens-in", "tokens-out", "throttled", "cooldown-ms",
            "limit-wait-ms", "cache-hits")


class Metrics:
    """Local counts (always) mirrored into Flink counters (when a metric group is given)."""

    def __init__(self, group: Any = None, model: str = "") -> None:
        self.counts: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.in_flight = 0
        self._flink: dict[str, Any] = {}
        self._latency: Any = None
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}
        self._latencies: list[int] = []
        if group is not None:
            scope = group.add_group("flink_ml_predict").add_group(model or "model")
            self._flink = {name: scope.counter(name) for name in COUNTERS}
            scope.gauge("in-flight", lambda: self.in_flight)
            self._latency = scope.distribution("latency-ms")
        LOCAL.add(model, self)

    def inc(self, name: str, n: int = 1) -> None:
        """Adds n to a counter (any thread)."""
        if n:
            with self._lock:
                self.counts[name] += n
                if self._flink:
                    self._pending[name] = self._pending.get(name, 0) + n

    def observe_latency(self, seconds: float) -> None:
        """Records one request's latency (any thread)."""
        if self._latency is not None:
            with self._lock:
                self._latencies.append(int(seconds * 1000))

    def flush(self) -> None:
        """Applies the pending updates to Flink's metrics; call on the bundle thread."""
        with self._lock:
            pending, self._pending = self._pending, {}
            latencies, self._latencies = self._latencies, []
        for name, n in pending.items():
            self._flink[name].inc(n)
        for value in latencies:
            self._latency.update(value)


class LocalMetrics:
    """The :class:`Metrics` of the model functions running in this process, for a reader here.

    On the embedded mini-cluster PyFlink runs the Python functions in the process that submitted
    the job ("loopback"), so the command line reads their counters directly (its progress line and
    summary). Off until :meth:`enable` (a cluster's long-lived Python worker keeps nothing); the
    counters are read without locking, from a reader thread, never per row.
    """

    def __init__(self) -> None:
        self._enabled = False
        self._lock = threading.Lock()
        self._metrics: list[tuple[str, Metrics]] = []

    def enable(self, enabled: bool = True) -> None:
        """Keeps the Metrics created from now on (until :meth:`clear`); False: no longer."""
        self._enabled = enabled

    def add(self, model: str, metrics: Metrics) -> None:
        """A model function's Metrics (called once per function instance, in ``open()``)."""
        if self._enabled:
            with self._lock:
                self._metrics.append((model, metrics))

    def clear(self) -> None:
        """Forgets the Metrics kept so far (a job has ended)."""
        with self._lock:
            self._metrics = []

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Per model: every counter summed over its function instances, and ``in-flight``."""
        with self._lock:
            kept = list(self._metrics)
        totals: dict[str, dict[str, int]] = {}
        for model, metrics in kept:
            total = totals.setdefault(model, dict.fromkeys((*COUNTERS, "in-flight"), 0))
            for name, value in list(metrics.counts.items()):
                total[name] = total.get(name, 0) + value
            total["in-flight"] += metrics.in_flight
        return totals


LOCAL = LocalMetrics()
"""The process's :class:`LocalMetrics`."""
