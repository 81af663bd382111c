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


def test_a_row_that_gets_no_slot_within_its_budget_fails_by_its_strategy(server) -> None:
    """The wait for a slot counts toward the row's budget: the row is labelled under IGNORE before
    Flink's timeout (its slot is taken here, by the test, for the whole wait)."""
    settings = CallSettings(max_concurrent=1, queue_factor=ORDERED_QUEUE_FACTOR, timeout=0.4)
    predictor = make_predictor(server, settings, error_handling_strategy="IGNORE")

    async def run():
        slots = predictor._slots
        assert slots is not None
        await slots.acquire()
        try:
            return await predictor.predict("t")
        finally:
            slots.release()
            await predictor.aclose()

    [(content, error, status, headers)] = asyncio.run(run())
    assert (content, status, headers) == (None, None, None)
    assert "ran out waiting for one of the 1 request slots (max-concurrent-operations)" in error
    assert server.requests == []
