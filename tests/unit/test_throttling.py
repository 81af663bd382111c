"""Throttling end to end at the unit level: the predictor (rows in flight on one event loop, as in
a Flink worker) against the real fake server with an RPM limit. Nothing here is timed: the server's
request log gives when each request arrived, and the assertions are bounds that a loaded machine
cannot break (a client can only be later than it meant to be, never earlier)."""

from __future__ import annotations

import asyncio
import collections
import time

import pytest

from flink_ml_predict.definition import build_spec
from flink_ml_predict.model import CallSettings, Column
from flink_ml_predict.runtime.predictor import Predictor
from tests.conftest import METADATA_COLUMNS, model_options
from tests.fakes.openai_server import Fault
from tests.fakes.ratelimit import RequestRateLimit

METADATA = [Column(name, type_) for name, type_ in METADATA_COLUMNS]
# Waits are checked from the server's request log: a request "started" when the server read it
# and was "answered" just before the server wrote the first byte of its answer, so a client
# cannot have sent it later, or seen its answer earlier, than that.


def make_predictor(server, *, concurrency: int = 10, timeout: float = 180.0, outputs=None,
                   **options: str) -> Predictor:
    spec = build_spec("m", model_options(server.base_url, **options), [Column("input", "STRING")],
                      outputs or [Column("content", "STRING")])
    return Predictor(spec, CallSettings(max_concurrent=concurrency, timeout=timeout))


async def _rows(predictor: Predictor, texts: list[str], concurrency: int) -> list[list[tuple]]:
    """Predicts every text with at most `concurrency` rows in flight (Flink's async capacity)."""
    capacity = asyncio.Semaphore(concurrency)

    async def one(text: str) -> list[tuple]:
        async with capacity:
            return await predictor.predict(text)

    try:
        return await asyncio.gather(*(one(text) for text in texts))
    finally:
        await predictor.aclose()


def run_rows(predictor: Predictor, texts: list[str], concurrency: int) -> list[list[tuple]]:
    return asyncio.run(_rows(predictor, texts, concurrency))


async def until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("header", ["retry_after", "retry_after_ms"])
def test_a_429_holds_every_request_of_the_model_until_its_retry_after(server, header) -> None:
    """Row 0 gets a 429 (1 s); rows 1-9 arrive after it: no request, theirs or row 0's retry,
    reaches the server before the second is over. Then one request goes first and the others
    only after its answer (no herd at the end of the cooldown)."""
    value = "1" if header == "retry_after" else "1000"
    server.script("row-0", [Fault.status_code(429, **{header: value})])
    predictor = make_predictor(server)

    async def run() -> list[list[tuple]]:
        first = asyncio.ensure_future(predictor.predict("row-0"))
        await until(lambda: predictor.metrics.counts["throttled"] == 1)
        rest = await _rows(predictor, [f"row-{i}" for i in range(1, 10)], 10)
        return [await first, *rest]

    rows = asyncio.run(run())
    assert rows == [[(f"row-{i}",)] for i in range(10)]
    assert server.wait_idle()
    throttled, *later = server.requests
    # A loaded machine can see the client's pool close a connection under a request (httpcore:
    # ReadError after the server answered): a connection error, retried like any; the server then
    # sees one request more than there are rows. Row 0's 429 is the other retry.
    extra = predictor.metrics.counts["retries"] - 1
    assert throttled.status == 429 and len(later) == 10 + extra and extra <= 2, [
        (r.status, r.outcome) for r in server.requests]
    assert min(r.started for r in later) >= throttled.answered + 1.0
    probe, *others = sorted(later, key=lambda r: r.started)
    assert all(r.started >= probe.answered for r in others)
    assert predictor.metrics.counts["cooldown-ms"] >= 9 * 900  # every row waited


def test_rows_that_cannot_outwait_the_cooldown_are_labelled_under_ignore(server) -> None:
    """Operator timeout 10 s (row budget 9 s), Retry-After 30 s: the throttled row and every row
    after it end labelled at once; none of them is lost and none reaches the server."""
    server.script("row-0", [Fault.status_code(429, retry_after="30")])
    predictor = make_predictor(server, timeout=10.0, outputs=METADATA,
                               retry_fallback_strategy="IGNORE")

    async def run() -> list[list[tuple]]:
        first = asyncio.ensure_future(predictor.predict("row-0"))
        await until(lambda: predictor.metrics.counts["throttled"] == 1)
        rest = await _rows(predictor, [f"row-{i}" for i in range(1, 5)], 10)
        return [await first, *rest]

    started = time.monotonic()
    rows = asyncio.run(run())
    assert time.monotonic() - started < 9.0  # labelled at once, not at the end of the budget
    assert [len(r) for r in rows] == [1] * 5
    assert rows[0][0][2] == 429 and rows[0][0][1].startswith("HTTP 429")
    for (row,) in rows[1:]:
        assert row[0] is None and row[2] is None
        assert "time budget" in row[1] and "cooldown after a 429" in row[1], row[1]
    assert len(server.requests) == 1
    assert predictor.metrics.counts["rows-failed"] == 5


