"""Bad input is refused before any job starts, with a message naming the statement and the option
(or column), and never containing the api-key."""

from __future__ import annotations

import pytest

from flink_ml_predict import ConfigurationError, ScriptRunner
from tests.conftest import TEST_KEY, model_options, render_model

ENDPOINT = "http://127.0.0.1:9/v1"  # nothing listens there: no test may send a request
SOURCE = ("CREATE TEMPORARY VIEW src(id, txt, n) AS VALUES (1, 'a', 7);\n"
          "CREATE TEMPORARY TABLE sink(id INT, txt STRING, n INT, content STRING) "
          "WITH ('connector' = 'blackhole');\n")


def model(*, provider: str = "openai", endpoint: str = ENDPOINT, inputs: str = "`input` STRING",
          outputs: str = "`content` STRING", drop: tuple[str, ...] = (), **options: str) -> str:
    """Model m on one line; options spelled as given except '__' -> '-' (so top_p stays an
    alias and top__p is 'top-p')."""
    entries = model_options(endpoint, provider=provider, model="gpt-4o")
    entries.update({k.replace("__", "-"): v for k, v in options.items()})
    for key in drop:
        entries.pop(key)
    return render_model("m", entries, inputs=inputs, output=outputs, one_line=True) + ";\n"


PREDICT = "INSERT INTO sink SELECT * FROM ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt))"

