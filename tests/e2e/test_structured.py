"""Typed structured answers, several input columns and usage columns as real Flink jobs on the
mini-cluster, against the fake server: it refuses a schema OpenAI's strict mode would refuse,
answers from the schema it receives (tests/fakes/structured.py) and gives wrong answers on request.

Expected values follow the fake's documented rules (flink_ml_predict.demo_answers.schema_value),
worked out by hand here: words are the \\w+ runs of the row's user message; an integer is their
number, a number round(1 - 1 / (1 + words), 2), a boolean whether that number is even, a label
the keyword classifier's, an array one item per keyword (up to three distinct words, longest
first). Token counts are the fake's: about four characters a token per message.
"""

from __future__ import annotations

import datetime
import decimal
import json
import re
import runpy

import pytest

from flink_ml_predict import StatementError, execute_script, predict, register_model
from flink_ml_predict.demo_server import DemoServer
from tests.conftest import (
    ROOT,
    TEST_KEY,
    collect,
    committed_json_rows,
    model_options,
    print_rows,
    render_model,
    run_cli,
)
from tests.fakes.openai_server import Fault
from tests.fakes.structured import WrongAnswer, row_key

pytestmark = pytest.mark.flink

LABEL = "positive, negative, neutral or mixed"
SYSTEM = "You are a helpful assistant."
SCRIPT = ROOT / "sql" / "structured_review_extraction.sql"
SCRIPT_SYSTEM = ("Extract the sentiment of the movie comment, how confident you are (0 to 1) and "
                 "up to three keywords.")
COMMENT_1 = "最愛小孩子猜聲音那段,算得上看過的電影裡相當浪漫的敘事了。很溫和也很有愛。"
# The user messages of the script's two rows ('電影:{movie_name}\n評論:{user_comment}').
USER_1 = f"電影:好東西\n評論:{COMMENT_1}"
USER_2 = "電影:水餃皇后\n評論:乏善可陳"
REVIEW_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["label", "confidence", "keywords"],
    "properties": {
        "label": {"type": ["string", "null"], "description": LABEL},
        "confidence": {"type": ["number", "null"]},
        "keywords": {"type": ["array", "null"], "items": {"type": ["string", "null"]}},
    },
}


