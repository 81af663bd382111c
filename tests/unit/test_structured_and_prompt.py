"""A structured model's JSON Schema and answer validation; the user message from INPUT values."""

from __future__ import annotations

import datetime
import decimal
import pickle

import pytest
from pyflink.common import Row

from flink_ml_predict.columns import InputColumn, OutputColumn, Role
from flink_ml_predict.prompt import PromptBuilder, PromptTemplate, format_value
from flink_ml_predict.structured import InvalidAnswer, StructuredOutput
from flink_ml_predict.types import parse_type


def structured(*columns: tuple[str, str] | tuple[str, str, str]) -> StructuredOutput:
    return StructuredOutput("review extract", [
        OutputColumn(c[0], parse_type(c[1]), Role.FIELD, c[2] if len(c) > 2 else None)
        for c in columns])


def test_the_schema_is_strict_with_descriptions_and_nullability() -> None:
    out = structured(("label", "STRING NOT NULL", "positive or negative"),
                     ("confidence", "DOUBLE"),
                     ("tags", "ARRAY<STRING NOT NULL> NOT NULL"),
                     ("counts", "MAP<STRING, INT NOT NULL> NOT NULL"),
                     ("who", "ROW<name STRING NOT NULL 'full name'>"))
    assert out.response_format() == {"type": "json_schema", "json_schema": {
        "name": "review_extract", "strict": True, "schema": {
            "type": "object", "additionalProperties": False,
            "required": ["label", "confidence", "tags", "counts", "who"],
            "properties": {
                "label": {"type": "string", "description": "positive or negative"},
                "confidence": {"type": ["number", "null"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "counts": {"type": "array", "description": "a map, as a list of key/value entries",
                           "items": {"type": "object", "additionalProperties": False,
                                     "required": ["key", "value"],
                                     "properties": {"key": {"type": "string"},
                                                    "value": {"type": "integer"}}}},
                "who": {"anyOf": [{"type": "object", "additionalProperties": False,
                                   "required": ["name"],
                                   "properties": {"name": {"type": "string",
                                                           "description": "full name"}}},
                                  {"type": "null"}]}}}}}
    assert "matches this JSON Schema" in out.instructions()
    assert '"required":["label","confidence","tags","counts","who"]' in out.instructions()


def test_answers_become_the_python_values_pyflink_expects() -> None:
    out = structured(("label", "STRING"), ("n", "TINYINT"), ("price", "DECIMAL(5, 2)"),
                     ("day", "DATE"), ("at", "TIMESTAMP(3)"), ("ok", "BOOLEAN"),
                     ("m", "MAP<STRING, DOUBLE>"), ("r", "ARRAY<ROW<a INT, b STRING>>"))
    values = out.parse('{"label": "x", "n": -128, "price": 123.456, "day": "2024-02-29", '
                       '"at": "2024-02-29T10:20:30.5+02:00", "ok": true, '
                       '"m": [{"key": "k", "value": 1.5}], "r": [{"a": 1, "b": "z"}, null]}')
    assert values == ["x", -128, decimal.Decimal("123.46"), datetime.date(2024, 2, 29),
                      datetime.datetime(2024, 2, 29, 10, 20, 30, 500000), True, {"k": 1.5},
                      [Row(1, "z"), None]]
    fenced = out.parse('```json\n{"label": null, "n": null, "price": null, "day": null, '
                       '"at": null, "ok": null, "m": {"plain": 2}, "r": []}\n```')
    assert fenced == [None] * 6 + [{"plain": 2.0}, []]


@pytest.mark.parametrize("answer, reason", [
    ("positive", "not valid JSON"),
    ("", "not valid JSON"),
    ('{"label": "x"}', "n: Field required"),
    ('{"label": "x", "n": 128}', "n: Input should be less than 128"),
    ('{"label": "x", "n": 1.5}', "fractional part"),
    ('{"label": null, "n": 1}', "label: Input should be a valid string"),
    ('{"label": "x", "n": 1, "extra": 2}', "extra: Extra inputs are not permitted"),
])
def test_answers_that_do_not_fit_say_why_and_show_the_answer(answer: str, reason: str) -> None:
    out = structured(("label", "STRING NOT NULL"), ("n", "TINYINT"))
    with pytest.raises(InvalidAnswer) as caught:
        out.parse(answer)
    assert reason in caught.value.reason
    assert caught.value.describe().endswith(f"answer: {answer!r}")


def test_decimals_that_do_not_fit_and_long_answers_are_cut_in_the_message() -> None:
    out = structured(("price", "DECIMAL(4, 2)"))
    with pytest.raises(InvalidAnswer) as caught:
        out.parse('{"price": 123.4}')
    assert "does not fit DECIMAL(4, 2)" in caught.value.reason
    with pytest.raises(InvalidAnswer) as caught:
        out.parse("x" * 1000)
    assert caught.value.describe().endswith("x" * 200 + "...'")


def test_structured_output_pickles_to_the_same_schema() -> None:
    out = structured(("a", "ROW<b ARRAY<INT>>"))
    copy = pickle.loads(pickle.dumps(out))
    assert copy.schema == out.schema and copy.parse('{"a": {"b": [1]}}') == [Row([1])]


INPUTS = (InputColumn("title", parse_type("STRING")), InputColumn("body", parse_type("STRING")),
          InputColumn("stars", parse_type("INT")))


def test_a_template_fills_columns_by_name_with_escapes() -> None:
    template = PromptTemplate.parse(r"Title: {title}\nReview: {body}\tStars: {stars} {{json}} \\n",
                                    INPUTS)
    builder = PromptBuilder(INPUTS, template)
    assert builder.build(["T", "good", 5]) == "Title: T\nReview: good\tStars: 5 {json} \\n"
    assert builder.build([None, "good", None]) == "Title: \nReview: good\tStars:  {json} \\n"
    assert builder.build([None, None, None]) is None


def test_without_a_template_one_column_is_its_text_and_several_are_json() -> None:
    assert PromptBuilder(INPUTS[:1]).build(["just text"]) == "just text"
    assert PromptBuilder(INPUTS).build(["T", None, 4]) == '{"title": "T", "body": null, "stars": 4}'
    assert PromptBuilder(INPUTS).build(["標題", "b", 1]).startswith('{"title": "標題"')


@pytest.mark.parametrize("type_text, value, text", [
    ("BOOLEAN", True, "true"),
    ("DOUBLE", 4.5, "4.5"),
    ("DECIMAL(5, 2)", decimal.Decimal("12.50"), "12.50"),
    ("DATE", datetime.date(2024, 5, 1), "2024-05-01"),
    ("TIMESTAMP(3)", datetime.datetime(2024, 5, 1, 12, 30), "2024-05-01 12:30:00"),
    ("ARRAY<INT>", [1, None], "[1, null]"),
    ("MAP<STRING, BOOLEAN>", {"a": False}, '{"a": false}'),
    ("ROW<a INT, b ARRAY<STRING>>", Row(1, ["x"]), '{"a": 1, "b": ["x"]}'),
    ("STRING", None, ""),
])
def test_values_are_formatted_by_type(type_text: str, value: object, text: str) -> None:
    assert format_value(value, parse_type(type_text)) == text


@pytest.mark.parametrize("template, message", [
    ("{review}", "placeholder {review} is not an INPUT column; INPUT columns: title, body, stars"),
    ("{title!r}", "placeholder {title!r} must be an INPUT column name"),
    ("{}", "placeholder {} must be an INPUT column name"),
    ("a } b", "literal braces"),
])
def test_bad_templates_name_the_input_columns(template: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        PromptTemplate.parse(template, INPUTS)
    assert message in str(caught.value)
