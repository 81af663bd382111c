"""Embedding batches, the cache and the client-side limits through ML_PREDICT in real Flink jobs
(small ones) against the real fake server."""

from __future__ import annotations

import collections

import pytest

from flink_ml_predict import execute_script
from flink_ml_predict.demo_answers import embedding_vector
from tests.conftest import collect, model_ddl, sequence_source
from tests.fakes.batch_faults import RejectMarkedInputs, embedding_inputs
from tests.fakes.ratelimit import RequestRateLimit

pytestmark = pytest.mark.flink


def embedding_model(server, **options: str) -> str:
    return model_ddl("emb", server.dashscope_base_url, provider="qwen", model="text-embedding-v4",
                     output="`embedding` ARRAY<FLOAT>", dimension="4", **options)


def test_embeddings_are_batched_and_each_row_gets_its_own_vector(t_env, server) -> None:
    """60 rows, 20 in flight, DashScope's cap of 10 (the fake refuses more): every request holds
    at most 10 rows, each text is sent once, and with a linger of 1 s the rows Flink has in
    flight fill whole batches: 6 requests for 60 rows."""
    server.latency = (0.0, 0.02)
    execute_script(t_env, embedding_model(server, batch_linger="1s") + ";\n"
                   + sequence_source("src", 60))
    rows = collect(t_env, "SELECT id, txt, embedding FROM ML_PREDICT(TABLE src, MODEL emb, "
                          "DESCRIPTOR(txt), MAP['max-concurrent-operations', '20'])")
    assert sorted(r[0] for r in rows) == list(range(1, 61))
    for _, text, vector in rows:
        assert vector == pytest.approx(embedding_vector(text, 4), abs=1e-6)
    assert server.wait_idle()
    batches = [embedding_inputs(r.body) for r in server.requests]
    assert all(r.status == 200 for r in server.requests)
    assert sorted(t for batch in batches for t in batch) == sorted(r[1] for r in rows)
    assert max(len(batch) for batch in batches) <= 10
    assert len(batches) == 6, [len(b) for b in batches]


def test_a_bad_input_in_a_batch_fails_alone(t_env, server) -> None:
    RejectMarkedInputs("<bad>").install(server)
    output = ("`embedding` ARRAY<FLOAT>, `error-string` STRING, `http-status-code` INT")
    ddl = model_ddl("emb", server.dashscope_base_url, provider="qwen", model="text-embedding-v4",
                    output=output, dimension="4", error_handling_strategy="IGNORE",
                    batch_linger="500ms")
    script = (ddl + ";\nCREATE TEMPORARY VIEW src AS SELECT id, CASE WHEN id = 7 THEN "
              "CONCAT('row ', CAST(id AS STRING), ' <bad>') ELSE CONCAT('row ', CAST(id AS STRING)) "
              "END AS txt FROM (VALUES " + ", ".join(f"({i})" for i in range(1, 21)) + ") AS t(id)")
    execute_script(t_env, script)
    rows = sorted(collect(t_env, "SELECT id, txt, embedding, `error-string`, `http-status-code` "
                                 "FROM ML_PREDICT(TABLE src, MODEL emb, DESCRIPTOR(txt), "
                                 "MAP['max-concurrent-operations', '10'])"))
    assert [r[0] for r in rows] == list(range(1, 21))
    for id_, text, vector, error, status in rows:
        if id_ == 7:
            assert vector is None and status == 400 and error.startswith("HTTP 400")
        else:
            assert vector == pytest.approx(embedding_vector(text, 4), abs=1e-6)
            assert (error, status) == (None, None)


def test_identical_rows_share_one_request_with_the_cache(t_env, server) -> None:
    """40 rows with 4 distinct texts, 10 in flight: identical rows in flight share one request
    and later ones reuse the answer: 4 requests."""
    script = (model_ddl("m", server.base_url, cache="true") + ";\n" + sequence_source("ids", 40)
              + "CREATE TEMPORARY VIEW src AS SELECT id, CONCAT('text ', CAST(MOD(id, 4) AS "
                "STRING)) AS txt FROM ids")
    execute_script(t_env, script)
    rows = collect(t_env, "SELECT id, txt, content FROM ML_PREDICT(TABLE src, MODEL m, "
                          "DESCRIPTOR(txt))")
    assert len(rows) == 40 and all(content == text for _, text, content in rows)
    assert server.wait_idle()
    asked = collections.Counter(r.body["messages"][-1]["content"] for r in server.requests)
    assert asked == {f"text {i}": 1 for i in range(4)}


def test_requests_per_minute_keeps_a_job_clear_of_an_rpm_limited_server(t_env, server) -> None:
    """A server admitting 600 requests a minute (10 a second), 'requests-per-minute' = 300 and 20
    rows in flight: every row answered, at most 2 refused (arrival jitter, see the unit test)."""
    limit = RequestRateLimit(600).install(server)
    execute_script(t_env, model_ddl("m", server.base_url, requests_per_minute="300") + ";\n"
                   + sequence_source("src", 40))
    rows = collect(t_env, "SELECT id, txt, content FROM ML_PREDICT(TABLE src, MODEL m, "
                          "DESCRIPTOR(txt), MAP['max-concurrent-operations', '20'])")
    assert sorted(r[0] for r in rows) == list(range(1, 41))
    assert all(content == text for _, text, content in rows)
    assert limit.rejected <= 2 and limit.admitted >= 40
