"""Embedding batches at the unit level: the predictor (rows in flight on one event loop, at most
`concurrency` of them, as Flink's async operator admits them) against the real fake server."""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from dashscope import get_tokenizer

from flink_ml_predict import ModelCallError
from flink_ml_predict.definition import build_spec
from flink_ml_predict.demo_answers import embedding_vector, embeddings, estimate_tokens
from flink_ml_predict.model import CallSettings, Column
from flink_ml_predict.runtime.batching import split_counts
from flink_ml_predict.runtime.predictor import Predictor
from tests.conftest import model_options
from tests.fakes.answers import DASHSCOPE_MAX_EMBEDDING_BATCH
from tests.fakes.batch_faults import FailFirstRequests, RejectMarkedInputs, embedding_inputs
from tests.fakes.openai_server import Fault

VECTOR = [Column("embedding", "ARRAY<FLOAT>")]
LABELLED = [*VECTOR, Column("error-string", "STRING"), Column("http-status-code", "INT")]
QWEN_TOKENS = get_tokenizer("qwen-plus")  # the tokenizer DashScope documents for Qwen models


def make_embedder(server, *, concurrency: int = 40, outputs=None, asynchronous: bool = True,
                  provider: str = "qwen", **options: str) -> Predictor:
    base = server.base_url if provider == "openai" else server.dashscope_base_url
    values = model_options(base, provider=provider, model="text-embedding-v4", dimension="4",
                           **options)
    spec = build_spec("emb", values, [Column("input", "STRING")], outputs or VECTOR)
    return Predictor(spec, CallSettings(max_concurrent=concurrency, asynchronous=asynchronous))


def run_rows(predictor: Predictor, texts: list[str], concurrency: int) -> list:
    """Each text's rows (or its exception), with at most `concurrency` rows in flight."""
    async def run() -> list:
        capacity = asyncio.Semaphore(concurrency)

        async def one(text: str) -> list[tuple]:
            async with capacity:
                return await predictor.predict(text)

        try:
            return await asyncio.gather(*(one(t) for t in texts), return_exceptions=True)
        finally:
            await predictor.aclose()

    return asyncio.run(run())


def embedding_requests(server) -> list[list[str]]:
    assert server.wait_idle()
    return [embedding_inputs(r.body) for r in server.requests]


def test_batches_stay_within_the_cap_and_every_row_gets_its_own_vector(server) -> None:
    """200 distinct rows, 64 in flight, answers after a random 0-20 ms: DashScope's cap of 10
    inputs holds for every request (the fake refuses more, as DashScope does), each text is sent
    once, and each row gets the vector of its own text."""
    server.latency = (0.0, 0.02)
    texts = [f"text {i} " + "x" * random.Random(i).randrange(30) for i in range(200)]
    results = run_rows(make_embedder(server, concurrency=64), texts, 64)
    for text, rows in zip(texts, results, strict=True):
        assert rows == [(pytest.approx(embedding_vector(text, 4), abs=1e-6),)], text
    requests = embedding_requests(server)
    assert all(r.status == 200 for r in server.requests)
    assert max(len(inputs) for inputs in requests) <= DASHSCOPE_MAX_EMBEDDING_BATCH
    assert sorted(t for inputs in requests for t in inputs) == sorted(texts)
    assert len(requests) < len(texts) / 2


def test_a_batch_stays_within_its_token_budget(server) -> None:
    """'batch-max-tokens' = 20 with rows of 1 to 12 tokens (counted with DashScope's tokenizer):
    no request holds more than 20 tokens, unless it is a single row."""
    rng = random.Random(7)
    texts = [" ".join(["word"] * rng.randint(1, 12)) + f" {i}" for i in range(60)]
    run_rows(make_embedder(server, batch_max_tokens="20"), texts, 40)
    requests = embedding_requests(server)
    sizes = [sum(len(QWEN_TOKENS.encode(t)) for t in inputs) for inputs in requests
             if len(inputs) > 1]
    assert sizes and max(sizes) <= 20
    assert sorted(t for inputs in requests for t in inputs) == sorted(texts)


def test_at_steady_state_a_request_carries_batch_size_rows(server) -> None:
    """200 rows, 40 in flight, batch size 10: as a batch comes back its 10 rows make room for 10
    more, which fill the next batch; with a linger of 1 s no batch goes before it is full, so the
    200 rows take exactly 20 requests of 10 (requests per row = 1 / batch-size)."""
    texts = [f"row {i}" for i in range(200)]
    results = run_rows(make_embedder(server, batch_linger="1s"), texts, 40)
    assert all(len(rows) == 1 for rows in results)
    requests = embedding_requests(server)
    assert [len(inputs) for inputs in requests] == [10] * 20


def test_a_full_batch_goes_at_once_and_a_lone_row_after_the_linger(server) -> None:
    predictor = make_embedder(server, batch_linger="30s")
    started = time.monotonic()
    run_rows(predictor, [f"row {i}" for i in range(10)], 10)
    assert time.monotonic() - started < 30  # full: did not wait for the linger
    server.reset()
    predictor = make_embedder(server, batch_linger="300ms")
    started = time.monotonic()
    (rows,) = run_rows(predictor, ["alone"], 10)
    assert time.monotonic() - started >= 0.3 and len(rows) == 1
    assert embedding_requests(server) == [["alone"]]


