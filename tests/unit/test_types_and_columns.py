"""Flink type text -> FlinkType, and OUTPUT columns -> roles, task and structured-ness."""

from __future__ import annotations

import pytest

from flink_ml_predict.columns import Role, classify_outputs
from flink_ml_predict.options import Task
from flink_ml_predict.types import FlinkType, TypeSyntaxError, parse_type


@pytest.mark.parametrize("text, canonical", [
    ("STRING", "STRING"),
    ("varchar", "STRING"),
    ("VARCHAR(2147483647)", "STRING"),
    ("VARCHAR(20)", "VARCHAR(20)"),
    ("CHAR", "CHAR(1)"),
    ("INTEGER NOT NULL", "INT NOT NULL"),
    ("DEC", "DECIMAL(10, 0)"),
    ("NUMERIC(5)", "DECIMAL(5, 0)"),
    ("DECIMAL(10, 2)", "DECIMAL(10, 2)"),
    ("DOUBLE PRECISION", "DOUBLE"),
    ("TIMESTAMP", "TIMESTAMP(6)"),
    ("TIMESTAMP(3) WITHOUT TIME ZONE", "TIMESTAMP(3)"),
    ("ARRAY<STRING NOT NULL>", "ARRAY<STRING NOT NULL>"),
    ("INT ARRAY", "ARRAY<INT>"),
    ("MAP<STRING, ARRAY<DOUBLE>>", "MAP<STRING, ARRAY<DOUBLE>>"),
    ("ROW<name STRING 'who''s', `key-x` TINYINT NOT NULL>",
     "ROW<`name` STRING 'who''s', `key-x` TINYINT NOT NULL>"),
    ("ROW(a INT, b BOOLEAN) NOT NULL", "ROW<`a` INT, `b` BOOLEAN> NOT NULL"),
])
def test_types_parse_to_their_canonical_text(text: str, canonical: str) -> None:
    assert parse_type(text).sql() == canonical


@pytest.mark.parametrize("text, reason", [
    ("BYTES", "BYTES is not supported"),
    ("TIMESTAMP_LTZ(3)", "TIMESTAMP_LTZ is not supported"),
    ("TIMESTAMP(3) WITH LOCAL TIME ZONE", "WITH (LOCAL) TIME ZONE is not supported"),
    ("ARRAY<TIME>", "TIME is not supported"),
    ("MAP<STRING>", "expected ','"),
    ("ROW<>", "at least one field"),
    ("ROW<a INT, a STRING>", "duplicate ROW field `a`"),
    ("DECIMAL(3, 5)", "0 <= scale <= precision"),
    ("WHATEVER", "unknown type WHATEVER"),
    ("INT INT", "unexpected 'INT'"),
    ("INT NOT", "expected NULL after NOT"),
    ("ROW<a INT COMMENT 'x'>", "a string after its type, without COMMENT: ROW<a INT '...'>"),
])
def test_bad_types_say_why(text: str, reason: str) -> None:
    with pytest.raises(TypeSyntaxError, match=None) as caught:
        parse_type(text)
    assert reason in str(caught.value)


def test_nested_fields_keep_names_descriptions_and_nullability() -> None:
    row = parse_type("ROW<name STRING NOT NULL 'the name', tags ARRAY<STRING>>")
    assert [f.name for f in row.fields] == ["name", "tags"]
    assert row.fields[0].description == "the name" and not row.fields[0].type.nullable
    assert row.fields[1].type.element == FlinkType("STRING")


def test_same_root_ignores_nullability_and_string_lengths_only() -> None:
    assert parse_type("VARCHAR(5) NOT NULL").same_root(parse_type("STRING"))
    assert parse_type("ARRAY<INT NOT NULL>").same_root(parse_type("ARRAY<INT>"))
    assert not parse_type("INT").same_root(parse_type("BIGINT"))
    assert not parse_type("DECIMAL(10, 2)").same_root(parse_type("DECIMAL(10, 3)"))
    assert not parse_type("ROW<a INT>").same_root(parse_type("ROW<a INT, b INT>"))


def columns(*pairs: str) -> list[tuple[str, FlinkType, str | None]]:
    return [(p.split(" ", 1)[0], parse_type(p.split(" ", 1)[1]), None) for p in pairs]


def test_one_string_column_is_a_plain_chat_model() -> None:
    schema = classify_outputs(columns("content STRING", "error-string STRING",
                                      "prompt-tokens INT"), None)
    assert (schema.task, schema.structured) == (Task.CHAT, False)
    assert [c.role for c in schema.columns] == [Role.VALUE, Role.ERROR_STRING, Role.PROMPT_TOKENS]
    assert schema.keeps_errors


def test_typed_or_several_columns_are_a_structured_chat_model() -> None:
    for outputs in (["label STRING", "confidence DOUBLE"], ["score DOUBLE"],
                    ["v ARRAY<FLOAT>", "finish-reason STRING"]):
        schema = classify_outputs(columns(*outputs), Task.CHAT if "v" in outputs[0] else None)
        assert schema.task is Task.CHAT and schema.structured
        assert {c.role for c in schema.model_columns} == {Role.FIELD}
        assert not schema.keeps_errors


def test_one_float_array_is_an_embeddings_model() -> None:
    schema = classify_outputs(columns("v ARRAY<FLOAT>", "total-tokens INT"), None)
    assert (schema.task, schema.structured) == (Task.EMBEDDINGS, False)


def test_cells_put_values_and_metadata_in_declared_order() -> None:
    schema = classify_outputs(columns("error-string STRING", "label STRING", "n INT",
                                      "total-tokens INT"), None)
    assert schema.cells(["x", 3], {Role.TOTAL_TOKENS: 12}) == (None, "x", 3, 12)
    assert schema.cells(None, {Role.ERROR_STRING: "boom"}) == ("boom", None, None, None)


@pytest.mark.parametrize("outputs, task, message", [
    ([], None, "OUTPUT (...) is required"),
    (["error-string STRING"], None, "only metadata columns"),
    (["content STRING", "http-status-code BIGINT"], None,
     "metadata column 'http-status-code' must have type INT, not BIGINT"),
    (["content STRING", "http-headers-map MAP<STRING, STRING>"], None,
     "must have type MAP<STRING, ARRAY<STRING>>"),
    (["content STRING", "finish-reason INT"], None, "'finish-reason' must have type STRING"),
    (["v ARRAY<FLOAT>", "completion-tokens INT"], None, "'completion-tokens' is for chat models"),
    (["v ARRAY<FLOAT>", "tool-calls STRING"], None, "'tool-calls' is for chat models"),
    (["content STRING"], Task.EMBEDDINGS, "found 'content' STRING"),
    (["a STRING", "m MAP<INT, STRING>"], None, "MAP must have STRING keys"),
])
def test_bad_outputs_say_why(outputs: list[str], task: Task | None, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        classify_outputs(columns(*outputs), task)
    assert message in str(caught.value)