CASES = {
    "unknown provider": (model(provider="azure") + PREDICT,
                         ["statement 1 (line 1)", "'provider'", "unknown provider 'azure'",
                          "openai, qwen, bailian"]),
    "missing endpoint": (model(drop=("endpoint",)) + PREDICT,
                         ["statement 1", "missing required option 'endpoint'"]),
    "missing api-key": (model(drop=("api-key",)) + PREDICT,
                        ["missing required option 'api-key'"]),
    "missing model": (model(drop=("model",)) + PREDICT, ["missing required option 'model'"]),
    "temperature too high": (model(temperature="2") + PREDICT,
                             ["option 'temperature'", "outside the allowed range [0, 2)"]),
    "temperature negative": (model(temperature="-0.1") + PREDICT,
                             ["option 'temperature'", "[0, 2)"]),
    "temperature not a number": (model(temperature="warm") + PREDICT,
                                 ["option 'temperature'", "'warm' is not a number"]),
    "top-p zero": (model(top__p="0") + PREDICT, ["option 'top-p'", "(0, 1]"]),
    "top_p alias above one": (model(top_p="1.5") + PREDICT, ["option 'top-p'", "(0, 1]"]),
    "unknown key with suggestion": (model(temprature="0.5") + PREDICT,
                                    ["unknown option 'temprature'",
                                     "did you mean 'temperature'", "valid options:",
                                     "system-prompt"]),
    "option given twice": (model(top_p="0.5", top__p="0.6") + PREDICT,
                           ["option 'top-p' is given twice"]),
    "two input columns": (model(inputs="a STRING, b STRING") + PREDICT,
                          ["INPUT must be exactly one STRING column", "a STRING, b STRING"]),
    "input not a string": (model(inputs="x INT") + PREDICT,
                           ["INPUT must be exactly one STRING column", "x INT"]),
    "output of another type": (model(outputs="score DOUBLE") + PREDICT,
                               ["OUTPUT column 'score' has type DOUBLE",
                                "STRING (chat completions) or ARRAY<FLOAT> (embeddings)"]),
    "two value columns": (model(outputs="a STRING, b STRING") + PREDICT,
                          ["exactly one value column", "found a, b"]),
    "endpoint chat but output embeddings": (
        model(endpoint=ENDPOINT + "/chat/completions", outputs="v ARRAY<FLOAT>") + PREDICT,
        ["option 'endpoint' selects chat", "'v' is ARRAY<FLOAT>", "chat needs STRING"]),
    "endpoint embeddings but output string": (
        model(endpoint=ENDPOINT + "/embeddings") + PREDICT,
        ["option 'endpoint' selects embeddings", "embeddings needs ARRAY<FLOAT>"]),
    "endpoint not a URL": (model(endpoint="api.openai.com") + PREDICT,
                           ["option 'endpoint'", "is not an http(s) URL"]),
    "dimension on a chat model": (model(dimension="8") + PREDICT,
                                  ["option 'dimension' applies only to embeddings models",
                                   "openai chat model"]),
    "dashscope option on openai": (model(top__k="5") + PREDICT,
                                   ["option 'top-k' applies only to the qwen, bailian providers"]),
    "response format": (model(response__format="xml") + PREDICT,
                        ["option 'response-format'", "not one of text, json_object"]),
    "n zero": (model(n="0") + PREDICT, ["option 'n'", "outside the allowed range [1, 128]"]),
    "max-tokens not an integer": (model(max__tokens="lots") + PREDICT,
                                  ["option 'max-tokens'", "is not an integer"]),
    "retry-num negative": (model(retry__num="-1") + PREDICT, ["option 'retry-num'", ">= 0"]),
    "strategy": (model(error__handling__strategy="SKIP") + PREDICT,
                 ["option 'error-handling-strategy'", "RETRY, FAILOVER, IGNORE"]),
    "metadata column type": (model(outputs="content STRING, `http-status-code` STRING") + PREDICT,
                             ["metadata column 'http-status-code' must have type INT"]),
    "unknown model": (SOURCE + PREDICT.replace("MODEL m", "MODEL nope"),
                      ["statement 3 (line 3)", "unknown model 'nope'"]),
    "descriptor column missing": (SOURCE + model() + PREDICT.replace("txt)", "text)"),
                                  ["statement 4 (line 4)", "column 'text' is not in TABLE src",
                                   "id, txt, n"]),
    "descriptor column not a string": (SOURCE + model() + PREDICT.replace("(txt)", "(n)"),
                                       ["column 'n' of TABLE src is INT",
                                        "takes STRING input"]),
    "unknown table": (model() + PREDICT.replace("TABLE src", "TABLE missing_table"),
                      ["statement 2", "cannot read TABLE missing_table", "missing_table"]),
    "config unknown key": (SOURCE + model() + PREDICT.replace("(txt))", "(txt), MAP['retries', '3'])"),
                           ["ML_PREDICT CONFIG: unknown key 'retries'",
                            "async, max-concurrent-operations, output-mode, timeout"]),
    "config bad capacity": (SOURCE + model() + PREDICT.replace(
        "(txt))", "(txt), MAP['max-concurrent-operations', '0'])"),
        ["ML_PREDICT CONFIG", "max-concurrent-operations must be >= 1"]),
    "config bad output mode": (SOURCE + model() + PREDICT.replace(
        "(txt))", "(txt), MAP['output-mode', 'RANDOM'])"), ["output-mode 'RANDOM'"]),
    "descriptor with two columns": (SOURCE + model() + PREDICT.replace("(txt)", "(txt, id)"),
                                    ["takes one input column", "DESCRIPTOR names 2"]),
    "unbalanced parentheses": (SOURCE + model() + PREDICT + ")",
                               ["statement 4", "unbalanced"]),
    "unterminated string": (model() + "SELECT 'abc", ["unterminated string literal", "line 2"]),
    "missing environment variable": (model().replace(TEST_KEY, "${NO_SUCH_KEY_VARIABLE}") + PREDICT,
                                     ["statement 1 (line 1)",
                                      "environment variable NO_SUCH_KEY_VARIABLE is not set"]),
    "model created twice": (model() + model() + PREDICT,
                            ["statement 2 (line 2)", "model", "already exists"]),
    "drop unknown model": ("DROP MODEL ghost", ["statement 1", "model ghost does not exist"]),
    "output clashes with input": (SOURCE + model(outputs="n STRING") + PREDICT,
                                  ["output column 'n' of model m", "TABLE src"]),
    "malformed ML_PREDICT": (SOURCE + model() + "SELECT * FROM ML_PREDICT(TABLE src, DESCRIPTOR(txt))",
                             ["statement 4", "ML_PREDICT", "MODEL"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_reported_before_the_job(case: str, t_env) -> None:
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
