"""Counters of one model function, kept locally and reported to Flink's metric system.

Registered under the operator's metric group as ``flink_ml_predict.<model>.<name>``: counters
requests, failures, retries, rows-skipped, rows-truncated, rows-failed, rows-dropped, tokens-in,
tokens-out; gauge in-flight; distribution latency-ms.
"""

from __future__ import annotations

from typing import Any

COUNTERS = ("requests", "failures", "retries", "rows-skipped", "rows-truncated", "rows-failed",
            "rows-dropped", "tokens-in", "tokens-out")


class Metrics:
    """Local counts (always) mirrored into Flink counters (when a metric group is given)."""

    def __init__(self, group: Any = None, model: str = "") -> None:
        self.counts: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.in_flight = 0
        self._flink: dict[str, Any] = {}
        self._latency: Any = None
        if group is not None:
            scope = group.add_group("flink_ml_predict").add_group(model or "model")
            self._flink = {name: scope.counter(name) for name in COUNTERS}
            scope.gauge("in-flight", lambda: self.in_flight)
            self._latency = scope.distribution("latency-ms")

    def inc(self, name: str, n: int = 1) -> None:
        """Adds n to a counter."""
        if n:
            self.counts[name] += n
            counter = self._flink.get(name)
            if counter is not None:
                counter.inc(n)

    def observe_latency(self, seconds: float) -> None:
        """Records one request's latency."""
        if self._latency is not None:
            self._latency.update(int(seconds * 1000))