@pytest.mark.parametrize(("shape", "retry_after", "count_rejected"), [
    ("bucket", "seconds", False),
    ("bucket", None, True),
    ("window", "seconds", False),
])
def test_default_options_against_an_rpm_limited_server(server, shape, retry_after,
                                                       count_rejected) -> None:
    """120 rows, 32 in flight, a server limited to 1200 requests a minute (a bucket of 20 refilled
    at 20 a second, or 5-second windows of 100), no limit set on the client.

    The first 32 requests go together; at most 12 of them get a 429 (32 in flight - 20 admitted).
    From then on the shared cooldown holds the rest and the pacing that follows lets only the
    requests in flight when a 429 comes (about one) and failed probes get one; a round of that
    comes at most every few dozen successes, so 429s stay under 12 + rows / 4 = 42 however slow
    the machine is (per-row retries alone, the behaviour before the shared cooldown, gave 270
    429s and up to 29 attempts a row for 60 rows at 120 a minute). No row needs more than 10
    attempts, and no retry comes sooner than half of retry-initial-backoff (0.5 s) after the
    failure it retries."""
    rows, concurrency = 120, 32
    limit = RequestRateLimit(1200, shape=shape, window=5.0, retry_after=retry_after,
                             count_rejected=count_rejected).install(server)
    predictor = make_predictor(server, concurrency=concurrency)
    texts = [f"row-{i}" for i in range(rows)]
    results = run_rows(predictor, texts, concurrency)
    assert results == [[(text,)] for text in texts]
    assert server.wait_idle()
    requests = server.requests
    assert limit.rejected == sum(1 for r in requests if r.status == 429)
    assert limit.rejected <= (concurrency - 20) + rows // 4, limit.rejected
    by_row = collections.defaultdict(list)
    for r in requests:
        by_row[r.body["messages"][-1]["content"]].append(r)
    assert max(len(attempts) for attempts in by_row.values()) <= 10
    gaps = [b.started - a.answered for attempts in by_row.values()
            for a, b in zip(attempts, attempts[1:], strict=False)]
    assert gaps and min(gaps) >= 0.25
    assert predictor.metrics.counts["throttled"] == limit.rejected


def test_requests_per_minute_keeps_clear_of_an_rpm_limited_server(server) -> None:
    """The same server (1200 a minute) and 'requests-per-minute' = 600: the client never sends
    faster than the server admits, so no request should be refused. The server measures arrivals
    on a thread of this process; a loaded machine can stall it and the client's pacing alike and
    bunch arrivals (at 1000 a minute, 4 of 120 were refused once with three CPU hogs running),
    hence half the server's rate and 'at most 2' rather than 0 (0 in every run here)."""
    rows, concurrency = 80, 32
    limit = RequestRateLimit(1200).install(server)
    predictor = make_predictor(server, concurrency=concurrency, requests_per_minute="600")
    texts = [f"row-{i}" for i in range(rows)]
    started = time.monotonic()
    assert run_rows(predictor, texts, concurrency) == [[(text,)] for text in texts]
    # 600 a minute with a second's share (10) at once: 80 requests need >= 7 s
    assert time.monotonic() - started >= (rows - 600 / 60) * 60 / 600
    assert server.wait_idle()
    assert limit.rejected <= 2
    assert limit.admitted == len(server.requests) - limit.rejected >= rows
    assert predictor.metrics.counts["limit-wait-ms"] > 0


def test_rows_that_cannot_get_a_turn_under_the_limit_are_labelled(server) -> None:
    """'requests-per-minute' = 60 and a row budget of 1.8 s (operator timeout 2.8 s): 1 request
    a second, so of 6 rows sent together only the first two can go in time; the others end
    labelled with the reason, none is lost."""
    predictor = make_predictor(server, timeout=2.8, outputs=METADATA, requests_per_minute="60",
                               retry_fallback_strategy="IGNORE")
    texts = [f"row-{i}" for i in range(6)]
    rows = run_rows(predictor, texts, 6)
    assert [len(r) for r in rows] == [1] * 6
    answered = [r[0] for r in rows if r[0][0] is not None]
    labelled = [r[0] for r in rows if r[0][0] is None]
    assert 1 <= len(answered) <= 2 and len(answered) + len(labelled) == 6
    assert all("requests-per-minute limit" in row[1] for row in labelled)
    assert len(server.requests) == len(answered)


def test_tokens_per_minute_counts_the_prompt_and_the_completion(server) -> None:
    """'tokens-per-minute' = 6000 (100 a second) and 'max-tokens' = 100: each request is estimated
    at its messages (two, of at least 1 token each, plus 4 each) plus 100 completion tokens, so 5
    requests need more than 550 tokens, 100 of them at once: at least 4.5 s."""
    predictor = make_predictor(server, tokens_per_minute="6000", max_tokens="100")
    texts = [f"row-{i}" for i in range(5)]
    started = time.monotonic()
    assert run_rows(predictor, texts, 5) == [[(text,)] for text in texts]
    assert time.monotonic() - started >= 4.5
    assert predictor.metrics.counts["limit-wait-ms"] > 0
