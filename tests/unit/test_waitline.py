"""runtime/waitline.py: one turn at a time, earliest deadline first, on the real event loop."""

from __future__ import annotations

import asyncio

from flink_ml_predict.runtime.waitline import WaitLine


def test_turns_go_earliest_deadline_first_one_at_a_time() -> None:
    line = WaitLine()
    order: list[float] = []

    async def one(deadline: float) -> None:
        turn = await line.enter(deadline, timeout=10)
        assert turn is not None
        order.append(deadline)
        await asyncio.sleep(0)  # holds the turn across a step of the loop
        assert order[-1] == deadline, "another request got a turn meanwhile"
        line.leave(turn)

    async def run() -> None:
        head = await line.enter(100.0, timeout=10)  # holds the line while the others queue
        assert head is not None
        waiting = [asyncio.ensure_future(one(d)) for d in (30.0, 10.0, 20.0, 10.0)]
        await asyncio.sleep(0)
        assert line.busy and order == []
        line.leave(head)
        await asyncio.gather(*waiting)
        assert not line.busy

    asyncio.run(run())
    assert order == [10.0, 10.0, 20.0, 30.0]


def test_a_request_that_gives_up_or_is_cancelled_is_skipped() -> None:
    line = WaitLine()

    async def run() -> list[str]:
        got: list[str] = []
        head = await line.enter(1.0, timeout=10)
        assert head is not None
        gives_up = await line.enter(2.0, timeout=0)  # its timeout passes before its turn
        cancelled = asyncio.ensure_future(line.enter(3.0, timeout=10))
        later = asyncio.ensure_future(line.enter(4.0, timeout=10))
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.sleep(0)
        line.leave(head)
        turn = await later
        got.append("later" if turn is not None else "none")
        assert turn is not None
        line.leave(turn)
        got.append("gave up" if gives_up is None else "turn")
        return got

    assert asyncio.run(run()) == ["later", "gave up"]


def test_a_rank_goes_before_the_deadline_and_is_asked_at_each_hand_over() -> None:
    demoted = {10.0}
    line = WaitLine(rank=lambda deadline: 1 if deadline in demoted else 0)
    order: list[float] = []

    async def one(deadline: float) -> None:
        turn = await line.enter(deadline, timeout=10)
        assert turn is not None
        order.append(deadline)
        if deadline == 20.0:
            demoted.clear()  # 10 ranks with the rest again: it goes before 30
        line.leave(turn)

    async def run() -> None:
        head = await line.enter(0.0, timeout=10)
        assert head is not None
        waiting = [asyncio.ensure_future(one(d)) for d in (10.0, 20.0, 30.0)]
        await asyncio.sleep(0)
        assert line.earlier_than(25.0) and not line.earlier_than(15.0)  # 20 leads; 10 ranks 1
        line.leave(head)
        await asyncio.gather(*waiting)

    asyncio.run(run())
    assert order == [20.0, 10.0, 30.0]
