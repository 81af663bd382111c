"""The client-side per-minute limits of one model function in one worker.

``requests-per-minute`` and ``tokens-per-minute``: :class:`aiolimiter.AsyncLimiter` leaky buckets
that hold one second's share (the per-minute limit / 60, at least one request), so requests are
spread over each second as the providers enforce them (DashScope: RPS = RPM / 60, TPS = TPM / 60;
OpenAI enforces per-minute limits over shorter periods too). A wait ends with the row's deadline
(:class:`OutOfBudget`). The :class:`~.pacing.Pacer` applies them after the shared cooldown.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiolimiter import AsyncLimiter

from .metrics import Metrics


class OutOfBudget(Exception):
    """A wait for the cooldown or a limit cannot end inside the row's time budget.

    Not a :class:`~flink_ml_predict.errors.ModelCallError`: it is never retried; the caller turns
    it into the row's error (keeping the last HTTP error of the row, if any).
    """

    def __init__(self, waiting_for: str) -> None:
        super().__init__(waiting_for)
        self.waiting_for = waiting_for


def per_second_limiter(per_minute: int | None) -> AsyncLimiter | None:
    """A leaky bucket holding one second's share of a per-minute limit (at least 1)."""
    if per_minute is None:
        return None
    capacity = max(1.0, per_minute / 60.0)
    return AsyncLimiter(capacity, capacity * 60.0 / per_minute)


class MinuteLimits:
    """The 'requests-per-minute' and 'tokens-per-minute' limits (None: none) of one function.

    Args:
        requests_per_minute: requests a minute.
        tokens_per_minute: estimated tokens a minute.
        metrics: counts limit-wait-ms.
        clock: monotonic seconds (default time.monotonic).
    """

    def __init__(self, requests_per_minute: int | None, tokens_per_minute: int | None,
                 metrics: Metrics, clock: Callable[[], float] | None = None) -> None:
        self._requests = per_second_limiter(requests_per_minute)
        self._tokens = per_second_limiter(tokens_per_minute)
        self._metrics = metrics
        self._clock = clock or time.monotonic

    @property
    def active(self) -> bool:
        """Whether any limit is set."""
        return self._requests is not None or self._tokens is not None

    async def take(self, tokens: int, deadline: float) -> None:
        """Waits for one request of ``tokens`` estimated tokens under both limits.

        Raises:
            OutOfBudget: a limit would hold the request past ``deadline``.
        """
        if self._requests is not None:
            await self._take(self._requests, 1.0, deadline, "the requests-per-minute limit")
        if self._tokens is not None and tokens > 0:
            remaining = float(tokens)
            while remaining > 0:  # a request above one second's share takes several seconds'
                chunk = min(remaining, self._tokens.max_rate)
                await self._take(self._tokens, chunk, deadline, "the tokens-per-minute limit")
                remaining -= chunk

    async def _take(self, limiter: AsyncLimiter, amount: float, deadline: float,
                    what: str) -> None:
        if limiter.has_capacity(amount):
            await limiter.acquire(amount)  # returns at once
            return
        started = self._clock()
        remaining = deadline - started
        if remaining <= 0:
            raise OutOfBudget(what)
        try:
            await asyncio.wait_for(limiter.acquire(amount), remaining)
        except asyncio.TimeoutError:
            raise OutOfBudget(what) from None
        finally:
            self._metrics.inc("limit-wait-ms", int((self._clock() - started) * 1000))
