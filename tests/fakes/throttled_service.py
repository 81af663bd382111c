"""A rate-limited model service in virtual time, for the package's retries, shared cooldown and
pacing: minutes of throttling in a fraction of a second, the same run every time.

:func:`simulate` sends rows through the real
:class:`~flink_ml_predict.runtime.pipeline.CallPipeline` (tenacity's retries, the Pacer's cooldown,
probe and pacing, the limiters); what it sends to is :class:`~tests.fakes.ratelimit.RequestRateLimit`
(a token bucket or fixed windows, answering 429 with Retry-After in seconds, retry-after-ms or no
header) behind a latency that varies by up to +-50% (seeded). Rows hold one of ``concurrency``
request slots from their first attempt to their answer, as in the Flink job
(max-concurrent-operations), with the budget a Flink row has. The event loop's clock is virtual:
it jumps to the next timer whenever nothing is ready, so waits cost no real time and no machine
load can change the outcome. The HTTP path is the fake server's (tests/unit/test_throttling.py,
bench/suite.py's throttled section); this is the policy's.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import selectors
import time
import types
import unittest.mock
from dataclasses import dataclass, field
from typing import Any

import tenacity

from flink_ml_predict.definition import build_spec
from flink_ml_predict.errors import ModelCallError, RetryableModelCallError
from flink_ml_predict.model import CallSettings, Column
from flink_ml_predict.runtime import pacing as pacing_module
from flink_ml_predict.runtime import pipeline as pipeline_module
from flink_ml_predict.runtime.metrics import Metrics
from flink_ml_predict.runtime.pipeline import CallPipeline
from flink_ml_predict.runtime.responses import ChatAnswer, Choice, Usage
from tests.fakes.faults import Fault
from tests.fakes.ratelimit import RequestRateLimit

__all__ = ["Outcome", "VirtualTimeLoop", "simulate"]


TICK_S = 1e-6
"""Virtual time that each turn of the event loop takes (as real time passes while code runs; a
library that reschedules a timer for 'now' until the clock moves, as aiolimiter does, needs it)."""


class _InstantSelector(selectors.DefaultSelector):
    """Never blocks: when nothing is ready, moves the loop's virtual clock to the next timer."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if not ready:
            if timeout is None:
                raise RuntimeError("nothing ready and no timer: the simulation is stuck")
            self.now += timeout
        self.now += TICK_S
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock is virtual (see :class:`_InstantSelector`)."""

    def __init__(self) -> None:
        self._instant = _InstantSelector()
        super().__init__(self._instant)

    def time(self) -> float:
        return self._instant.now


@dataclass
class Outcome:
    """What one simulated run did."""

    seconds: float = 0.0
    sent: dict[int, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    """Row -> when each of its requests was sent."""
    throttled: int = 0
    answers: list[tuple[float, float, bool]] = field(default_factory=list)
    """(when it was sent, when answered, whether with a 429) of every request, in answer order."""
    cooldowns: int = 0
    """Cooldowns the model's Pacer began (429s of requests sent before one began start none)."""
    failed: list[str] = field(default_factory=list)
    decisions: list[tuple[float, bool]] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(len(times) for times in self.sent.values())

    @property
    def most_attempts(self) -> int:
        """The most requests one row sent."""
        return max((len(times) for times in self.sent.values()), default=0)

    def later_429s(self) -> int:
        """429s of requests sent after the first 429 was answered (the opening burst left out:
        nothing is known before it)."""
        first = next((answered for _, answered, throttled in self.answers if throttled), None)
        return sum(1 for sent, _, throttled in self.answers
                   if throttled and first is not None and sent > first)

    def shortest_retry_gap(self) -> float:
        """The shortest time between two requests of one row (inf when none was retried)."""
        return min((b - a for times in self.sent.values() for a, b in zip(times, times[1:], strict=False)),
                   default=float("inf"))


