"""Unit tests for flink_ml_predict.sqltext: the ML_PREDICT locator."""

from __future__ import annotations

import pytest

from flink_ml_predict.errors import ConfigurationError, PredictCallError
from flink_ml_predict.sqltext import (
    find_predict_calls,
    split_statements,
)
from tests.unit.sql_seeds import SEED_BAILIAN


class TestFindPredictCalls:
    def test_positional(self) -> None:
        text = "SELECT * FROM ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR(a, `b c`))"
        (call,) = find_predict_calls(text)
        assert call.table == "t" and not call.table_is_query
        assert call.model_parts == ("m",) and call.model == "m"
        assert call.columns == ("a", "b c")
        assert call.config == {}
        assert text[call.start : call.end] == "ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR(a, `b c`))"

    def test_positional_with_config(self) -> None:
        text = "SELECT * FROM ml_predict(table t, model m, descriptor(a), map['async', 'true', 'max-tokens', '10'])"
        (call,) = find_predict_calls(text)
        assert call.config == {"async": "true", "max-tokens": "10"}

    def test_named(self) -> None:
        text = (
            "SELECT * FROM ML_PREDICT(\n"
            "  input => TABLE `my db`.`t`,\n"
            "  MODEL=>MODEL cat.`d b`.m, /* the model */\n"
            "  ARGS => DESCRIPTOR(`input`),\n"
            "  CONFIG => MAP['it''s', 'v'])"
        )
        (call,) = find_predict_calls(text)
        assert call.table == "`my db`.`t`"
        assert call.model_parts == ("cat", "d b", "m") and call.model == "cat.d b.m"
        assert call.columns == ("input",)
        assert call.config == {"it's": "v"}

    def test_named_in_any_order(self) -> None:
        (call,) = find_predict_calls(
            "SELECT * FROM ML_PREDICT(ARGS => DESCRIPTOR(c), MODEL => MODEL m, INPUT => TABLE t)"
        )
        assert (call.table, call.model, call.columns) == ("t", "m", ("c",))

    def test_subquery_table(self) -> None:
        text = "SELECT * FROM ML_PREDICT(TABLE ( SELECT id, UPPER(txt) AS t FROM src WHERE a IN (1, 2) ), MODEL m, DESCRIPTOR(t))"
        (call,) = find_predict_calls(text)
        assert call.table_is_query
        assert call.table == "SELECT id, UPPER(txt) AS t FROM src WHERE a IN (1, 2)"

    def test_whitespace_and_comments_between_tokens(self) -> None:
        text = "SELECT * FROM ML_PREDICT /* c */ (\n TABLE -- x\n t , MODEL\nm,DESCRIPTOR ( a ) )"
        (call,) = find_predict_calls(text)
        assert (call.table, call.model, call.columns) == ("t", "m", ("a",))
        assert text[call.end - 1] == ")" and call.end == len(text)

    def test_two_calls_in_one_query(self) -> None:
        text = (
            "SELECT * FROM ML_PREDICT(TABLE a, MODEL m1, DESCRIPTOR(x)) AS p "
            "JOIN ML_PREDICT(TABLE b, MODEL m2, DESCRIPTOR(y)) AS q ON p.id = q.id"
        )
        first, second = find_predict_calls(text)
        assert (first.table, first.model, second.table, second.model) == ("a", "m1", "b", "m2")
        assert first.end < second.start
        assert text[second.start : second.end] == "ML_PREDICT(TABLE b, MODEL m2, DESCRIPTOR(y))"

    def test_nested_in_cte_and_subquery(self) -> None:
        text = (
            "WITH c AS (SELECT * FROM ML_PREDICT(TABLE a, MODEL m1, DESCRIPTOR(x))) "
            "SELECT * FROM (SELECT * FROM c WHERE id IN (SELECT id FROM ML_PREDICT(TABLE b, MODEL m2, DESCRIPTOR(y))))"
        )
        assert [c.model for c in find_predict_calls(text)] == ["m1", "m2"]

    def test_nested_in_table_argument(self) -> None:
        inner = "ML_PREDICT(TABLE src, MODEL m1, DESCRIPTOR(x))"
        text = f"SELECT * FROM ML_PREDICT(TABLE (SELECT * FROM {inner}), MODEL m2, DESCRIPTOR(content))"
        outer_call, inner_call = find_predict_calls(text)
        assert outer_call.model == "m2" and outer_call.table == f"SELECT * FROM {inner}"
        assert inner_call.model == "m1" and text[inner_call.start : inner_call.end] == inner
        assert outer_call.start < inner_call.start < inner_call.end < outer_call.end

    def test_not_matched_in_strings_comments_and_identifiers(self) -> None:
        text = (
            "SELECT 'ML_PREDICT(TABLE a, MODEL m, DESCRIPTOR(x))', ml_predict_col, `ML_PREDICT`, "
            "ml_predict, t.ml_predict(1) -- ML_PREDICT(TABLE a)\n"
            "/* ML_PREDICT( */ FROM t"
        )
        assert find_predict_calls(text) == []

    def test_seed_statement(self) -> None:
        (call,) = find_predict_calls(split_statements(SEED_BAILIAN)[3].text)
        assert call.columns == ("user_comment",)

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            ("MODEL m, DESCRIPTOR(a)", "missing TABLE argument: argument 1 must be TABLE <name>"),
            ("TABLE t, DESCRIPTOR(a)", "missing MODEL argument: argument 2 must be MODEL <name>, found 'DESCRIPTOR'"),
            ("TABLE t, MODEL m", r"missing DESCRIPTOR argument \(DESCRIPTOR\(<column>, \.\.\.\)\)"),
            ("TABLE t", "missing MODEL argument"),
            ("", "ML_PREDICT: missing TABLE argument"),
            ("TABLE t, , MODEL m, DESCRIPTOR(a)", "ML_PREDICT: argument 2 is empty"),
            ("TABLE t, MODEL m, DESCRIPTOR(a),", "argument 4 is empty"),
            ("INPUT => TABLE t, MODEL => MODEL m, OPTIONS => DESCRIPTOR(a)",
             "unknown named argument OPTIONS \\(expected INPUT, MODEL, ARGS or CONFIG\\)"),
            ("INPUT => TABLE t, MODEL m, ARGS => DESCRIPTOR(a)", "positional argument after named arguments"),
            ("INPUT => TABLE t, INPUT => TABLE u, MODEL => MODEL m, ARGS => DESCRIPTOR(a)",
             "TABLE argument given twice"),
            ("TABLE t, MODEL m, DESCRIPTOR(a), MAP['a','b'], 'x'", "too many arguments"),
            ("INPUT => t, MODEL => MODEL m, ARGS => DESCRIPTOR(a)", "INPUT => must be TABLE <name> or TABLE \\(<query>\\), found 't'"),
            ("INPUT => , MODEL => MODEL m, ARGS => DESCRIPTOR(a)", "expected a value after INPUT =>"),
            ("TABLE t, MODEL m, DESCRIPTOR()", "empty DESCRIPTOR: expected at least one column name"),
            ("TABLE t, MODEL m, DESCRIPTOR(1)", "expected a column name after DESCRIPTOR\\(, found number 1"),
            ("TABLE t, MODEL m, DESCRIPTOR(a b)", "expected '\\)' after the DESCRIPTOR columns"),
            ("TABLE t, MODEL m, DESCRIPTOR(a), MAP['async']", "MAP has an odd number of entries \\(1\\)"),
            ("TABLE t, MODEL m, DESCRIPTOR(a), MAP['async', true]", "MAP entries must be string literals, found 'true'"),
            ("TABLE t, MODEL m, DESCRIPTOR(a), MAP['a', 'b' || 'c']", "MAP entries must be string literals"),
            ("TABLE t, MODEL m, DESCRIPTOR(a), MAP['a', 'b', 'a', 'c']", "duplicate CONFIG key 'a'"),
            ("TABLE t, MODEL m, DESCRIPTOR(a), MAP['a', , 'b']", "empty entry in MAP"),
            ("TABLE t, MODEL m, DESCRIPTOR(a), 'x'", "missing MAP argument: argument 4 must be MAP\\['key'"),
            ("TABLE t x, MODEL m, DESCRIPTOR(a)", "unexpected 'x' after the TABLE argument"),
            ("TABLE (SELECT 1) x, MODEL m, DESCRIPTOR(a)", "expected TABLE \\(<query>\\) with nothing after"),
            ("TABLE (), MODEL m, DESCRIPTOR(a)", "empty subquery"),
            ("TABLE t, MODEL a.b.c.d, DESCRIPTOR(a)", "at most 3 parts"),
            ("TABLE t, MODEL m n, DESCRIPTOR(a)", "unexpected 'n' after the MODEL argument"),
        ],
    )
    def test_errors(self, args: str, message: str) -> None:
        with pytest.raises(PredictCallError, match=message):
            find_predict_calls(f"SELECT * FROM ML_PREDICT({args})")

    def test_unbalanced_parentheses(self) -> None:
        with pytest.raises(PredictCallError, match="ML_PREDICT: unbalanced parentheses in the call at line 2"):
            find_predict_calls("SELECT *\nFROM ML_PREDICT(TABLE t, MODEL m, DESCRIPTOR(a)")

    def test_error_line_of_missing_argument_is_the_call(self) -> None:
        with pytest.raises(PredictCallError, match="missing DESCRIPTOR argument .* at line 3"):
            find_predict_calls("SELECT *\n\nFROM ML_PREDICT(TABLE t,\nMODEL m)")

    def test_errors_are_configuration_errors(self) -> None:
        with pytest.raises(ConfigurationError):
            find_predict_calls("SELECT * FROM ML_PREDICT(TABLE t)")
