"""The query api.predict runs: identifiers backquoted, CONFIG keys and values SQL string literals."""

from __future__ import annotations

from flink_ml_predict.api import predict_query
from flink_ml_predict.sqltext import find_predict_calls


def test_config_values_with_quotes_are_string_literals() -> None:
    query = predict_query("v1", "m", "txt", {"timeout": "30s", "output-mode": "it's"})
    assert query == ("SELECT * FROM ML_PREDICT(TABLE `v1`, MODEL `m`, DESCRIPTOR(`txt`), "
                     "MAP['timeout', '30s', 'output-mode', 'it''s'])")
    (call,) = find_predict_calls(query)
    assert call.config == {"timeout": "30s", "output-mode": "it's"}


def test_names_are_backquoted_and_qualified_names_split() -> None:
    query = predict_query("v`2", "cat.my db.m", "the text")
    assert query == ("SELECT * FROM ML_PREDICT(TABLE `v``2`, MODEL `cat`.`my db`.`m`, "
                     "DESCRIPTOR(`the text`))")


def test_a_key_with_a_quote_is_a_string_literal_too() -> None:
    query = predict_query("v", "m", "c", {"a'b": "x"})
    assert query.endswith("DESCRIPTOR(`c`), MAP['a''b', 'x'])")