class RandomRefusals:
    """A fault source refusing ``share`` of requests with 429 at random (seeded), half with
    Retry-After: 1; ``decisions`` as RequestRateLimit's."""

    def __init__(self, share: float, seed: int, clock: Any) -> None:
        self.share = share
        self._random = random.Random(seed)
        self._clock = clock
        self.decisions: list[tuple[float, bool]] = []

    def __call__(self, request: Any) -> Fault | None:
        draw = self._random.random()
        self.decisions.append((self._clock(), draw >= self.share))
        if draw >= self.share:
            return None
        return Fault.status_code(429, retry_after="1" if draw < self.share / 2 else None)


class _Request:
    path = "/v1/chat/completions"


def simulate(*, rows: int = 300, concurrency: int = 16, rpm: float = 120.0,
             shape: str = "bucket", retry_after: str | None = "seconds",
             latency: float = 0.02, timeout: float = 180.0, seed: int = 1,
             random_429: float = 0.0, **options: str) -> Outcome:
    """One run in virtual time; ``options`` are extra model options ('_' for '-').

    ``random_429`` > 0: instead of the rate limit, that share of requests is refused at random
    whatever the pace (half with Retry-After: 1, half without), as in bench/chaos.py's mix.
    """
    loop = VirtualTimeLoop()
    # The clock of the pipeline's deadlines, the Pacer's and tenacity's is the loop's (for these
    # modules only: other threads of the process keep the real one).
    clock = types.ModuleType("time")
    clock.__dict__.update(time.__dict__)
    clock.monotonic = loop.time  # type: ignore[attr-defined]
    state = random.getstate()
    random.seed(seed)  # tenacity's jitter
    try:
        with contextlib.ExitStack() as stack:
            for module in (pipeline_module, pacing_module, tenacity):
                stack.enter_context(unittest.mock.patch.object(module, "time", clock))
            return loop.run_until_complete(_run(loop, rows, concurrency, rpm, shape,
                                                retry_after, latency, timeout, seed,
                                                random_429, options))
    finally:
        random.setstate(state)
        loop.close()


async def _run(loop: VirtualTimeLoop, rows: int, concurrency: int, rpm: float, shape: str,
               retry_after: str | None, latency: float, timeout: float, seed: int,
               random_429: float, options: dict[str, str]) -> Outcome:
    entries = {"provider": "openai", "endpoint": "http://127.0.0.1:9/v1", "api-key": "sim",
               "model": "sim", **{k.replace("_", "-"): v for k, v in options.items()}}
    spec = build_spec("m", entries, [Column("input", "STRING")], [Column("content", "STRING")])
    settings = CallSettings(max_concurrent=concurrency, timeout=timeout)
    pipeline = CallPipeline(spec, settings, metrics=Metrics())
    limit: Any = (RandomRefusals(random_429, seed, loop.time) if random_429 else
                  RequestRateLimit(rpm, shape=shape, retry_after=retry_after, clock=loop.time))
    outcome = Outcome(decisions=limit.decisions)
    slots = asyncio.Semaphore(concurrency)
    jitter = random.Random(seed)

    async def row(index: int) -> None:
        async with slots:
            async def send(_client: Any, _timeout: float) -> Any:
                sent = loop.time()
                outcome.sent[index].append(sent)
                # Each half of the latency varies by up to +-50%: requests cross on the way.
                await asyncio.sleep(latency / 2 * jitter.uniform(0.5, 1.5))
                fault = limit(_Request())  # type: ignore[arg-type]
                await asyncio.sleep(latency / 2 * jitter.uniform(0.5, 1.5))
                outcome.answers.append((sent, loop.time(), fault is not None))
                if fault is not None:
                    outcome.throttled += 1
                    seconds = (float(fault.retry_after) if fault.retry_after else
                               float(fault.retry_after_ms) / 1000 if fault.retry_after_ms else
                               None)
                    raise RetryableModelCallError("HTTP 429: rate limit", status=429,
                                                  retry_after=seconds)
                return _ANSWER

            try:
                await pipeline.call(send, loop.time() + settings.row_budget)
            except ModelCallError as exc:
                outcome.failed.append(f"row {index}: {exc}")

    started = loop.time()
    await asyncio.gather(*(row(i) for i in range(rows)))
    outcome.seconds = loop.time() - started
    outcome.cooldowns = pipeline.pacer.epoch
    await pipeline.aclose()
    return outcome


_ANSWER = ChatAnswer((Choice("ok"),), Usage())
