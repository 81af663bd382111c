"""Request slots: PyFlink's ordered queue holds max-concurrent-operations x ORDERED_QUEUE_FACTOR
rows, the predictor lets max-concurrent-operations of them have requests out (real HTTP server)."""

from __future__ import annotations

import asyncio

from flink_ml_predict.definition import build_spec
from flink_ml_predict.model import ORDERED_QUEUE_FACTOR, CallSettings, Column
from flink_ml_predict.runtime.predictor import Predictor
from tests.conftest import METADATA_COLUMNS, model_options

ROWS = 24
SLOTS = 3


def make_predictor(server, settings: CallSettings, **options: str) -> Predictor:
    outputs = [Column(name, type_) for name, type_ in METADATA_COLUMNS]
    spec = build_spec("m", model_options(server.base_url, **options), [Column("input", "STRING")],
                      outputs)
    return Predictor(spec, settings)


def test_rows_beyond_the_slots_wait_for_a_free_one(server) -> None:
    """24 rows handed over at once (as PyFlink's queue of 3 x 8 would): exactly 3 requests out
    together. The gate holds each round until 3 wait (the lower bound) and 0.1 s longer (the
    window in which a fourth would be seen)."""
    predictor = make_predictor(server, CallSettings(max_concurrent=SLOTS,
                                                    queue_factor=ORDERED_QUEUE_FACTOR))
    server.hold(release_when=lambda s: s.in_flight >= SLOTS or s.arrived > ROWS - SLOTS,
                linger=0.1)

    async def run():
        try:
            return await asyncio.gather(*(predictor.predict(f"t{i}") for i in range(ROWS)))
        finally:
            await predictor.aclose()

    results = asyncio.run(run())
    assert [rows[0][0] for rows in results] == [f"t{i}" for i in range(ROWS)]
    assert (server.max_in_flight, server.gate_expired) == (SLOTS, 0)


def test_without_a_queue_factor_the_operator_alone_bounds_the_rows(server) -> None:
    """SQL-client functions (queue_factor 1): no slots of ours; the rows given are all sent."""
    predictor = make_predictor(server, CallSettings(max_concurrent=SLOTS))
    server.hold(release_when=lambda s: s.in_flight >= 6, linger=0.0)

    async def run():
        try:
            return await asyncio.gather(*(predictor.predict(f"t{i}") for i in range(6)))
        finally:
            await predictor.aclose()

    asyncio.run(run())
    assert (server.max_in_flight, server.gate_expired) == (6, 0)


def test_the_wait_for_a_slot_is_not_part_of_the_rows_budget(server) -> None:
    """A row's budget (its timeout less a margin) counts from the moment it gets a slot: a row
    that waited longer than its whole budget for one is still answered. (Its slot is taken here,
    by the test, for that long; the rows ahead of it in the queue bound the wait in a job.)"""
    settings = CallSettings(max_concurrent=1, queue_factor=ORDERED_QUEUE_FACTOR, timeout=0.4)
    assert settings.row_budget < 0.4
    predictor = make_predictor(server, settings, error_handling_strategy="IGNORE")

    async def run():
        slots = predictor._slots
        assert slots is not None
        await slots.acquire()
        row = asyncio.ensure_future(predictor.predict("t"))
        await asyncio.sleep(0.6)  # the condition under test: a wait longer than the budget
        assert not row.done() and server.requests == []
        slots.release()
        try:
            return await row
        finally:
            await predictor.aclose()

    assert asyncio.run(run()) == [("t", None, None, None)]
    assert len(server.requests) == 1


def test_the_operator_timeout_covers_the_queue_ahead_of_a_row() -> None:
    """PyFlink's own timeout is a backstop behind every row's budget: the queue's slot
    generations times the row timeout."""
    settings = CallSettings(max_concurrent=4, queue_factor=ORDERED_QUEUE_FACTOR, timeout=30.0)
    assert settings.queue_capacity == 4 * ORDERED_QUEUE_FACTOR
    assert settings.operator_timeout == 30.0 * ORDERED_QUEUE_FACTOR
    plain = CallSettings(max_concurrent=4, timeout=30.0)
    assert (plain.queue_capacity, plain.operator_timeout) == (4, 30.0)
