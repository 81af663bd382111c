"""Retries: the only retry owner (the SDK's are off, Flink's async retry is switched off).

Built from tenacity primitives in one factory. Retries only what can succeed later
(:class:`~flink_ml_predict.errors.RetryableModelCallError`), honours a server's Retry-After /
retry-after-ms, otherwise backs off exponentially with full jitter, never waits less than half of
the initial backoff after a failure, and never starts a wait that would end after the row's time
budget (which sits inside Flink's operator timeout). The model's shared cooldown after a 429
(:mod:`.pacing`) comes on top: it holds every request of the model, retries included.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from ..errors import RetryableModelCallError

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How one row's request is retried.

    Attributes:
        max_retries: retries after the first attempt (0 = one attempt only).
        initial_backoff: first backoff in seconds; doubles per retry, full jitter; no wait is
            shorter than half of it (a server's Retry-After of 0 included).
        max_backoff: upper bound of a backoff chosen by us (not of a server's Retry-After).
    """

    max_retries: int
    initial_backoff: float = 0.5
    max_backoff: float = 8.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.initial_backoff <= 0 or self.max_backoff < self.initial_backoff:
            raise ValueError("backoffs must satisfy 0 < initial_backoff <= max_backoff")

    def to_retrying(
        self,
        *,
        budget: float,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        on_retry: Callable[[RetryCallState], None] | None = None,
    ) -> AsyncRetrying:
        """A tenacity AsyncRetrying for one row.

        Args:
            budget: seconds from now (the deadline less now) after which no new attempt may start.
            sleep: the coroutine used to wait (tests inject a recorder).
            on_retry: called before each wait (metrics, logging).
        """
        backoff = wait_random_exponential(multiplier=self.initial_backoff, max=self.max_backoff)
        floor = self.initial_backoff / 2

        def wait(state: RetryCallState) -> float:
            outcome = state.outcome
            exc = outcome.exception() if outcome is not None else None
            directed = getattr(exc, "retry_after", None)
            chosen = float(directed) if directed is not None else float(backoff(state))
            return max(chosen, floor)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            _LOGGER.debug("attempt %d failed (%s); retrying in %.2fs", state.attempt_number,
                          exc, state.upcoming_sleep)
            if on_retry is not None:
                on_retry(state)  # the caller logs (sampled) and counts

        return AsyncRetrying(
            sleep=sleep,
            stop=stop_after_attempt(self.max_retries + 1) | stop_before_delay(budget),
            wait=wait,
            retry=retry_if_exception_type(RetryableModelCallError),
            before_sleep=before_sleep,
            reraise=True,
        )
