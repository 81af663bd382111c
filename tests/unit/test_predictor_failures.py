"""The per-row pipeline against a real fault-injecting HTTP server, with the sleep recorded instead
of waited: which failures are retried, how long each wait is, what each strategy emits, and how
many attempts the server saw."""

from __future__ import annotations

import asyncio
import logging

import pytest

from flink_ml_predict import ModelCallError
from flink_ml_predict.definition import build_spec
from flink_ml_predict.model import CallSettings, Column
from flink_ml_predict.runtime.predictor import Predictor
from tests.conftest import METADATA_COLUMNS, TEST_KEY, model_options
from tests.fakes.openai_server import Fault

METADATA = [Column(name, type_) for name, type_ in METADATA_COLUMNS]


class RecordedSleep:
    """Records each wait and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def make_predictor(server, *, outputs=None, timeout: float = 180.0, **options: str):
    spec = build_spec("m", model_options(server.base_url, **options), [Column("input", "STRING")],
                      outputs or [Column("content", "STRING")])
    sleep = RecordedSleep()
    return Predictor(spec, CallSettings(timeout=timeout), sleep=sleep), sleep


def predict(predictor: Predictor, text: str | None):
    async def run():
        try:
            return await predictor.predict(text)
        finally:
            await predictor.aclose()

    return asyncio.run(run())


def test_429_with_retry_after_waits_as_told(server) -> None:
    server.script("a", [Fault.status_code(429, retry_after="2"), None])
    predictor, sleep = make_predictor(server)
    assert predict(predictor, "a") == [("a",)]
    assert sleep.delays == [2.0]
    assert server.attempts("a") == 2
    assert predictor.metrics.counts["retries"] == 1


def test_retry_after_ms_wins_over_retry_after(server) -> None:
    server.script("a", [Fault.status_code(503, retry_after="9", retry_after_ms="1500"), None])
    predictor, sleep = make_predictor(server)
    assert predict(predictor, "a") == [("a",)]
    assert sleep.delays == [1.5]


def test_backoff_without_retry_after_is_jittered_exponential(server) -> None:
    """Full jitter: the k-th wait is uniform in [0, min(250 ms, 100 ms * 2**(k-1))]. Over 60 rows
    each bound is exceeded by none of the waits and approached by some (each check below fails
    for a correct backoff with a probability under 2e-6); a backoff that is always 0, or that
    does not grow, fails them."""
    caps = [0.1, 0.2, 0.25, 0.25]
    by_retry: list[list[float]] = [[] for _ in caps]
    for row in range(60):
        key = f"a{row}"
        server.script(key, [Fault.status_code(500)] * 4 + [None])
        predictor, sleep = make_predictor(server, retry_initial_backoff="100ms",
                                          retry_max_backoff="250ms")
        assert predict(predictor, key) == [(key,)]
        assert len(sleep.delays) == 4 and server.attempts(key) == 5
        assert all(0 <= d <= cap for d, cap in zip(sleep.delays, caps, strict=True)), sleep.delays
        for waits, delay in zip(by_retry, sleep.delays, strict=True):
            waits.append(delay)
    assert max(by_retry[0]) > 0.05 and len(set(by_retry[0])) > 1  # jittered, not 0 nor fixed
    assert max(by_retry[1]) > 0.1  # the bound doubled
    assert max(by_retry[2]) > 0.2 and max(by_retry[3]) > 0.2  # and stopped at 250 ms


@pytest.mark.parametrize("fault", [Fault.reset(), Fault.malformed_json(),
                                   Fault.wrong_content_type(), Fault.empty_choices(),
                                   Fault.status_code(502), Fault.status_code(408),
                                   Fault.status_code(409)], ids=lambda f: f.name)
def test_transient_failures_are_retried(server, fault) -> None:
    server.script("a", [fault, None])
    predictor, sleep = make_predictor(server)
    assert predict(predictor, "a") == [("a",)]
    assert server.attempts("a") == 2 and len(sleep.delays) == 1


def test_request_timeout_is_retried(server) -> None:
    server.script("a", [Fault.slow(2.0), None])
    predictor, sleep = make_predictor(server, request_timeout="200ms")
    assert predict(predictor, "a") == [("a",)]
    assert len(sleep.delays) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_permanent_errors_are_not_retried(server, status) -> None:
    server.fail_always("a", Fault.status_code(status))
    predictor, sleep = make_predictor(server, outputs=METADATA,
                                      retry_fallback_strategy="IGNORE")
    (row,) = predict(predictor, "a")
    assert row[0] is None and row[2] == status and f"HTTP {status}" in row[1]
    assert "x-request-id" in row[3]
    assert server.attempts("a") == 1 and sleep.delays == []


def test_retries_exhausted_then_failover_raises_without_the_key(server, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    server.fail_always("a", Fault.status_code(500))
    predictor, sleep = make_predictor(server, retry_num="2")
    with pytest.raises(ModelCallError) as caught:
        predict(predictor, "a")
    assert "ML_PREDICT with model m failed" in str(caught.value)
    assert caught.value.status == 500
    assert server.attempts("a") == 3 and len(sleep.delays) == 2
    assert TEST_KEY not in str(caught.value) and TEST_KEY not in caplog.text


def test_wrong_key_fails_over_without_revealing_it(server, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    values = model_options(server.base_url, key="sk-wrong-key-123456")
    spec = build_spec("m", values, [Column("input", "STRING")], [Column("content", "STRING")])
    with pytest.raises(ModelCallError) as caught:
        predict(Predictor(spec, CallSettings(), sleep=RecordedSleep()), "a")
    assert caught.value.status == 401
    assert "sk-wrong-key-123456" not in str(caught.value)
    assert "sk-wrong-key-123456" not in caplog.text


def test_ignore_makes_one_attempt_and_labels_the_row(server) -> None:
    server.fail_always("a", Fault.status_code(429, retry_after="1"))
    predictor, sleep = make_predictor(server, outputs=METADATA, error_handling_strategy="IGNORE")
    (row,) = predict(predictor, "a")
    assert (row[0], row[2]) == (None, 429)
    assert row[1].startswith("HTTP 429") and "Requests rate limit exceeded" in row[1], row[1]
    assert row[3]["retry-after"] == ["1"]
    assert server.attempts("a") == 1 and sleep.delays == []


def test_ignore_without_metadata_drops_the_row_and_counts_it(server, caplog) -> None:
    server.fail_always("a", Fault.status_code(500))
    predictor, _ = make_predictor(server, error_handling_strategy="IGNORE")
    assert predict(predictor, "a") == []
    assert predictor.metrics.counts["rows-dropped"] == 1
    assert "row dropped under IGNORE" in caplog.text


def test_failover_strategy_never_retries(server) -> None:
    server.fail_always("a", Fault.status_code(503))
    predictor, sleep = make_predictor(server, error_handling_strategy="FAILOVER")
    with pytest.raises(ModelCallError):
        predict(predictor, "a")
    assert server.attempts("a") == 1 and sleep.delays == []


def test_no_wait_may_end_after_the_row_budget(server) -> None:
    """Operator timeout 10 s -> budget 9 s: a Retry-After of 30 s is not waited for; the row
    falls back at once (IGNORE here), long before Flink's timeout could fail the job."""
    server.fail_always("a", Fault.status_code(429, retry_after="30"))
    predictor, sleep = make_predictor(server, outputs=METADATA, timeout=10.0,
                                      retry_fallback_strategy="IGNORE")
    (row,) = predict(predictor, "a")
    assert row[2] == 429 and sleep.delays == []
    assert server.attempts("a") == 1


