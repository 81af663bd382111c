"""The retries, shared cooldown and pacing together, against rate-limited services, in virtual
time (tests/fakes/throttled_service.py: the real CallPipeline, the fake server's rate limit, the
Flink job's request slots and row budget). Nothing here depends on the machine: the clock is
virtual and the jitter seeded, so each case runs the same every time, in a fraction of a second.

Issue 9's case: default options (no client limit) against 120 requests a minute, 300 rows, 16 in
flight. The pacing before this file took 400 requests, 100 x 429, up to 13 attempts for one row
and 0.9 rows/s over HTTP (bench/suite.py --full); this simulation of it gave 399 / 99 / 4 / 0.94
(10 of these 15 cases fail with it).
"""

from __future__ import annotations

import pytest

from tests.fakes.throttled_service import simulate

ROWS = 300
LIMIT_PER_S = 2.0  # 120 a minute
HALF_INITIAL_BACKOFF_S = 0.25  # retry-initial-backoff is 0.5 s by default


@pytest.mark.parametrize("retry_after", ["seconds", "ms", None])
@pytest.mark.parametrize(("concurrency", "latency"), [(16, 0.02), (64, 0.02), (64, 1.0)])
def test_default_options_under_a_per_second_limit_no_storm_no_row_above_ten_attempts(
        retry_after, concurrency, latency) -> None:
    """A token bucket of 2 a second (DashScope and OpenAI enforce per-minute limits over
    seconds), answering 429 with Retry-After, retry-after-ms or no header."""
    out = simulate(rows=ROWS, concurrency=concurrency, latency=latency, rpm=120,
                   shape="bucket", retry_after=retry_after)
    assert out.failed == [] and len(out.sent) == ROWS
    assert out.most_attempts <= 10
    assert out.shortest_retry_gap() >= HALF_INITIAL_BACKOFF_S
    # After the opening burst (all slots at once: nothing is known before the first 429), a 429
    # is the probe of a pace a little too fast: about one a cooldown, one per ~5 rows at most.
    assert out.cooldowns <= ROWS / 5
    assert out.later_429s() <= 1.5 * out.cooldowns
    # Close to the limit: the cooldowns and the pace's margin cost little.
    assert ROWS / out.seconds >= 0.75 * LIMIT_PER_S


@pytest.mark.parametrize("retry_after", ["seconds", None])
def test_default_options_under_a_fixed_minute_window_no_row_above_ten_attempts(
        retry_after) -> None:
    """A simple mock's fixed windows: 120 at the start of each minute, then 429 until the next
    (with the wait as Retry-After, or no header: cooldowns of 0.5 s doubling to 8 s)."""
    out = simulate(rows=ROWS, concurrency=16, rpm=120, shape="window", retry_after=retry_after)
    assert out.failed == [] and len(out.sent) == ROWS
    assert out.most_attempts <= 10
    assert out.shortest_retry_gap() >= HALF_INITIAL_BACKOFF_S
    assert out.throttled <= 0.2 * out.requests


def test_refused_probes_are_spread_over_the_rows() -> None:
    """Without Retry-After a minute's window refuses about ten probes in a row; the oldest row
    would collect them all (earliest deadline first); a row whose probe was refused waits behind
    the others until a probe gets through."""
    out = simulate(rows=ROWS, concurrency=16, rpm=60, shape="window", retry_after=None)
    assert out.cooldowns >= 20  # many refused probes
    assert out.failed == [] and out.most_attempts <= 4


def test_with_requests_per_minute_at_the_limit_nearly_no_429() -> None:
    out = simulate(rows=ROWS, concurrency=16, rpm=120, requests_per_minute="120")
    assert out.failed == [] and out.throttled <= 2 and out.most_attempts <= 2
    assert ROWS / out.seconds >= 0.9 * LIMIT_PER_S


def test_random_429s_of_a_service_not_at_its_limit_slow_the_pace_little() -> None:
    """10% of answers are 429 whatever the pace (the chaos mix's share; half with Retry-After
    1 s): every row is answered and the pace does not spiral down to a crawl, though each such
    429 holds every request for its cooldown."""
    out = simulate(rows=1000, concurrency=64, latency=0.1, random_429=0.1)
    assert out.failed == [] and len(out.sent) == 1000
    assert out.most_attempts <= 10
    assert 1000 / out.seconds >= 8.0


def test_a_high_limit_is_not_stormed() -> None:
    """6,000 a minute (100 a second), 256 in flight, answers in 100 ms: the pace after a cooldown
    grows per answer but at most e-fold in 2 s, so a fast service does not race it to a burst of
    every slot at the next crossing (one 429 a row without the cap)."""
    out = simulate(rows=1000, concurrency=256, latency=0.1, rpm=6000)
    assert out.failed == []
    assert out.later_429s() <= 0.1 * 1000
    assert 1000 / out.seconds >= 0.85 * 100
