"""Bad seed 001 parameters, streaming and document options are refused before any job starts, with
a message naming the statement, the model's option and what is allowed (as test_bad_input.py)."""

from __future__ import annotations

import pytest

from flink_ml_predict import ConfigurationError, ScriptRunner
from tests.conftest import TEST_KEY
from tests.e2e.test_bad_input import ENDPOINT, PREDICT, model

DOC_INPUTS = "`doc` STRING, `question` STRING"

CASES = {
    "stop list mixing strings and token ids": (
        model(provider="qwen", stop='["你好", 104307]') + PREDICT,
        ["statement 1 (line 1)", "CREATE MODEL m", "option 'stop'",
         "mixes strings and token ids", "strings only, token ids only or token-id arrays only"]),
    "token ids for openai": (
        model(stop="[108386, 104307]") + PREDICT,
        ["option 'stop': token ids are DashScope's (providers qwen, bailian)"]),
    "top_k not an integer": (
        model(provider="qwen", top_k="2.5") + PREDICT,
        ["option 'top-k': '2.5' is not an integer", "value above 100"]),
    "repetition_penalty zero": (
        model(provider="bailian", repetition_penalty="0") + PREDICT,
        ["option 'repetition-penalty': 0 is outside the allowed range > 0"]),
    "repetition_penalty negative": (
        model(provider="qwen", repetition_penalty="-1.5") + PREDICT,
        ["option 'repetition-penalty'", "> 0"]),
    "seed above unsigned 64 bits": (
        model(provider="qwen", seed="18446744073709551616") + PREDICT,
        ["option 'seed': 18446744073709551616 is outside the allowed range "
         "[0, 18446744073709551615]"]),
    "stream on an embeddings model": (
        model(provider="qwen", endpoint=ENDPOINT + "/embeddings", outputs="v ARRAY<FLOAT>",
              stream="true") + PREDICT,
        ["option 'stream' applies only to chat models", "its task embeddings"]),
    "stream-idle-timeout without stream": (
        model(stream__idle__timeout="5s") + PREDICT,
        ["option 'stream-idle-timeout' applies to streamed answers only",
         "'stream' = 'true'"]),
    "document column not in INPUT": (
        model(provider="qwen", inputs=DOC_INPUTS, document__column="file") + PREDICT,
        ["option 'document-column': 'file' is not an INPUT column; INPUT columns: doc, "
         "question"]),
    "fileid with an empty id": (
        model(provider="qwen", documents="fileid://") + PREDICT,
        ["option 'documents': 'fileid://' has an empty file id"]),
    "second fileid empty": (
        model(provider="qwen", documents='["fileid://file-fe-1,fileid://"]') + PREDICT,
        ["option 'documents': 'fileid://' has an empty file id"]),
    "native API result_format text": (
        model(provider="qwen", result_format="text") + PREDICT,
        ["option 'result-format': 'text' is not available",
         "compatible mode answers in the message format"]),
    "native API prompt": (
        model(provider="bailian", prompt="你好") + PREDICT,
        ["option 'prompt': a parameter of DashScope's native API", "'prompt-template'"]),
    "incremental_output without stream": (
        model(provider="qwen", incremental_output="true") + PREDICT,
        ["option 'incremental-output' applies to streamed answers only"]),
    "tools not a JSON array": (
        model(tools='{"type": "function", "function": {"name": "f"}}') + PREDICT,
        ["option 'tools': must be a non-empty JSON array of tool objects, not a JSON dict"]),
    "tools not JSON": (
        model(tools="get_weather") + PREDICT,
        ["option 'tools': 'get_weather' is not JSON"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_dashscope_input_is_reported_before_the_job(case: str, t_env) -> None:
    script, expected = CASES[case]
    runner = ScriptRunner(t_env, environ={})
    with pytest.raises(ConfigurationError) as caught:
        runner.run(script)
    message = str(caught.value)
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"
    assert TEST_KEY not in message
    assert [r for r in runner.results if r is not None and hasattr(r, "get_job_client")
            and r.get_job_client() is not None] == []
