"""Client-side limits and the shared cooldown of one model function in one worker.

A :class:`Pacer` stands in front of every request of one model function (one per parallel
instance of the ML_PREDICT operator, shared by all its rows in flight), retries included:

* **Shared cooldown.** A 429 starts a cooldown that every request of the model waits out, not
  only the row that got it: the server's ``retry-after-ms`` / ``Retry-After``, or without one
  ``retry-initial-backoff`` doubling per throttled round (at most ``retry-max-backoff``).
* **Gradual release.** When the cooldown ends one request goes first (the probe) and the others
  wait for its answer, or for a second: a limiter refuses at once, so a probe not refused by then
  got through. Then they start one at a time at an adapted interval (``_adapted_interval``: the
  pace the round before admitted, slowed towards what it admitted with its cooldown; each success
  shortens it by 1/64, at most e-fold in 2 s; below 1 ms pacing stops). A 429 of a request
  already in flight when the cooldown began may extend it but starts no new round.
* **Oldest first.** Requests that must wait queue in a :class:`~.waitline.WaitLine`, earliest
  deadline first: a row retried after a 429 goes before rows that came during the cooldown, so
  no row collects attempts while newer rows get through; a row whose probe was refused goes after
  the others until a probe gets through. Only the head of the line waits for the clock; a
  cooldown that begins while requests wait for paced slots ends those slots.
* **Limits.** ``requests-per-minute`` and ``tokens-per-minute`` (:mod:`.limits`), after the
  cooldown.

Every wait is bounded by the row's deadline (its time budget inside Flink's operator timeout): a
cooldown or pacing slot that ends after it raises :class:`OutOfBudget` at once, a limiter wait when
the deadline comes, and the row follows its strategy with that error.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .limits import MinuteLimits, OutOfBudget
from .metrics import Metrics
from .waitline import WaitLine

_LOGGER = logging.getLogger(__name__)

ADAPT_SPEEDUP = 1 / 64
"""Fraction by which each success shortens the adapted interval."""
PACE_GROWTH_S = 2.0
"""... but the pace grows by at most a factor e every this many seconds after a cooldown: at 100
answers a second 1/64 per answer would be e-fold in 0.64 s, a burst of 429s at the next crossing."""
SLOWDOWN = 1.05
"""A round ended by a 429 slows the pace by at most this factor (towards what it admitted)."""
MIN_INTERVAL_S = 0.001
"""An adapted interval below this is dropped: the requests go unpaced again."""
PROBE_PATIENCE_S = 1.0
"""How long the others wait for the probe's answer before they follow anyway."""
RAMP_START_S = 1.0
"""Longest first interval of a ramp up (after a round that admitted nothing)."""
RATE_WINDOW_S = 60.0
"""A round longer than this measures its pace over about its last half (a recent pace)."""


COOLDOWN = "the model's cooldown after a 429"
PROBE = "the answer of the first request after the model's cooldown"
PACED = "its turn among the requests paced after a 429"


@dataclass(frozen=True)
class Ticket:
    """A request's permission to go: the cooldown round it was sent in, and whether it is the
    probe of that round."""

    epoch: int
    probe: bool = False
    deadline: float = 0.0
    """The row's deadline (which row a refused probe was)."""


