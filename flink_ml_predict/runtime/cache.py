"""Response cache and in-flight dedup of one model function in one worker (``'cache' = 'true'``).

Identical requests (the same model function, so the same model and parameters, and the same input:
a chat's messages, an embedding's text) share one call while it is in flight, and a successful
answer is kept for later rows, at most ``cache-max-entries`` of them (least recently used go
first). Failures are never kept: a failed shared call fails every row waiting for it with the same
error (each row then follows its own strategy), and the next identical row calls again.

What is kept is the raw answer (a chat completion before a structured answer is validated, an
embedding vector), so each row parses its own copy. With ``n`` > 1 or a non-zero temperature a
cached answer repeats the same sample(s); use the cache for deterministic calls.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from functools import partial
from typing import Generic, TypeVar

from .metrics import Metrics

V = TypeVar("V")


class ResponseCache(Generic[V]):
    """A bounded LRU of successful answers plus the calls in flight, keyed by request.

    Create and use it on one event loop.

    Args:
        max_entries: most answers kept.
        metrics: counts cache-hits (rows answered without a call of their own).

    Example:
        >>> cache: ResponseCache[str] = ResponseCache(100)
        >>> async def answer() -> str:
        ...     return "hello"
        >>> asyncio.run(cache.get("key", answer))
        ('hello', False)
    """

    def __init__(self, max_entries: int, metrics: Metrics | None = None) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._metrics = metrics or Metrics()
        self._entries: OrderedDict[Hashable, V] = OrderedDict()
        self._calls: dict[Hashable, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    async def get(self, key: Hashable, call: Callable[[], Awaitable[V]]) -> tuple[V, bool]:
        """The answer for ``key``, and whether it was shared (kept, or another row's call).

        Args:
            key: identifies the request.
            call: makes the request when no answer is kept and none is in flight.

        Raises:
            Exception: whatever the call raised (the same error for every row sharing it).
        """
        if key in self._entries:
            self._entries.move_to_end(key)
            self._metrics.inc("cache-hits")
            return self._entries[key], True
        pending = self._calls.get(key)
        if pending is not None:
            self._metrics.inc("cache-hits")
            return await asyncio.shield(pending), True
        task = asyncio.ensure_future(call())
        self._calls[key] = task
        task.add_done_callback(partial(self._settled, key))
        # Shielded: a row that is cancelled does not cancel the call others wait for.
        return await asyncio.shield(task), False

    def _settled(self, key: Hashable, task: asyncio.Future[V]) -> None:
        if self._calls.get(key) is task:
            del self._calls[key]
        if task.cancelled() or task.exception() is not None:
            return  # failures are never kept
        self._entries[key] = task.result()
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def discard(self, key: Hashable) -> None:
        """Forgets a kept answer (one that turned out unusable, e.g. an invalid structured
        answer), so the next identical row asks again."""
        self._entries.pop(key, None)

    async def aclose(self) -> None:
        """Cancels the calls in flight."""
        calls = list(self._calls.values())
        for call in calls:
            call.cancel()
        if calls:
            await asyncio.gather(*calls, return_exceptions=True)