def test_null_input_is_skipped_and_counted(server) -> None:
    predictor, _ = make_predictor(server)
    assert predict(predictor, None) == []
    assert predictor.metrics.counts["rows-skipped"] == 1 and server.requests == []


@pytest.mark.parametrize("text", ["", "x" * 200_000, "emoji 😀🐍 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and 中文",
                                  "control \x00\x01\x1b[31m\t\r\n\u2028 chars"],
                         ids=["empty", "long", "non-bmp", "control"])
def test_unusual_inputs_go_through_unchanged(server, text) -> None:
    predictor, _ = make_predictor(server)
    assert predict(predictor, text) == [(text,)]
    assert server.requests[0].body["messages"][1]["content"] == text


def test_request_timeout_bounds_the_model_not_local_queueing() -> None:
    from flink_ml_predict.runtime.client import MIN_CONNECT_TIMEOUT_S, request_timeout

    timeout = request_timeout(1.5)
    assert (timeout.read, timeout.write) == (1.5, 1.5)
    assert timeout.connect == MIN_CONNECT_TIMEOUT_S and timeout.pool is None
    assert request_timeout(30.0).connect == 30.0


def test_the_whole_attempt_ends_with_the_row_budget(server) -> None:
    """request-timeout 60 s, operator timeout 2 s -> budget 1 s: the slow answer is cut at the
    budget (not after 60 s) and the row is labelled, with no retry left."""
    server.fail_always("a", Fault.slow(10.0))
    predictor, sleep = make_predictor(server, outputs=METADATA, timeout=2.0,
                                      request_timeout="60s", retry_fallback_strategy="IGNORE")
    (row,) = predict(predictor, "a")
    assert row[1] == "request timed out" and row[2] is None
    assert server.attempts("a") == 1 and sleep.delays == []


def test_a_retry_cut_by_the_row_budget_keeps_the_last_answer_of_the_service(server) -> None:
    """503, then a retry that is still unanswered when the budget (1 s) ends: the row's error is
    the 503 (its text and status) and why it was not answered after it, not a bare timeout."""
    server.script("a", [Fault.status_code(503), Fault.slow(10.0)])
    predictor, sleep = make_predictor(server, outputs=METADATA, timeout=2.0,
                                      request_timeout="60s", retry_fallback_strategy="IGNORE")
    (row,) = predict(predictor, "a")
    assert row[1].startswith("HTTP 503: ") and row[2] == 503
    assert row[1].endswith("; then the row's time budget (1s, inside the operator timeout) ran "
                           "out waiting for the answer to a retry")
    assert server.attempts("a") == 2 and len(sleep.delays) == 1


def test_a_failover_message_names_the_url_and_the_error_string_does_not(server) -> None:
    server.fail_always("a", Fault.status_code(404))
    failover, _ = make_predictor(server, error_handling_strategy="FAILOVER")
    with pytest.raises(ModelCallError) as raised:
        predict(failover, "a")
    url = f"POST {server.base_url}/chat/completions"
    assert str(raised.value).startswith("ML_PREDICT with model m failed "
                                        "(error-handling-strategy FAILOVER): HTTP 404: ")
    assert str(raised.value).endswith(f" ({url})"), raised.value
    assert TEST_KEY not in str(raised.value)
    ignore, _ = make_predictor(server, error_handling_strategy="IGNORE",
                               outputs=METADATA)
    [row] = predict(ignore, "a")
    assert row[1].startswith("HTTP 404: ") and url not in row[1], row