def test_batch_size_1_sends_one_row_per_request(server) -> None:
    texts = [f"row {i}" for i in range(20)]
    run_rows(make_embedder(server, batch_size="1"), texts, 20)
    assert sorted(embedding_requests(server)) == sorted([t] for t in texts)


def test_a_synchronous_function_does_not_wait_for_rows_that_cannot_come(server) -> None:
    predictor = make_embedder(server, asynchronous=False, batch_linger="20s")
    started = time.monotonic()
    (rows,) = run_rows(predictor, ["alone"], 1)
    assert time.monotonic() - started < 20 and len(rows) == 1


def test_a_bad_input_fails_alone_under_ignore(server) -> None:
    """DashScope answers 400 for a whole batch with one bad input. The batch is split and sent
    again until the bad row is alone: only that row is labelled, every other row gets its own
    vector, and each good text is answered exactly once."""
    bad = RejectMarkedInputs("<bad>").install(server)
    texts = [f"row {i}" + (" <bad>" if i == 13 else "") for i in range(30)]
    results = run_rows(make_embedder(server, outputs=LABELLED, error_handling_strategy="IGNORE",
                                     batch_linger="1s"), texts, 30)
    for text, rows in zip(texts, results, strict=True):
        (row,) = rows
        if "<bad>" in text:
            assert row[0] is None and row[2] == 400 and row[1].startswith("HTTP 400"), row
        else:
            assert row == (pytest.approx(embedding_vector(text, 4), abs=1e-6), None, None)
    answered = [t for r in server.requests if r.status == 200 for t in embedding_inputs(r.body)]
    assert sorted(answered) == sorted(t for t in texts if "<bad>" not in t)
    assert bad.rejected[-1] == [texts[13]]
    # 3 batches of 10; the bad one splits 10 -> 5 -> 3 -> 2 -> 1: at most 2 + 2*4 + 1 requests
    assert len(server.requests) <= 11


def test_a_bad_input_fails_only_its_row_under_failover(server) -> None:
    RejectMarkedInputs("<bad>").install(server)
    texts = [f"row {i}" + (" <bad>" if i == 4 else "") for i in range(10)]
    results = run_rows(make_embedder(server, batch_linger="1s"), texts, 10)
    failed = [r for r in results if isinstance(r, Exception)]
    assert len(failed) == 1 and isinstance(results[4], ModelCallError)
    assert results[4].status == 400 and "ML_PREDICT with model emb failed" in str(results[4])


def test_a_retryable_failure_retries_the_whole_batch(server) -> None:
    FailFirstRequests(1, Fault.status_code(503)).install(server)
    texts = [f"row {i}" for i in range(10)]
    predictor = make_embedder(server, batch_linger="1s")
    results = run_rows(predictor, texts, 10)
    assert [len(r) for r in results] == [1] * 10
    requests = embedding_requests(server)
    assert [r.status for r in server.requests] == [503, 200]
    assert requests[0] == requests[1] and sorted(requests[0]) == sorted(texts)
    assert predictor.metrics.counts["retries"] == 1


def test_usage_is_split_between_rows_in_proportion_to_their_tokens(server) -> None:
    """One batch of 10 rows: the service reports one prompt_tokens for the request; each row
    gets a whole share in proportion to its own token count, and the shares add up to it."""
    outputs = [*VECTOR, Column("prompt-tokens", "INT"), Column("total-tokens", "INT")]
    texts = [("lorem ipsum " * (i + 1)).strip() for i in range(10)]
    results = run_rows(make_embedder(server, outputs=outputs, batch_linger="1s"), texts, 10)
    reported = embeddings({"model": "m", "input": texts})["usage"]["prompt_tokens"]
    assert reported == sum(estimate_tokens(t) for t in texts)
    shares = [rows[0][1] for rows in results]
    assert sum(shares) == reported and [rows[0][2] for rows in results] == shares
    weights = [len(QWEN_TOKENS.encode(t)) for t in texts]
    for share, weight in zip(shares, weights, strict=True):
        assert abs(share - reported * weight / sum(weights)) < 1


@pytest.mark.parametrize(("total", "weights", "shares"), [
    (10, [1, 1, 2], [3, 2, 5]),
    (7, [0, 0], [4, 3]),
    (0, [3, 4], [0, 0]),
    (None, [1, 2], [None, None]),
    (100, [1], [100]),
])
def test_split_counts_adds_up_to_the_total(total, weights, shares) -> None:
    assert split_counts(total, weights) == shares


@pytest.mark.parametrize("batch_size", ["10", "1"])
def test_a_vector_of_another_length_than_dimension_is_an_error_of_its_row(server,
                                                                        batch_size) -> None:
    """A service that ignores 'dimensions' and sends 8 values for 'dimension' = 4: the row is
    labelled with the reason instead of carrying a vector of the wrong length."""
    server.add_route("POST", "/embeddings", lambda exchange: exchange.send_json(
        200, embeddings({**exchange.body, "dimensions": 8})))
    results = run_rows(make_embedder(server, outputs=LABELLED, batch_size=batch_size,
                                     error_handling_strategy="IGNORE"), ["a", "b"], 2)
    for (row,) in results:
        assert row[0] is None and row[2] is None
        assert "vector of 8 values, not the 4 of option 'dimension'" in row[1], row[1]