def tokens(*texts: str) -> int:
    """The fake server's token count of some messages: max(1, ceil(chars / 4)) each."""
    return sum(max(1, (len(t) + 3) // 4) for t in texts)


def ddl(name: str, endpoint: str, *, inputs: str = "`input` STRING", output: str,
        **options: str) -> str:
    return render_model(name, model_options(endpoint, **options), inputs=inputs,
                        output=output) + ";\n"


def chat_bodies(server) -> list[dict]:
    assert server.wait_idle()
    return [r.body for r in server.completed_requests("/chat/completions")]


def bodies_of(server, key: str) -> list[dict]:
    """The chat requests of the row whose input (first user message) is `key`, in order."""
    return [b for b in chat_bodies(server) if row_key(b) == key]


# --- the script: typed rows through the CLI, exact values through collect -----------


def test_the_review_extraction_script_prints_typed_rows(server) -> None:
    result = run_cli(["run", str(SCRIPT)],
                     {"BAILIAN_ENDPOINT": server.dashscope_base_url + "/chat/completions",
                      "DASHSCOPE_API_KEY": TEST_KEY})
    assert result.returncode == 0, result.stderr
    assert sorted(print_rows(result.stdout)) == [
        "+I[1, 好東西, positive, 0.86, [算得上看過的電影裡相當浪漫的敘事了, 最愛小孩子猜聲音那段, "
        f"很溫和也很有愛], {tokens(SCRIPT_SYSTEM, USER_1)}, positive]",
        f"+I[2, 水餃皇后, negative, 0.8, [水餃皇后, 乏善可陳, 電影], {tokens(SCRIPT_SYSTEM, USER_2)}, "
        "negative]",
    ]
    response_format = {"type": "json_schema", "json_schema": {
        "name": "review_extraction", "strict": True, "schema": REVIEW_SCHEMA}}
    assert sorted(chat_bodies(server), key=lambda b: b["messages"][1]["content"]) == [
        {"model": "qwen-plus", "response_format": response_format,
         "messages": [{"role": "system", "content": SCRIPT_SYSTEM},
                      {"role": "user", "content": user}]}
        for user in sorted([USER_1, USER_2])]
    assert len(server.requests) == 2  # one request per row
    assert server.structured.received == [response_format] * 2


def test_the_script_runs_against_the_shipped_demo_server() -> None:
    with DemoServer(api_key="demo") as demo:
        result = run_cli(["run", str(SCRIPT)], {
            "BAILIAN_ENDPOINT": f"http://127.0.0.1:{demo.port}/compatible-mode/v1/chat/completions",
            "DASHSCOPE_API_KEY": "demo"})
    assert result.returncode == 0, result.stderr
    assert [row.split(", ")[:4] for row in sorted(print_rows(result.stdout))] == [
        ["+I[1", "好東西", "positive", "0.86"], ["+I[2", "水餃皇后", "negative", "0.8"]]


REVIEW_OUTPUT = (f"label STRING COMMENT '{LABEL}', confidence DOUBLE, keywords ARRAY<STRING>, "
                 "`prompt-tokens` INT")
MOVIES = ("CREATE TEMPORARY VIEW movie_comment(id, movie_name, user_comment) AS VALUES "
          f"(1, '好東西', '{COMMENT_1}'), (2, '水餃皇后', '乏善可陳');\n")


def test_typed_values_with_one_request_per_row(t_env, server) -> None:
    execute_script(t_env, ddl("review", server.dashscope_base_url, provider="qwen",
                              model="qwen-plus", inputs="movie_name STRING, user_comment STRING",
                              output=REVIEW_OUTPUT, system_prompt=SCRIPT_SYSTEM,
                              prompt_template=r"電影:{movie_name}\n評論:{user_comment}") + MOVIES)
    rows = sorted(collect(t_env, "SELECT id, label, confidence, keywords, `prompt-tokens`, "
                                 "CARDINALITY(keywords) AS n, UPPER(label) AS upper_label FROM "
                                 "ML_PREDICT(TABLE movie_comment, MODEL review, "
                                 "DESCRIPTOR(movie_name, user_comment))"))
    assert rows == [
        (1, "positive", 0.86, ["算得上看過的電影裡相當浪漫的敘事了", "最愛小孩子猜聲音那段", "很溫和也很有愛"],
         tokens(SCRIPT_SYSTEM, USER_1), 3, "POSITIVE"),
        (2, "negative", 0.8, ["水餃皇后", "乏善可陳", "電影"], tokens(SCRIPT_SYSTEM, USER_2), 3,
         "NEGATIVE"),
    ]
    assert sorted(b["messages"][1]["content"] for b in chat_bodies(server)) == sorted(
        [USER_1, USER_2])  # one request per input row although 7 columns come from its result


# --- every supported type -------------------------------------------------------------------

ALL_TYPES = (f"label STRING NOT NULL COMMENT '{LABEL}', price DECIMAL(6, 3), `day` DATE, "
             "`at` TIMESTAMP(3), counts MAP<STRING, INT>, "
             "review ROW<stars TINYINT NOT NULL, liked BOOLEAN, tags ARRAY<STRING>>, "
             "director STRING COMMENT 'the director, or null if not named', "
             "ok BOOLEAN NOT NULL, n TINYINT NOT NULL, scores ARRAY<DOUBLE>, big BIGINT, "
             "small SMALLINT, ratio FLOAT, code VARCHAR(40)")


def test_every_supported_type_end_to_end(t_env, server) -> None:
    execute_script(t_env, ddl("m", server.base_url, output=ALL_TYPES) + (
        "CREATE TEMPORARY VIEW src(id, txt) AS VALUES "
        "(1, 'great great film but boring plot'), (2, 'bad');\n"))
    rows = sorted(collect(t_env, "SELECT * FROM ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt))"))
    at = datetime.datetime(2024, 1, 6, 12, 34, 56, 789000)
    assert [r[:5] for r in rows] == [
        (1, "great great film but boring plot", "positive", decimal.Decimal("0.860"),
         datetime.date(2024, 1, 6)),
        (2, "bad", "negative", decimal.Decimal("0.500"), datetime.date(2024, 1, 1))]
    assert [r[5:7] + r[8:] for r in rows] == [
        (at, {"boring": 1, "great": 2, "film": 1}, None, True, 6, [0.5, 0.67, 0.5], 6, 6,
         pytest.approx(0.86), "great great film but boring plot"),
        (at.replace(day=1), {"bad": 1}, None, False, 1, [0.5], 1, 1, 0.5, "bad")]
    assert [tuple(r[7]) for r in rows] == [(6, True, ["boring", "great", "film"]),
                                           (1, False, ["bad"])]  # the nested ROW
    (schema,) = {json.dumps(f["json_schema"]["schema"]) for f in server.structured.received}
    properties = json.loads(schema)["properties"]
    assert properties["label"] == {"type": "string", "description": LABEL}
    assert properties["price"] == {"type": ["number", "null"]}
    assert properties["day"] == {"type": ["string", "null"], "description": "a date as YYYY-MM-DD"}
    assert properties["at"] == {"type": ["string", "null"],
                                "description": "a date and time as YYYY-MM-DD HH:MM:SS"}
    assert properties["counts"] == {
        "type": ["array", "null"], "description": "a map, as a list of key/value entries",
        "items": {"type": "object", "additionalProperties": False, "required": ["key", "value"],
                  "properties": {"key": {"type": "string"},
                                 "value": {"type": ["integer", "null"]}}}}
    assert properties["review"] == {"anyOf": [
        {"type": "object", "additionalProperties": False,
         "required": ["stars", "liked", "tags"],
         "properties": {"stars": {"type": "integer"}, "liked": {"type": ["boolean", "null"]},
                        "tags": {"type": ["array", "null"],
                                 "items": {"type": ["string", "null"]}}}},
        {"type": "null"}]}
    assert (properties["ok"], properties["n"]) == ({"type": "boolean"}, {"type": "integer"})
    assert len(server.requests) == 2


def test_n_choices_give_one_typed_row_each(t_env, server) -> None:
    execute_script(t_env, ddl("m", server.base_url, n="2",
                              output=f"label STRING COMMENT '{LABEL}', words INT, summary STRING")
                   + "CREATE TEMPORARY VIEW src(id, txt) AS VALUES (1, 'I love it');\n")
    rows = sorted(collect(t_env, "SELECT * FROM ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt))"))
    assert rows == [(1, "I love it", "positive", 3, "I love it"),
                    (1, "I love it", "positive", 4, "I love it #2")]
    assert [b["n"] for b in chat_bodies(server)] == [2]


# --- answers that do not fit: re-asked, then the strategy -----------------------------------

ROWS = "CREATE TEMPORARY VIEW src(id, txt) AS VALUES (1, 'I love it'), (2, 'bad film');\n"
REPAIR = ". Reply again with only the corrected JSON object, matching the required schema exactly."


def test_wrong_answers_are_asked_again_until_they_fit(t_env, server) -> None:
    server.structured.script("bad film", [WrongAnswer.not_json(), WrongAnswer.missing("confidence")])
    execute_script(t_env, ddl("m", server.base_url, system_prompt="Rate it.",
                              output=f"label STRING COMMENT '{LABEL}', confidence DOUBLE NOT NULL")
                   + ROWS)
    rows = sorted(collect(t_env, "SELECT id, label, confidence FROM ML_PREDICT(TABLE src, "
                                 "MODEL m, DESCRIPTOR(txt))"))
    assert rows == [(1, "positive", 0.75), (2, "negative", 0.67)]
    asked = [b["messages"] for b in bodies_of(server, "bad film")]
    first = [{"role": "system", "content": "Rate it."}, {"role": "user", "content": "bad film"}]
    assert len(asked) == 3 and asked[0] == first
    assert asked[1][:3] == [*first, {"role": "assistant", "content": 'Sure! {"label": '}]
    assert asked[1][3]["role"] == "user" and re.fullmatch(
        r"That answer cannot be used: not valid JSON \(.+\)" + re.escape(REPAIR),
        asked[1][3]["content"])
    assert asked[2] == [*first, {"role": "assistant", "content": '{"label": "negative"}'},
                        {"role": "user", "content": "That answer cannot be used: confidence: "
                                                    "Field required" + REPAIR}]
    assert len(bodies_of(server, "I love it")) == 1


USAGE = "`prompt-tokens` INT, `completion-tokens` INT, `total-tokens` INT, `finish-reason` STRING"
ERRORS = "`error-string` STRING, `http-status-code` INT"


def test_ignore_keeps_the_reason_and_the_answer_in_error_string(t_env, server) -> None:
    server.structured.always("bad film", WrongAnswer.wrong_type("confidence"))
    execute_script(t_env, ddl("m", server.base_url, error_handling_strategy="IGNORE",
                              output_retry_num="1",
                              output=f"{REVIEW_OUTPUT.replace('`prompt-tokens` INT', USAGE)}, "
                                     f"{ERRORS}") + ROWS)
    rows = sorted(collect(t_env, "SELECT * FROM ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt))"))
    good = json.dumps({"label": "positive", "confidence": 0.75, "keywords": ["love", "it", "I"]})
    assert rows[0] == (1, "I love it", "positive", 0.75, ["love", "it", "I"],
                       tokens(SYSTEM, "I love it"), tokens(good),
                       tokens(SYSTEM, "I love it") + tokens(good), "stop", None, None)
    wrong = '{"label": "negative", "confidence": ["not", "a", "number"], "keywords": ["film", "bad"]}'
    assert rows[1] == (2, "bad film", None, None, None, None, None, None, None,
                       "the answer does not fit the OUTPUT columns: confidence: Input should be "
                       f"a valid number; answer: {wrong!r}", None)
    assert len(bodies_of(server, "bad film")) == 2  # asked once more (output-retry-num 1)


def test_failover_fails_the_job_with_the_same_text(t_env, server) -> None:
    server.structured.always("bad film", WrongAnswer.not_json())
    script = (ddl("m", server.base_url, error_handling_strategy="FAILOVER", output_retry_num="0",
                  output=f"label STRING COMMENT '{LABEL}', confidence DOUBLE") + ROWS
              + "CREATE TEMPORARY TABLE sink (id INT, txt STRING, label STRING, confidence DOUBLE) "
              "WITH ('connector' = 'blackhole');\n"
              "INSERT INTO sink SELECT * FROM ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt))")
    with pytest.raises(StatementError) as caught:
        execute_script(t_env, script)
    message = str(caught.value)
    assert ("ML_PREDICT with model m failed (error-handling-strategy FAILOVER): the answer does "
            "not fit the OUTPUT columns: not valid JSON (expected value at line 1 column 1); "
            """answer: 'Sure! {"label": '""") in message
    assert TEST_KEY not in message
    assert len(bodies_of(server, "bad film")) == 1  # output-retry-num 0: not asked again


def test_json_object_mode_puts_the_schema_in_the_system_message(t_env, server) -> None:
    execute_script(t_env, ddl("m", server.dashscope_base_url, provider="qwen", model="qwen-turbo",
                              output_format="json-object", system_prompt="Rate the review.",
                              output=f"label STRING COMMENT '{LABEL}', confidence DOUBLE, "
                                     "keywords ARRAY<STRING>") + ROWS)
    rows = sorted(collect(t_env, "SELECT * FROM ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt))"))
    assert rows == [(1, "I love it", "positive", 0.75, ["love", "it", "I"]),
                    (2, "bad film", "negative", 0.67, ["film", "bad"])]
    prefix = ("Rate the review.\n\nAnswer with one JSON object, and nothing else, that matches "
              "this JSON Schema: ")
    for body in chat_bodies(server):
        assert body["response_format"] == {"type": "json_object"}
        system = body["messages"][0]
        assert system["role"] == "system" and system["content"].startswith(prefix)
        assert json.loads(system["content"][len(prefix):]) == REVIEW_SCHEMA
    assert server.structured.received == [{"type": "json_object"}] * 2


# --- usage columns, plain models -------------------------------------------------------------


def test_usage_columns_for_plain_chat_and_embeddings_with_error_columns(t_env, server) -> None:
    server.fail_always("refused", Fault.status_code(400))
    rows = "CREATE TEMPORARY VIEW src(id, txt) AS VALUES (1, 'hello there'), (2, 'refused');\n"
    execute_script(t_env, ddl("chat", server.base_url, error_handling_strategy="IGNORE",
                              output=f"content STRING, {USAGE}, {ERRORS}")
                   + ddl("emb", server.base_url + "/embeddings", model="text-embedding-3-small",
                         error_handling_strategy="IGNORE", dimension="2",
                         batch_size="1",  # the fault is keyed on one input; batches: see
                         # test_throughput_flink.py
                         output="embedding ARRAY<FLOAT>, `prompt-tokens` INT, `total-tokens` INT, "
                                "`error-string` STRING") + rows)
    chat = sorted(collect(t_env, "SELECT * FROM ML_PREDICT(TABLE src, MODEL chat, "
                                 "DESCRIPTOR(txt))"))
    prompt = tokens(SYSTEM, "hello there")
    assert chat == [(1, "hello there", "hello there", prompt, tokens("hello there"),
                     prompt + tokens("hello there"), "stop", None, None),
                    (2, "refused", None, None, None, None, None, "HTTP 400: Injected error 400.",
                     400)]
    embedded = sorted(collect(t_env, "SELECT id, CARDINALITY(embedding), `prompt-tokens`, "
                                     "`total-tokens`, `error-string` FROM ML_PREDICT(TABLE src, "
                                     "MODEL emb, DESCRIPTOR(txt))"))
    assert embedded == [(1, 2, tokens("hello there"), tokens("hello there"), None),
                        (2, None, None, None, "HTTP 400: Injected error 400.")]


# --- several input columns ---------------------------------------------------------------------

INPUTS = "title STRING, stars INT, price DECIMAL(5, 2), seen DATE, tags ARRAY<STRING>"
TYPED_ROWS = (
    "CREATE TEMPORARY VIEW films(id, title, stars, price, seen, tags) AS VALUES "
    "(1, 'Up', 5, CAST(12.5 AS DECIMAL(5, 2)), DATE '2024-05-01', CAST(ARRAY['a', 'b'] AS "
    "ARRAY<STRING>)), (2, CAST(NULL AS STRING), 3, CAST(NULL AS DECIMAL(5, 2)), "
    "DATE '2024-05-02', CAST(ARRAY['c'] AS ARRAY<STRING>));\n")


def test_several_input_columns_as_json_and_through_a_template(t_env, server) -> None:
    template = r"Title: {title} ({stars} stars, {price} EUR, seen {seen})\ntags={tags} {{x}}"
    execute_script(t_env, ddl("plain", server.base_url, inputs=INPUTS, output="content STRING")
                   + ddl("templated", server.base_url, inputs=INPUTS, output="answer STRING",
                         prompt_template=template) + TYPED_ROWS)
    query = ("SELECT id, {0} FROM ML_PREDICT(TABLE films, MODEL {1}, "
             "DESCRIPTOR(title, stars, price, seen, tags))")
    as_json = sorted(collect(t_env, query.format("content", "plain")))
    assert as_json == [
        (1, '{"title": "Up", "stars": 5, "price": 12.5, "seen": "2024-05-01", "tags": ["a", "b"]}'),
        (2, '{"title": null, "stars": 3, "price": null, "seen": "2024-05-02", "tags": ["c"]}')]
    templated = sorted(collect(t_env, query.format("answer", "templated")))
    assert templated == [(1, 'Title: Up (5 stars, 12.50 EUR, seen 2024-05-01)\ntags=["a", "b"] {x}'),
                         (2, 'Title:  (3 stars,  EUR, seen 2024-05-02)\ntags=["c"] {x}')]
    sent = sorted(b["messages"][1]["content"] for b in chat_bodies(server))
    assert sent == sorted([text for _, text in as_json + templated])  # one request per row


# --- the Python API ----------------------------------------------------------------------------


def test_python_api_typed_columns_with_comments_and_several_inputs(t_env, server) -> None:
    register_model(t_env, "review", {
        "provider": "openai", "endpoint": server.base_url, "api-key": TEST_KEY,
        "model": "gpt-4o-mini", "prompt-template": r"{title}\n{body}"},
        inputs=[("title", "STRING"), ("body", "STRING", "the review text")],
        outputs=[("label", "STRING NOT NULL", LABEL), ("words", "TINYINT"),
                 ("error-string", "STRING")])
    comments = t_env.from_elements([(1, "Great", "I love it"), (2, "Meh", "boring and bad")],
                                   ["id", "title", "body"])
    table = predict(t_env, comments, "review", ["title", "body"])
    assert table.get_schema().get_field_names() == ["id", "title", "body", "label", "words",
                                                    "error-string"]
    with table.execute().collect() as results:
        rows = sorted(tuple(r) for r in results)
    assert rows == [(1, "Great", "I love it", "positive", 4, None),
                    (2, "Meh", "boring and bad", "negative", 4, None)]
    (schema,) = {json.dumps(f["json_schema"]["schema"]) for f in server.structured.received}
    assert json.loads(schema)["properties"]["label"] == {"type": "string", "description": LABEL}
    assert sorted(b["messages"][1]["content"] for b in chat_bodies(server)) == [
        "Great\nI love it", "Meh\nboring and bad"]


def test_the_structured_pyflink_example(server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_ENDPOINT", server.base_url + "/chat/completions")
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    example = runpy.run_path(str(ROOT / "examples" / "pyflink_review_extraction.py"))
    assert example["main"](["--output", str(tmp_path / "out")]) == 0
    user_2 = "Movie: 水餃皇后\nComment: 乏善可陳"
    assert sorted(committed_json_rows(tmp_path / "out"), key=lambda r: r["id"]) == [
        {"id": 1, "movie_name": "好東西", "label": "positive", "confidence": 0.86,
         "keywords": ["算得上看過的電影裡相當浪漫的敘事了", "最愛小孩子猜聲音那段", "Comment"],
         "prompt_tokens": tokens(SCRIPT_SYSTEM, f"Movie: 好東西\nComment: {COMMENT_1}"),
         "error": None},
        {"id": 2, "movie_name": "水餃皇后", "label": "negative", "confidence": 0.8,
         "keywords": ["Comment", "Movie", "水餃皇后"], "prompt_tokens": tokens(SCRIPT_SYSTEM, user_2),
         "error": None}]
