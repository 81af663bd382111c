"""The shared cooldown, the pacing after it and the per-minute limits of runtime/pacing.py, on a
virtual clock: every wait is recorded and moves the clock, so the expected waits are exact."""

from __future__ import annotations

import asyncio
import time

import pytest

from flink_ml_predict.runtime.limits import OutOfBudget, per_second_limiter
from flink_ml_predict.runtime.metrics import Metrics
from flink_ml_predict.runtime.pacing import SLOWDOWN, Pacer, Ticket
from tests.fakes.throttled_service import VirtualTimeLoop


class VirtualTime:
    """A clock that only moves when someone sleeps: a sleep of d started at t ends at t + d (the
    clock never goes back when sleeps overlap)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        end = self.now + seconds
        await asyncio.sleep(0)
        self.now = max(self.now, end)


def pacer(time_: VirtualTime, **kwargs) -> Pacer:
    return Pacer(clock=time_.clock, sleep=time_.sleep, metrics=Metrics(), **kwargs)


def test_without_a_429_nothing_waits() -> None:
    t = VirtualTime()
    p = pacer(t)

    async def run() -> None:
        for _ in range(50):
            p.settle(await p.acquire(deadline=t.now + 10), ok=True)

    asyncio.run(run())
    assert t.sleeps == [] and p.epoch == 0 and p.interval == 0


def test_a_429_makes_every_request_wait_out_its_retry_after() -> None:
    t = VirtualTime()
    p = pacer(t)

    async def run() -> list[Ticket]:
        throttled = await p.acquire(deadline=t.now + 60)
        p.settle(throttled, throttled=True, retry_after=2.0)
        assert p.cooldown_until == t.now + 2.0
        return [await p.acquire(deadline=t.now + 60)]

    (probe,) = asyncio.run(run())
    assert t.sleeps == [2.0] and probe.probe and probe.epoch == 1


def test_after_the_cooldown_one_probe_goes_and_the_rest_wait_for_its_answer() -> None:
    t = VirtualTime()
    p = pacer(t)
    order: list[str] = []

    async def row(name: str) -> None:
        ticket = await p.acquire(deadline=t.now + 60)
        order.append(f"{name} sent{' (probe)' if ticket.probe else ''}")
        if ticket.probe:
            await asyncio.sleep(0)  # the others are waiting now
            order.append("probe answered")
        p.settle(ticket, ok=True)

    async def run() -> None:
        p.settle(await p.acquire(deadline=t.now + 60), throttled=True, retry_after=1.0)
        await asyncio.gather(*(row(f"r{i}") for i in range(4)))

    asyncio.run(run())
    assert order[:2] == ["r0 sent (probe)", "probe answered"]
    assert sorted(order[2:]) == ["r1 sent", "r2 sent", "r3 sent"]


def test_requests_after_the_probe_are_paced_at_the_pace_the_service_admitted() -> None:
    """10 successes in a round of 0.5 s, then a 429 with Retry-After 2: the pace is 10 requests
    over max(0.5 s, 2 s), one per 0.2 s; the probe has the first slot, the next ones follow."""
    t = VirtualTime()
    p = pacer(t)

    async def run() -> list[float]:
        tickets = [await p.acquire(deadline=t.now + 60) for _ in range(11)]
        t.now += 0.5
        for ticket in tickets[:10]:
            p.settle(ticket, ok=True)
        p.settle(tickets[10], throttled=True, retry_after=2.0)
        probe = await p.acquire(deadline=t.now + 60)
        sent = [t.now]
        p.settle(probe, ok=True)
        for _ in range(3):
            ticket = await p.acquire(deadline=t.now + 60)
            sent.append(t.now)
            p.settle(ticket, ok=True)
        return sent

    sent = asyncio.run(run())
    gaps = [round(b - a, 6) for a, b in zip(sent, sent[1:], strict=False)]
    # Each success shortens the interval by 1/64; a request reserves the slot after its own when
    # it goes, so the shorter interval shows from the slot after next.
    assert gaps == pytest.approx([0.2, 0.2, 0.2 * 63 / 64])


def test_429s_of_requests_already_in_flight_extend_the_cooldown_but_start_no_round() -> None:
    t = VirtualTime()
    p = pacer(t)

    async def run() -> None:
        in_flight = [await p.acquire(deadline=t.now + 60) for _ in range(5)]
        p.settle(in_flight[0], throttled=True, retry_after=1.0)
        for ticket in in_flight[1:4]:
            p.settle(ticket, throttled=True, retry_after=1.0)
        p.settle(in_flight[4], throttled=True, retry_after=3.0)

    asyncio.run(run())
    assert p.epoch == 1 and p.cooldown_until == t.now + 3.0


def test_without_retry_after_the_cooldown_starts_at_the_initial_backoff_and_doubles() -> None:
    t = VirtualTime()
    p = pacer(t, initial_backoff=0.5, max_backoff=1.5)

    async def run() -> None:
        p.settle(await p.acquire(deadline=t.now + 60), throttled=True)
        for _ in range(3):  # each probe is throttled again
            p.settle(await p.acquire(deadline=t.now + 60), throttled=True)
        p.settle(await p.acquire(deadline=t.now + 60), ok=True)

    asyncio.run(run())
    assert t.sleeps == [0.5, 1.0, 1.5, 1.5]


def test_after_a_round_that_admitted_nothing_the_pace_ramps_up() -> None:
    """The first request is throttled (Retry-After 5): no pace is known, so the interval starts
    at 1 s (the cooldown, at most 1 s) and halves with each success (from the slot after next, as
    above) until it is gone."""
    t = VirtualTime()
    p = pacer(t)

    async def run() -> list[float]:
        p.settle(await p.acquire(deadline=t.now + 60), throttled=True, retry_after=5.0)
        sent = []
        for _ in range(14):
            ticket = await p.acquire(deadline=t.now + 60)
            sent.append(t.now)
            p.settle(ticket, ok=True)
        return sent

    sent = asyncio.run(run())
    gaps = [round(b - a, 6) for a, b in zip(sent, sent[1:], strict=False)]
    assert gaps[:5] == [1.0, 1.0, 0.5, 0.25, 0.125]
    assert gaps[-1] == 0 and p.interval == 0


def test_a_cooldown_past_the_deadline_fails_at_once_without_waiting() -> None:
    t = VirtualTime()
    p = pacer(t)

    async def run() -> None:
        p.settle(await p.acquire(deadline=t.now + 60), throttled=True, retry_after=30.0)
        await p.acquire(deadline=t.now + 9)

    with pytest.raises(OutOfBudget, match="cooldown"):
        asyncio.run(run())
    assert t.sleeps == []


def test_a_probe_that_fails_otherwise_or_is_cancelled_hands_the_probe_on() -> None:
    t = VirtualTime()
    p = pacer(t)

    async def run() -> list[bool]:
        p.settle(await p.acquire(deadline=t.now + 60), throttled=True, retry_after=1.0)
        first = await p.acquire(deadline=t.now + 60)
        waiting = asyncio.ensure_future(p.acquire(deadline=t.now + 60))
        await asyncio.sleep(0)
        assert not waiting.done()
        p.settle(first)  # a 500, a timeout or a cancelled row: no verdict
        second = await waiting
        return [first.probe, second.probe]

    assert asyncio.run(run()) == [True, True]


def test_the_time_a_retry_already_waited_counts_against_the_cooldown() -> None:
    """A retry whose own backoff (Retry-After) already covered the cooldown does not wait again."""
    t = VirtualTime()
    p = pacer(t)

    async def run() -> None:
        p.settle(await p.acquire(deadline=t.now + 60), throttled=True, retry_after=2.0)
        await p.acquire(deadline=t.now + 60, not_before=t.now + 2.0)

    asyncio.run(run())
    assert t.sleeps == []


@pytest.mark.parametrize(("per_minute", "capacity", "period"),
                         [(120, 2.0, 1.0), (30, 1.0, 2.0), (6000, 100.0, 1.0), (90, 1.5, 1.0)])
def test_limiters_hold_one_seconds_share(per_minute, capacity, period) -> None:
    limiter = per_second_limiter(per_minute)
    assert (limiter.max_rate, limiter.time_period) == (pytest.approx(capacity),
                                                       pytest.approx(period))


def test_requests_per_minute_spreads_requests_over_each_second() -> None:
    """600 a minute: 10 go at once (a second's share), the next 15 need 1.5 s more (real time:
    aiolimiter runs on the event loop's clock; a limiter can only be slower, never faster)."""
    p = Pacer(requests_per_minute=600)

    async def run() -> tuple[float, float]:
        started = time.monotonic()
        for _ in range(10):
            p.settle(await p.acquire(deadline=started + 60), ok=True)
        burst = time.monotonic() - started
        for _ in range(15):
            p.settle(await p.acquire(deadline=started + 60), ok=True)
        return burst, time.monotonic() - started

    burst, total = asyncio.run(run())
    assert burst < 1.0 and total >= 1.45


def test_tokens_per_minute_takes_a_large_request_over_several_seconds() -> None:
    """600 tokens a minute is 10 a second: a request of 25 tokens (more than a second's share)
    takes 10 now and 15 over the next 1.5 s."""
    p = Pacer(tokens_per_minute=600)

    async def run() -> float:
        started = time.monotonic()
        p.settle(await p.acquire(deadline=started + 60, tokens=25), ok=True)
        return time.monotonic() - started

    assert asyncio.run(run()) >= 1.45


def test_a_limit_that_outlasts_the_deadline_fails_the_request() -> None:
    p = Pacer(requests_per_minute=60)

    async def run() -> None:
        now = time.monotonic()
        await p.acquire(deadline=now + 5)  # the second's share: 1 request
        await p.acquire(deadline=now + 0.2)  # the next one needs 1 s

    with pytest.raises(OutOfBudget, match="requests-per-minute"):
        asyncio.run(run())


# --- on an event loop with a virtual clock (real asyncio sleeps, real concurrency) ------------

def on_virtual_loop(scenario):
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(scenario(loop))
    finally:
        loop.close()


def test_a_cooldown_that_begins_while_rows_wait_for_paced_slots_ends_those_slots() -> None:
    """Ten rows wait for paced slots when one of them gets a 429: after the cooldown the probe
    goes at its end and the next row one interval after the probe -- no slot of the old pace,
    taken by the rows that waited meanwhile, holds them back."""

    async def scenario(loop) -> tuple[list[float], float, float]:
        p = Pacer(clock=loop.time, metrics=Metrics())
        first = [await p.acquire(deadline=loop.time() + 60) for _ in range(11)]
        for ticket in first[:10]:
            p.settle(ticket, ok=True)
        p.settle(first[10], throttled=True, retry_after=2.0)  # paced from now: 10 per 2 s
        sent: list[float] = []
        opened: list[float] = []  # the interval set by each probe's answer

        async def row(index: int) -> None:
            ticket = await p.acquire(deadline=loop.time() + 60)
            sent.append(loop.time())
            await asyncio.sleep(0.01)
            p.settle(ticket, throttled=index == 1, retry_after=1.0 if index == 1 else None,
                     ok=index != 1)
            if ticket.probe:
                opened.append(p.interval)

        rows = []
        for index in range(12):
            rows.append(asyncio.ensure_future(row(index)))
            await asyncio.sleep(0)
        await asyncio.sleep(2.5)  # the probe (2.0), rows at 2.2 and 2.4; the 429 at 2.41
        assert p.epoch == 2
        cooldown_end = p.cooldown_until
        await asyncio.gather(*rows)
        return sent, cooldown_end, opened[-1]

    sent, cooldown_end, interval = on_virtual_loop(scenario)
    assert not [t for t in sent if 2.41 < t < cooldown_end], "a request went during the cooldown"
    after = sorted(t for t in sent if t >= cooldown_end)
    assert after[0] == pytest.approx(cooldown_end)
    assert after[1] == pytest.approx(after[0] + interval, abs=1e-3)


def test_a_retried_row_goes_before_rows_that_came_during_the_cooldown() -> None:
    """Row A gets a 429 (Retry-After 1 s); five rows come during the cooldown; A's retry comes
    last (after its own backoff) but its row is the oldest: it is the probe."""

    async def scenario(loop) -> list[str]:
        p = Pacer(clock=loop.time, metrics=Metrics())
        a_deadline = loop.time() + 60
        p.settle(await p.acquire(deadline=a_deadline), throttled=True, retry_after=1.0)
        order: list[str] = []

        async def row(name: str, deadline: float, delay: float) -> None:
            await asyncio.sleep(delay)
            ticket = await p.acquire(deadline=deadline)
            order.append(name + (" (probe)" if ticket.probe else ""))
            await asyncio.sleep(0.01)
            p.settle(ticket, ok=True)

        await asyncio.gather(*(row(f"r{i}", loop.time() + 61 + i, 0.1 * i) for i in range(5)),
                             row("A", a_deadline, 0.9))
        return order

    order = on_virtual_loop(scenario)
    assert order[0] == "A (probe)" and sorted(order[1:]) == [f"r{i}" for i in range(5)]


def test_a_paced_round_slows_the_pace_a_little_and_one_without_success_doubles_it() -> None:
    """Round 1: 10 successes, then a 429 (Retry-After 2): one request per 0.2 s. Round 2 opens
    without the probe's answer (after its patience of 1 s) and its first paced request gets a
    429: nothing admitted, so the interval doubles. Round 3 (the probe and 3 paced successes,
    each shortening the interval by 1/64) admits 4 requests over 5 s since the 429 that began
    it, one per 1.25 s, slower than its pace: the next round starts at the mean of its first and
    last intervals slowed by SLOWDOWN, no more."""

    async def scenario(loop) -> list[float]:
        p = Pacer(clock=loop.time, metrics=Metrics())
        first = [await p.acquire(deadline=loop.time() + 60) for _ in range(11)]
        for ticket in first[:10]:
            p.settle(ticket, ok=True)
        p.settle(first[10], throttled=True, retry_after=2.0)
        intervals = []
        silent_probe = await p.acquire(deadline=loop.time() + 60)  # never answered
        assert silent_probe.probe
        paced = await p.acquire(deadline=loop.time() + 60)  # after the probe's patience
        intervals.append(p.interval)
        p.settle(paced, throttled=True, retry_after=2.0)
        round_began = loop.time()
        probe = await p.acquire(deadline=loop.time() + 60)
        p.settle(probe, ok=True)
        intervals.append(p.interval)
        for _ in range(3):
            ticket = await p.acquire(deadline=loop.time() + 60)
            p.settle(ticket, ok=True)
        await asyncio.sleep(round_began + 5.0 - loop.time())
        p.settle(await p.acquire(deadline=loop.time() + 60), throttled=True, retry_after=1.0)
        p.settle(await p.acquire(deadline=loop.time() + 60), ok=True)
        intervals.append(p.interval)
        return intervals

    mean = (0.4 + 0.4 * (63 / 64) ** 3) / 2
    assert on_virtual_loop(scenario) == pytest.approx([0.2, 0.4, SLOWDOWN * mean])
