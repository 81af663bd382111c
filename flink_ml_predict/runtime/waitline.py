"""The line of requests that wait for a model's cooldown or pace: earliest deadline first.

Only the head of the line waits for the clock (the cooldown's end, the probe's answer, its paced
slot); the others wait for their turn. The head is the request whose row must be done first: a
row retried after a 429 started before the rows that arrived during the cooldown, so it goes
before them and no row collects attempts while newer rows get through. A head that waited hands
its turn on when a request that goes before it came meanwhile (:meth:`WaitLine.earlier_than`).

A ``rank`` function may put some deadlines after the others (the Pacer ranks a row whose probe was
refused after the rest until a probe gets through, so refused probes do not pile up on one row);
it is asked afresh at every hand-over, so a rank that changes takes effect at once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable


class WaitLine:
    """Turns handed out one at a time: lowest (rank, deadline) first, ties first come.

    Args:
        rank: a deadline's rank (default: all 0).

    Example:
        >>> async def one(line: WaitLine, deadline: float) -> None:
        ...     turn = await line.enter(deadline, timeout=10)
        ...     try:
        ...         pass  # wait for the clock, then send
        ...     finally:
        ...         line.leave(turn)
    """

    def __init__(self, rank: Callable[[float], int] = lambda deadline: 0) -> None:
        self._rank = rank
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._head: asyncio.Future[None] | None = None

    @property
    def busy(self) -> bool:
        """Whether a request holds the turn or waits for it."""
        return self._head is not None or bool(self._waiting)

    async def enter(self, deadline: float, timeout: float) -> asyncio.Future[None] | None:
        """Waits for this request's turn; None when ``timeout`` seconds pass first."""
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((deadline, next(self._order), turn))
        self._hand_on()
        try:
            # Shielded: a timeout must not cancel the turn, which may have come meanwhile.
            await asyncio.wait_for(asyncio.shield(turn), max(timeout, 0.0))
        except asyncio.TimeoutError:
            self.leave(turn)
            return None
        except asyncio.CancelledError:
            self.leave(turn)
            raise
        return turn

    def earlier_than(self, deadline: float) -> bool:
        """Whether a request that goes before one with ``deadline`` waits for the turn."""
        first = self._first()
        return first is not None and self._key(first) < (self._rank(deadline), deadline)

    def leave(self, turn: asyncio.Future[None]) -> None:
        """Gives up a turn (taken or not); the next request in line gets it."""
        if turn is self._head:
            self._head = None
        else:
            self._waiting = [entry for entry in self._waiting if entry[2] is not turn]
        self._hand_on()

    def _key(self, entry: tuple[float, int, asyncio.Future[None]]) -> tuple[int, float, int]:
        return self._rank(entry[0]), entry[0], entry[1]

    def _first(self) -> tuple[float, int, asyncio.Future[None]] | None:
        return min(self._waiting, key=self._key, default=None)

    def _hand_on(self) -> None:
        if self._head is None:
            first = self._first()
            if first is not None:
                self._waiting.remove(first)
                first[2].set_result(None)
                self._head = first[2]
