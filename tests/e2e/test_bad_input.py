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
    "two input columns, one in DESCRIPTOR": (
        SOURCE + model(inputs="a STRING, b STRING") + PREDICT,
        ["statement 4", "model m takes 2 input columns (a STRING, b STRING)", "by position",
         "DESCRIPTOR names 1: txt"]),
    "embeddings input not a string": (
        model(endpoint=ENDPOINT + "/embeddings", inputs="x INT",
              outputs="v ARRAY<FLOAT>") + PREDICT,
        ["embeddings model takes exactly one STRING INPUT column", "`x` INT"]),
    "embeddings with two inputs": (
        model(endpoint=ENDPOINT + "/embeddings", inputs="a STRING, b STRING",
              outputs="v ARRAY<FLOAT>") + PREDICT,
        ["embeddings model takes exactly one STRING INPUT column", "`a` STRING, `b` STRING"]),
    "output of an unsupported type": (model(outputs="score BYTES") + PREDICT,
                                      ["statement 1", "column 'score' has type BYTES",
                                       "not supported", "supported: STRING"]),
    "nested unsupported type": (model(outputs="label STRING, at ARRAY<TIME>") + PREDICT,
                                ["column 'at' has type ARRAY<TIME>", "TIME is not supported"]),
    "unknown output type": (model(outputs="score NUMBERX") + PREDICT,
                            ["column 'score' has type NUMBERX", "unknown type NUMBERX"]),
    "decimal precision too large": (model(outputs="price DECIMAL(40, 2)") + PREDICT,
                                    ["column 'price'", "1 <= precision <= 38"]),
    "map with non-string keys in a structured answer": (
        model(outputs="counts MAP<INT, STRING>") + PREDICT,
        ["column 'counts' has type MAP<INT, STRING>", "MAP<STRING, T>"]),
    "structured output on an embeddings model": (
        model(endpoint=ENDPOINT + "/embeddings", outputs="a STRING, v ARRAY<FLOAT>") + PREDICT,
        ["option 'endpoint' selects embeddings", "ARRAY<FLOAT>",
         "structured OUTPUT is for chat models", "'a' STRING, 'v' ARRAY<FLOAT>"]),
    "endpoint embeddings but output string": (
        model(endpoint=ENDPOINT + "/embeddings") + PREDICT,
        ["option 'endpoint' selects embeddings", "ARRAY<FLOAT>", "found 'content' STRING"]),
    "response-format text with structured output": (
        model(outputs="label STRING, confidence DOUBLE", response__format="text") + PREDICT,
        ["option 'response-format' = 'text' contradicts the structured OUTPUT",
         "label, confidence"]),
    "output-format on a plain model": (model(output__format="json-object") + PREDICT,
                                       ["option 'output-format' applies only to structured"]),
    "output-retry-num out of range": (
        model(outputs="label STRING, n2 INT", output__retry__num="11") + PREDICT,
        ["option 'output-retry-num'", "[0, 10]"]),
    "template placeholder not in INPUT": (
        model(inputs="title STRING, body STRING", prompt__template="T: {title} R: {review}")
        + PREDICT, ["option 'prompt-template'", "placeholder {review} is not an INPUT column",
                    "INPUT columns: title, body"]),
    "template with a lone brace": (
        model(prompt__template="JSON like {") + PREDICT,
        ["option 'prompt-template'", "{{ and }} for literal braces"]),
    "template with a format spec": (
        model(prompt__template="{input:>10}") + PREDICT,
        ["placeholder {input:>10} must be an INPUT column name"]),
    "usage column of the wrong type": (
        model(outputs="content STRING, `prompt-tokens` STRING") + PREDICT,
        ["metadata column 'prompt-tokens' must have type INT, not STRING"]),
    "finish-reason on an embeddings model": (
        model(endpoint=ENDPOINT + "/embeddings", outputs="v ARRAY<FLOAT>, `finish-reason` STRING")
        + PREDICT, ["metadata column 'finish-reason' is for chat models"]),
    "only metadata columns": (model(outputs="`error-string` STRING") + PREDICT,
                              ["OUTPUT declares only metadata columns"]),
    "descriptor column of the wrong type for a typed input": (
        SOURCE + model(inputs="body STRING, stars INT") + PREDICT.replace("(txt)", "(txt, txt)"),
        ["column 'txt' of TABLE src is", "takes INT input for INPUT column 'stars'"]),
    "endpoint not a URL": (model(endpoint="api.openai.com") + PREDICT,
                           ["option 'endpoint'", "is not an http(s) URL"]),
    "dimension on a chat model": (model(dimension="8") + PREDICT,
                                  ["option 'dimension' applies only to embeddings models",
                                   "the provider of this model is openai and its task chat"]),
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
    "no INPUT columns": (model().replace("INPUT (`input` STRING) ", "") + PREDICT,
                         ["INPUT (...) is required"]),
    "unknown model": (SOURCE + PREDICT.replace("MODEL m", "MODEL nope"),
                      ["statement 3 (line 3)", "unknown model 'nope'"]),
    "unknown qualified model": (SOURCE + model() + PREDICT.replace("MODEL m", "MODEL other_db.m"),
                                ["statement 4 (line 4)",
                                 "unknown model 'other_db.m' (default_catalog.other_db.m)",
                                 "models created before this statement: m"]),
    "model of the database before USE": (
        SOURCE + model() + "CREATE DATABASE db2;\nUSE db2;\n"
        + PREDICT.replace("TABLE src", "TABLE default_database.src"),
        ["statement 6 (line 6)", "unknown model 'm'",
         "models created before this statement: default_database.m"]),
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
