"""Requests in flight, and a gate that holds their answers until the test lets them go.

A request is *in flight* from the moment its body has been read until the first byte of its
answer is about to be written (or its handling ends without an answer). A client therefore never
holds an answer that is still counted, so :attr:`InFlight.max_in_flight` never overstates how
many requests a client had outstanding at once. Waits block on one condition variable.

The gate, for concurrency checks that must not depend on how loaded the machine is::

    server.hold(release_when=lambda s: s.in_flight >= 4 or s.arrived >= 57, linger=0.1)
    ... run the job: each round of answers is held until 4 requests wait together
    assert (server.max_in_flight, server.gate_expired) == (4, 0)

The rule makes the lower bound certain: the job must have 4 requests out at once, or the round
waits until the hold timeout and ``gate_expired`` counts it. An upper bound can only be seen, not
proven: ``linger`` keeps each full round held that much longer, so a client allowed to send more
has that window, every round, to do it (a correct client is never made to fail by it). By hand:
``hold()``, ``wait_for_held(3)``, ``release(1)``, ..., ``release()``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DEFAULT_HOLD_TIMEOUT", "GateState", "InFlight", "ReleaseRule"]

DEFAULT_HOLD_TIMEOUT = 60.0
"""Seconds an answer may wait at the gate; then the gate opens for good (see ``expired``)."""


@dataclass(frozen=True)
class GateState:
    """What a ``release_when`` rule sees (taken under the tracker's lock)."""

    in_flight: int  # requests awaiting their answer, at the gate or not
    held: int  # of those, the ones waiting at the gate
    arrived: int  # requests received since the start (or the last reset)


ReleaseRule = Callable[[GateState], bool]


class InFlight:
    """Counts requests in flight and being handled, and holds answers at a gate."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._in_flight = self._max_in_flight = self._handling = self._arrived = 0
        self._before_gate = 0  # arrived, not yet through the gate (held or on their way to it)
        self._held = 0
        self._holding = self._stopping = False
        self._rule: ReleaseRule | None = None
        self._timeout, self._linger = DEFAULT_HOLD_TIMEOUT, 0.0
        self._release_at: float | None = None  # the rule came true: the round goes at this time
        self._passes = 0  # answers allowed through while holding, not yet used
        self.expired = 0
        """Answers let go because they waited longer than the hold timeout (0 in a good test)."""

    # ---- called by the server's handler threads ------------------------------------------------

    def arrived(self) -> None:
        """A request's body has been read."""
        with self._changed:
            self._in_flight += 1
            self._before_gate += 1
            self._handling += 1
            self._arrived += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            self._apply_rule()
            self._changed.notify_all()

    def answering(self) -> None:
        """The request's answer starts (or its handling ends without one): no longer in flight."""
        with self._changed:
            self._in_flight -= 1
            self._changed.notify_all()

    def done(self) -> None:
        """The request's handling has ended."""
        with self._changed:
            self._handling -= 1
            self._changed.notify_all()

    def pass_gate(self) -> None:
        """Returns at once unless the gate holds; then when released, timed out or stopped."""
        with self._changed:
            self._held += 1
            deadline = time.monotonic() + self._timeout
            try:
                self._apply_rule()
                self._changed.notify_all()
                while self._holding and not self._stopping:
                    now = time.monotonic()
                    if self._release_at is not None and now >= self._release_at:
                        self._release_at, self._passes = None, self._before_gate
                    if self._passes > 0:
                        self._passes -= 1
                        return
                    if now >= deadline:
                        self.expired += 1
                        self._holding = False  # a gate that timed out opens for good
                        return
                    self._changed.wait(min(deadline, self._release_at or deadline) - now)
            finally:
                self._held -= 1
                self._before_gate -= 1
                self._changed.notify_all()

    def stop(self) -> None:
        """The server stops: everything held goes, nothing is held again."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()

    # ---- called by tests ------------------------------------------------------------------------

    def hold(self, release_when: ReleaseRule | None = None,
             timeout: float = DEFAULT_HOLD_TIMEOUT, linger: float = 0.0) -> None:
        """Hold every answer at the gate from now on.

        Args:
            release_when: when this returns True (checked as requests arrive and reach the gate),
                every request not yet through the gate goes (after ``linger``); None: only
                :meth:`release` lets answers go.
            timeout: seconds one answer may wait; past it the gate opens for good and
                :attr:`expired` counts it, so a test whose rule never comes true fails, not hangs.
            linger: seconds a round stays held once the rule came true (requests that arrive
                meanwhile go with it).
        """
        with self._changed:
            self._holding, self._stopping = True, False
            self._rule, self._timeout, self._linger = release_when, timeout, linger
            self._release_at, self._passes = None, 0

    def release(self, count: int | None = None) -> None:
        """Let ``count`` more answers through the gate (held now or arriving later); None: open it."""
        with self._changed:
            if count is None:
                self._holding, self._rule = False, None
            else:
                self._passes += count
            self._changed.notify_all()

    def wait_for_in_flight(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` requests are in flight; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._in_flight >= count, timeout)

    def wait_for_held(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` answers wait at the gate; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._held >= count, timeout)

    def wait_for_arrived(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` requests have arrived; False (and one more ``expired``)
        on timeout."""
        with self._changed:
            if self._changed.wait_for(lambda: self._arrived >= count or self._stopping, timeout):
                return True
            self.expired += 1
            return False

    def wait_idle(self, timeout: float) -> bool:
        """Block until no request is being handled; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._handling == 0, timeout)

    @property
    def in_flight(self) -> int:
        """Requests awaiting their answer now."""
        with self._changed:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The most requests in flight together since the start (or :meth:`reset`)."""
        with self._changed:
            return self._max_in_flight

    @property
    def held(self) -> int:
        """Answers waiting at the gate now."""
        with self._changed:
            return self._held

    def reset(self) -> None:
        """Restart the high-water mark and the arrival count from now."""
        with self._changed:
            self._max_in_flight, self._arrived = self._in_flight, 0

    def _apply_rule(self) -> None:
        """When the rule holds, the round is set to go: every request not yet through the gate
        (the held ones and those on their way to it), ``linger`` seconds from now."""
        if (self._holding and self._rule is not None and self._release_at is None
                and self._before_gate > self._passes
                and self._rule(GateState(self._in_flight, self._held, self._arrived))):
            if self._linger > 0:
                self._release_at = time.monotonic() + self._linger
            else:
                self._passes = self._before_gate
