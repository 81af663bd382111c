"""The fake server's structured answers (tests/fakes/structured.py) and the demo's schema rules,
over real sockets with the real openai SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from flink_ml_predict.demo_answers import schema_value
from flink_ml_predict.demo_server import DemoServer
from tests.fakes.openai_server import FaultInjectingServer
from tests.fakes.structured import WrongAnswer, strict_schema_problem

KEY = "sk-structured-fake"
SCHEMA = {"type": "object", "additionalProperties": False,
          "required": ["label", "words", "tags", "sizes"],
          "properties": {
              "label": {"type": "string", "description": "positive, negative or neutral"},
              "words": {"type": ["integer", "null"]},
              "tags": {"type": "array", "items": {"type": "string"}},
              "sizes": {"type": "array", "items": {
                  "type": "object", "additionalProperties": False, "required": ["key", "value"],
                  "properties": {"key": {"type": "string"}, "value": {"type": "integer"}}}}}}


def json_schema(schema: Any, name: str = "review") -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}


@pytest.fixture
def server() -> Iterator[FaultInjectingServer]:
    with FaultInjectingServer(api_key=KEY) as running:
        yield running


@pytest.fixture
def client(server: FaultInjectingServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0) as sdk:
        yield sdk


def ask(client: openai.OpenAI, user: str, *, system: str = "Extract.", **kwargs: Any) -> list[str]:
    response = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "system", "content": system},
                                       {"role": "user", "content": user}], **kwargs)
    return [c.message.content or "" for c in response.choices]


def test_json_schema_requests_get_json_of_their_schema_one_per_choice(server, client) -> None:
    answers = ask(client, "good good film, bad end", response_format=json_schema(SCHEMA), n=2)
    assert [json.loads(a) for a in answers] == [
        {"label": "positive", "words": 5, "tags": ["good", "film", "bad"],
         "sizes": [{"key": "good", "value": 2}, {"key": "film", "value": 1},
                   {"key": "bad", "value": 1}]},
        {"label": "positive", "words": 6, "tags": ["good #2", "film #2", "bad #2"],
         "sizes": [{"key": "good", "value": 3}, {"key": "film", "value": 2},
                   {"key": "bad", "value": 2}]}]
    assert server.structured.received == [json_schema(SCHEMA)]
    assert ask(client, "plain") == ["plain"]  # no response_format: the rule-based text
    assert server.structured.received == [json_schema(SCHEMA), None]


@pytest.mark.parametrize("schema, message", [
    ({**SCHEMA, "additionalProperties": True},
     "In context=(), 'additionalProperties' is required to be supplied and to be false."),
    ({**SCHEMA, "required": ["label"]},
     "In context=(), 'required' is required to be supplied and to be an array including every "
     "key in properties. Missing 'words'."),
    ({"type": "object", "additionalProperties": False, "required": ["r"],
      "properties": {"r": {"type": "object", "properties": {"a": {"type": "string"}},
                           "required": ["a"]}}},
     "In context=('properties', 'r'), 'additionalProperties' is required"),
    ({"type": "array", "items": {"type": "string"}},
     "In context=(), the root schema must be of type 'object'."),
    ({"type": "object", "additionalProperties": False, "required": ["d"],
      "properties": {"d": {"type": "date"}}},
     "In context=('properties', 'd'), schema must have a 'type' key of ['array', 'boolean', "
     "'integer', 'null', 'number', 'object', 'string']."),
])
def test_a_schema_strict_mode_refuses_is_a_400(client, schema: Any, message: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, "x", response_format=json_schema(schema))
    assert caught.value.status_code == 400
    assert f"Invalid schema for response_format 'review': {message}" in str(caught.value)
    with pytest.raises(openai.BadRequestError, match="string does not match pattern"):
        ask(client, "x", response_format=json_schema(SCHEMA, name="a review"))


def test_json_object_reads_the_schema_from_the_system_message(client) -> None:
    system = "Rate it. Answer in JSON matching this JSON Schema: " + json.dumps(SCHEMA)
    (answer,) = ask(client, "I love it", system=system, response_format={"type": "json_object"})
    assert json.loads(answer) == {"label": "positive", "words": 3, "tags": ["love", "it", "I"],
                                  "sizes": [{"key": "love", "value": 1}, {"key": "it", "value": 1},
                                            {"key": "I", "value": 1}]}
    (plain,) = ask(client, "I love it", system="Reply in JSON.",
                   response_format={"type": "json_object"})
    assert json.loads(plain) == {"answer": "I love it"}
    with pytest.raises(openai.BadRequestError, match="must contain the word 'json'"):
        ask(client, "I love it", system="Rate it.", response_format={"type": "json_object"})


def test_wrong_answers_follow_the_script_of_the_row_then_always(server, client) -> None:
    server.structured.script("bad", [WrongAnswer.not_json(), None, WrongAnswer.missing("tags")])
    server.structured.always("bad", WrongAnswer.wrong_type("words"))
    formats = {"response_format": json_schema(SCHEMA)}
    good = {"label": "negative", "words": 1, "tags": ["bad"], "sizes": [{"key": "bad", "value": 1}]}
    assert ask(client, "bad", **formats) == ['Sure! {"label": ']
    assert [json.loads(a) for a in ask(client, "bad", **formats)] == [good]
    assert [json.loads(a) for a in ask(client, "bad", **formats)] == [
        {k: v for k, v in good.items() if k != "tags"}]
    assert [json.loads(a) for a in ask(client, "bad", **formats)] == [
        {**good, "words": ["not", "a", "integer"]}]
    # a re-ask carries the row's input as its first user message: the row's script applies
    messages: Any = [{"role": "user", "content": "bad"}, {"role": "assistant", "content": "x"},
                     {"role": "user", "content": "That answer cannot be used."}]
    again = client.chat.completions.create(model="m", messages=messages, **formats)
    assert json.loads(again.choices[0].message.content or "")["words"] == ["not", "a", "integer"]
    assert [json.loads(a) for a in ask(client, "fine", **formats)][0]["label"] == "neutral"
    assert WrongAnswer.wrong_type("tags").apply(json.dumps(good)) == json.dumps(
        {**good, "tags": "not an array"})
    assert WrongAnswer.literal("nope").apply("{}") == "nope"


def test_strict_schema_problem_accepts_the_packages_schemas() -> None:
    nullable_row = {"anyOf": [{"type": "object", "additionalProperties": False, "required": ["a"],
                               "properties": {"a": {"type": ["string", "null"]}}},
                              {"type": "null"}]}
    schema = {"type": "object", "additionalProperties": False, "required": ["r"],
              "properties": {"r": nullable_row}}
    assert strict_schema_problem(schema) is None
    assert strict_schema_problem(SCHEMA) is None


@pytest.mark.parametrize("schema, text, value", [
    ({"type": ["string", "null"], "description": "the director, or null if unknown"}, "a b", None),
    ({"type": "string", "description": "POSITIVE / NEGATIVE"}, "awful", "NEGATIVE"),
    ({"type": "string", "description": "[yes, no]"}, "whatever", "yes"),  # neither: the first
    ({"type": "string", "description": "a date as YYYY-MM-DD"}, "one two", "2024-01-02"),
    ({"type": "string", "description": "a date and time as YYYY-MM-DD HH:MM:SS"}, "",
     "2024-01-01 12:34:56.789"),
    ({"type": "string", "description": "the reviewer's name"}, "Ann wrote", "Ann wrote"),
    ({"type": "number"}, "one two three", 0.75),
    ({"type": "boolean"}, "one two", True),
    ({"type": "array", "items": {"type": "integer"}}, "", []),
])
def test_schema_value_rules(schema: dict[str, Any], text: str, value: Any) -> None:
    assert schema_value(schema, text) == value


def test_the_demo_server_answers_a_json_schema_request() -> None:
    with DemoServer() as demo, openai.OpenAI(base_url=f"http://127.0.0.1:{demo.port}/v1",
                                             api_key="x", max_retries=0) as sdk:
        (answer,) = ask(sdk, "I love it", response_format=json_schema(SCHEMA))
    assert json.loads(answer)["label"] == "positive"