class Pacer:
    """The shared cooldown, the pacing after it, and the per-minute limits of one model function.

    Create it on the event loop that uses it (one per worker and model function).

    Args:
        requests_per_minute: the 'requests-per-minute' limit (None: none).
        tokens_per_minute: the 'tokens-per-minute' limit of estimated tokens (None: none).
        initial_backoff: the cooldown after a 429 without Retry-After, doubling per round.
        max_backoff: the longest such cooldown.
        metrics: counts throttled, cooldown-ms and limit-wait-ms.
        clock: monotonic seconds (default time.monotonic; tests inject a virtual clock).
        sleep: the coroutine used to wait (tests inject a recorder).
        name: the model's name, for log lines.

    Example:
        >>> pacer = Pacer(requests_per_minute=600)
        >>> async def call():
        ...     ticket = await pacer.acquire(deadline=time.monotonic() + 10)
        ...     pacer.settle(ticket, ok=True)
        >>> asyncio.run(call())
    """

    def __init__(self, *, requests_per_minute: int | None = None,
                 tokens_per_minute: int | None = None, initial_backoff: float = 0.5,
                 max_backoff: float = 8.0, metrics: Metrics | None = None,
                 clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 name: str = "model") -> None:
        self._initial = initial_backoff
        self._max = max_backoff
        self._metrics = metrics or Metrics()
        self._clock = clock or time.monotonic
        self._limits = MinuteLimits(requests_per_minute, tokens_per_minute, self._metrics,
                                    self._clock)
        self._sleep = sleep
        self._name = name
        self._until = 0.0  # end of the cooldown
        self._epoch = 0  # the round: +1 at each cooldown
        self._strikes = 0  # rounds ended by a 429 since the last success
        self._needs_probe = False
        self._probe: asyncio.Future[None] | None = None  # the unanswered probe of the round
        self._probe_epoch = -1
        self._probe_sent = 0.0
        self._interval = 0.0  # adapted spacing of request starts (0: not paced)
        self._next_start = 0.0
        self._refused_probes: set[float] = set()  # deadlines of rows whose probe got a 429
        self._line = WaitLine(self._rank)
        self._round_start: float | None = None
        self._round_ok = 0  # successes of requests sent in this round
        self._closed_ok = 0  # ... in the round the last 429 ended
        self._closed_span = 0.0  # that round's time, its cooldown included
        self._closed_sending = 0.0  # ... from its probe on (at least the new cooldown)
        self._closed_interval = 0.0  # the interval in force when it ended
        self._closed_opened = 0.0  # ... and when it began
        self._ramping = False
        self._opened_interval = 0.0  # the interval the round opened with
        self._rounds = 0

    # --- state, for metrics and tests ---------------------------------------------------------

    @property
    def cooldown_until(self) -> float:
        """When the current cooldown ends (clock seconds; in the past when there is none)."""
        return self._until

    @property
    def interval(self) -> float:
        """The adapted spacing of request starts in seconds (0: not paced)."""
        return self._interval

    @property
    def epoch(self) -> int:
        """How many cooldowns have begun."""
        return self._epoch

    # --- before a request ---------------------------------------------------------------------

    async def acquire(self, deadline: float, tokens: int = 0, not_before: float = 0.0) -> Ticket:
        """Waits until the request may go; returns its ticket for :meth:`settle`.

        Args:
            deadline: clock time by which the row must be done.
            tokens: the request's estimated tokens (for 'tokens-per-minute').
            not_before: clock time until which the caller has already waited (a retry's own
                backoff), so a cooldown that ended meanwhile is not waited for again.

        Raises:
            OutOfBudget: the cooldown, pacing or a limit would hold the request past ``deadline``.
        """
        while True:
            now = self._clock()
            if (now < self._until or self._needs_probe or self._probe is not None
                    or self._interval or self._line.busy):
                ticket = await self._turn(deadline, not_before)
            else:
                ticket = self._sent(now, deadline=deadline)
            if not self._limits.active:
                return ticket
            await self._limits.take(tokens, deadline)
            if ticket.epoch == self._epoch:
                return ticket
            # A cooldown began while this request waited for a limit: wait for it like the rest.

    async def _turn(self, deadline: float, not_before: float) -> Ticket:
        """Waits in the line, then (as its head) for the cooldown, the probe's answer or a paced
        slot, whichever holds the model then; returns the request's ticket."""
        started = self._clock()
        turn = await self._line.enter(deadline, deadline - started)
        try:
            if turn is None:
                raise OutOfBudget(self._holding())
            while True:
                if self._line.earlier_than(deadline):  # e.g. an older row's retry came
                    self._line.leave(turn)
                    turn = await self._line.enter(deadline, deadline - self._clock())
                    if turn is None:
                        raise OutOfBudget(self._holding())
                now = max(self._clock(), not_before)
                if now < self._until:
                    if self._until > deadline:
                        raise OutOfBudget(COOLDOWN)
                    not_before = self._until
                    await self._sleep(self._until - now)
                    continue
                if self._probe is not None:
                    await self._await_probe(deadline)
                    continue
                if self._needs_probe:
                    self._needs_probe = False
                    self._probe = asyncio.get_running_loop().create_future()
                    self._probe_epoch, self._probe_sent = self._epoch, now
                    return self._sent(now, probe=True, deadline=deadline)
                if self._interval and self._next_start > now:
                    if self._next_start > deadline:
                        raise OutOfBudget(PACED)
                    not_before = self._next_start
                    await self._sleep(self._next_start - now)
                    continue  # a cooldown may have begun, the pace may have changed
                if self._interval:
                    self._next_start = now + self._interval
                return self._sent(now, deadline=deadline)
        finally:
            if turn is not None:
                self._line.leave(turn)
            self._waited(max(self._clock(), not_before) - started)

    def _rank(self, deadline: float) -> int:
        """A row whose probe was refused goes after the others until a probe gets through
        (refused probes do not pile up on the oldest row)."""
        return 1 if deadline in self._refused_probes else 0

    def _holding(self) -> str:
        """What holds the requests of the model now (for a row whose budget ran out in line)."""
        if self._clock() < self._until:
            return COOLDOWN
        return PROBE if self._probe is not None else PACED

    def _sent(self, now: float, probe: bool = False, deadline: float = 0.0) -> Ticket:
        """A request of the current round goes."""
        if self._round_start is None:
            self._round_start = now
        return Ticket(self._epoch, probe, deadline)

    async def _await_probe(self, deadline: float) -> None:
        probe = self._probe
        assert probe is not None
        started = self._clock()
        remaining = deadline - started
        patience = max(self._probe_sent + PROBE_PATIENCE_S - started, 0.0)
        if remaining <= 0:
            raise OutOfBudget(PROBE)
        try:
            await asyncio.wait_for(asyncio.shield(probe), min(remaining, patience))
        except asyncio.TimeoutError:
            if remaining <= patience:
                raise OutOfBudget(PROBE) from None
            if self._probe is probe:  # not refused at once: it got through the service's limiter
                self._open()

    def _open(self) -> None:
        """The probe got through: the others follow at the adapted interval."""
        probe, self._probe = self._probe, None
        self._refused_probes.clear()
        self._interval = self._opened_interval = self._adapted_interval()
        self._next_start = self._probe_sent + self._interval  # the probe took the first slot
        if probe is not None and not probe.done():
            probe.set_result(None)

    def _waited(self, seconds: float) -> None:
        self._metrics.inc("cooldown-ms", int(seconds * 1000))

    # --- after a request ----------------------------------------------------------------------

    def settle(self, ticket: Ticket, *, ok: bool = False, throttled: bool = False,
               retry_after: float | None = None) -> None:
        """Records a request's outcome: a success, a 429 (``throttled``, with the server's
        delay), or neither (another failure, or the request was cancelled)."""
        now = self._clock()
        unanswered_probe = (ticket.probe and self._probe is not None
                            and ticket.epoch == self._probe_epoch)
        if throttled:
            self._throttled(ticket, retry_after, now)
        elif ok:
            self._succeeded(ticket, now)
        if unanswered_probe:
            if ok:
                self._open()
                return
            probe, self._probe = self._probe, None
            if not throttled:
                self._needs_probe = True  # no verdict: the next request probes
            assert probe is not None
            probe.set_result(None)

    def _throttled(self, ticket: Ticket, retry_after: float | None, now: float) -> None:
        self._metrics.inc("throttled")
        if ticket.epoch != self._epoch:  # sent before the current cooldown began
            if retry_after is not None:
                self._until = max(self._until, now + retry_after)
            return
        delay = retry_after if retry_after is not None else min(
            self._max, self._initial * 2 ** self._strikes)
        self._strikes += 1
        if ticket.probe:
            self._refused_probes.add(ticket.deadline)
        else:
            # A round that sent requests ends and tells the pace: what it admitted over its
            # time, from the 429 before it (so its cooldown counts). A probe throttled alone says
            # the cooldown was too short, nothing about the pace: its round goes on.
            start = self._round_start if self._round_start is not None else now
            self._closed_interval, self._closed_opened = self._interval, self._opened_interval
            self._closed_span = max(now - start, delay)
            self._closed_sending = max(now - max(start, self._probe_sent), delay)
            self._closed_ok = self._round_ok
            self._round_ok = 0
            self._round_start = now
        self._epoch += 1
        self._until = max(self._until, now + delay)
        self._needs_probe = True
        self._rounds += 1
        if self._rounds <= 10 or self._rounds % 100 == 0:
            _LOGGER.info("model %s: 429 (cooldown %d); every request of the model waits %.2fs, "
                         "then one request probes and the rest follow paced", self._name,
                         self._rounds, delay)

    def _succeeded(self, ticket: Ticket, now: float) -> None:
        self._strikes = 0
        if ticket.epoch == self._epoch:
            self._round_ok += 1
            start = self._round_start
            if start is not None and now - start > RATE_WINDOW_S:  # keep the pace recent
                self._round_ok = round(self._round_ok * RATE_WINDOW_S / 2 / (now - start))
                self._round_start = now - RATE_WINDOW_S / 2
        elif ticket.epoch == self._epoch - 1:
            self._closed_ok += 1  # answers of the round that ended are still arriving
        if not ticket.probe and self._interval and ticket.epoch == self._epoch:
            if self._ramping:
                self._interval *= 0.5
            else:  # however fast answers come, at most e-fold in PACE_GROWTH_S
                self._interval = max(self._interval * (1 - ADAPT_SPEEDUP), self._opened_interval
                                     * math.exp((self._probe_sent - now) / PACE_GROWTH_S))
            if self._interval < MIN_INTERVAL_S:
                self._interval = 0.0

    def _adapted_interval(self) -> float:
        """Spacing after a cooldown, from the round the 429 ended (at most ~1 min of it).

        Unpaced, the pace it admitted: successes over its time from its probe (at least the new
        cooldown). Paced, the mean of its first and last intervals, slowed towards what it
        admitted over its whole time, its cooldown included, by at most ``SLOWDOWN``: a limit
        that refills steadily is left room to refill, while random 429s of a service that is
        not at its limit slow little. A paced round that admitted nothing doubles its interval;
        an unpaced one knows no pace: the interval starts at its time (at most 1 s) and halves
        with each success.
        """
        ok = self._closed_ok
        self._ramping = not self._closed_interval and ok == 0
        if not self._closed_interval:
            interval = self._closed_sending / ok if ok else min(self._closed_sending, RAMP_START_S)
        elif not ok:
            interval = 2 * self._closed_interval
        else:
            pace = (self._closed_opened + self._closed_interval) / 2
            interval = max(pace, min(self._closed_span / ok, SLOWDOWN * pace))
        return interval if interval >= MIN_INTERVAL_S else 0.0
