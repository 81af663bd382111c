"""The response cache and in-flight dedup ('cache' = 'true') at the unit level: the predictor
against the real fake server, answers held at the server's gate where rows must meet in flight."""

from __future__ import annotations

import asyncio
import time

import pytest

from flink_ml_predict.definition import build_spec
from flink_ml_predict.demo_answers import embedding_vector
from flink_ml_predict.model import CallSettings, Column
from flink_ml_predict.runtime.predictor import Predictor
from tests.conftest import METADATA_COLUMNS, model_options
from tests.fakes.batch_faults import embedding_inputs
from tests.fakes.openai_server import Fault

METADATA = [Column(name, type_) for name, type_ in METADATA_COLUMNS]
WITH_USAGE = [Column("content", "STRING"), Column("total-tokens", "INT")]


def make_predictor(server, *, outputs=None, concurrency: int = 40, **options: str) -> Predictor:
    spec = build_spec("m", model_options(server.base_url, **options), [Column("input", "STRING")],
                      outputs or [Column("content", "STRING")])
    return Predictor(spec, CallSettings(max_concurrent=concurrency))


async def until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def predict_each(predictor: Predictor, texts: list[str]) -> list:
    """One row after the other (each done before the next starts)."""
    async def run() -> list:
        try:
            return [await predictor.predict(text) for text in texts]
        finally:
            await predictor.aclose()

    return asyncio.run(run())


def predict_together(server, predictor: Predictor, texts: list[str], requests: int) -> list:
    """All rows at once, their answers held at the server until `requests` requests wait there
    and every other row has joined one of them (cache-hits); then released."""
    async def run() -> list:
        try:
            tasks = [asyncio.ensure_future(predictor.predict(t)) for t in texts]
            await asyncio.to_thread(server.wait_for_held, requests)
            await until(lambda: predictor.metrics.counts["cache-hits"] == len(texts) - requests)
            server.release()
            return await asyncio.gather(*tasks)
        finally:
            await predictor.aclose()

    server.hold()
    return asyncio.run(run())


def test_without_the_cache_identical_rows_each_send_a_request(server) -> None:
    predict_each(make_predictor(server), ["same"] * 3)
    assert server.wait_idle() and len(server.requests) == 3


def test_identical_rows_in_flight_share_one_request(server) -> None:
    """8 identical rows at once: one request; the row that sent it reports the usage, the others
    0, so the usage columns add up to what the service counted."""
    predictor = make_predictor(server, outputs=WITH_USAGE, cache="true")
    results = predict_together(server, predictor, ["same"] * 8, requests=1)
    assert server.wait_idle() and len(server.requests) == 1
    assert all(rows[0][0] == "same" for rows in results)
    usages = sorted(rows[0][1] for rows in results)
    assert usages[:7] == [0] * 7 and usages[7] > 0
    assert predictor.metrics.counts["cache-hits"] == 7
    assert predictor.metrics.counts["requests"] == 1


def test_a_successful_answer_is_reused_later(server) -> None:
    predictor = make_predictor(server, cache="true")
    results = predict_each(predictor, ["a", "b", "a", "a"])
    assert results == [[("a",)], [("b",)], [("a",)], [("a",)]]
    assert [r.body["messages"][-1]["content"] for r in server.requests] == ["a", "b"]
    assert predictor.metrics.counts["cache-hits"] == 2


def test_failures_are_never_kept(server) -> None:
    """'a' fails once (500, IGNORE: one attempt, the row is labelled); the next 'a' asks again and
    gets an answer, which is then kept."""
    server.script("a", [Fault.status_code(500), None])
    predictor = make_predictor(server, outputs=METADATA, cache="true",
                               error_handling_strategy="IGNORE")
    first, second, third = predict_each(predictor, ["a", "a", "a"])
    assert first[0][0] is None and first[0][2] == 500
    assert second[0][0] == "a" and third[0][0] == "a"
    assert [r.status for r in server.requests] == [500, 200]


def test_a_failed_shared_call_fails_every_row_waiting_for_it(server) -> None:
    server.fail_always("a", Fault.status_code(400))
    predictor = make_predictor(server, outputs=METADATA, cache="true",
                               error_handling_strategy="IGNORE")
    results = predict_together(server, predictor, ["a"] * 5, requests=1)
    assert all(rows[0][0] is None and rows[0][2] == 400 for rows in results)
    assert len(server.requests) == 1
    assert predictor.metrics.counts["rows-failed"] == 5


def test_the_least_recently_used_answer_goes_first(server) -> None:
    """Two entries: a, b, a (hit: a is now the most recent), c (b goes), b (asked again), a
    (still kept)."""
    predictor = make_predictor(server, cache="true", cache_max_entries="2")
    predict_each(predictor, ["a", "b", "a", "c", "b", "a"])
    asked = [r.body["messages"][-1]["content"] for r in server.requests]
    assert asked == ["a", "b", "c", "b", "a"]  # after b came back, a was the least recent


def test_n_choices_are_one_kept_answer(server) -> None:
    predictor = make_predictor(server, cache="true", n="2")
    first, second = predict_each(predictor, ["a", "a"])
    assert first == second and len(first) == 2
    assert len(server.requests) == 1


def test_structured_answers_are_parsed_per_row_and_an_invalid_one_is_not_kept(server) -> None:
    answers = iter(['{"label": "good", "score": 0.5}', "not json", '{"label": "bad", "score": 1}'])
    server.responder = lambda body: next(answers)
    outputs = [Column("label", "STRING"), Column("score", "DOUBLE"),
               Column("error-string", "STRING")]
    predictor = make_predictor(server, outputs=outputs, cache="true", output_retry_num="0",
                               error_handling_strategy="IGNORE")
    results = predict_each(predictor, ["x", "x", "y", "y"])
    assert results[0] == results[1] == [("good", 0.5, None)]
    ((label, score, error),) = results[2]
    assert (label, score) == (None, None) and "not json" in error, error
    assert results[3] == [("bad", 1.0, None)]  # the invalid answer was not reused
    assert [r.body["messages"][-1]["content"] for r in server.requests] == ["x", "y", "y"]


def test_embeddings_are_kept_per_text_across_batches(server) -> None:
    """40 rows with 5 distinct texts, all in flight, batches of up to 10: each text is sent once
    (the same text in one batch is not sent twice), every row gets its text's vector."""
    spec = build_spec("emb", model_options(server.dashscope_base_url, provider="qwen",
                                           model="text-embedding-v4", dimension="4",
                                           cache="true", batch_linger="1s"),
                      [Column("input", "STRING")], [Column("embedding", "ARRAY<FLOAT>")])
    predictor = Predictor(spec, CallSettings(max_concurrent=40))
    texts = [f"text {i % 5}" for i in range(40)]

    async def run() -> list:
        try:
            return await asyncio.gather(*(predictor.predict(t) for t in texts))
        finally:
            await predictor.aclose()

    results = asyncio.run(run())
    for text, rows in zip(texts, results, strict=True):
        assert rows == [(pytest.approx(embedding_vector(text, 4), abs=1e-6),)]
    assert server.wait_idle()
    sent = [t for r in server.requests for t in embedding_inputs(r.body)]
    assert sorted(sent) == [f"text {i}" for i in range(5)]
    assert predictor.metrics.counts["cache-hits"] == 35
