"""The query api.predict runs: identifiers backquoted, CONFIG keys and values SQL string literals."""

from __future__ import annotations

import pytest

from flink_ml_predict import ModelDefinitionError
from flink_ml_predict.api import predict_query, register_model
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


def test_several_columns_are_one_descriptor_in_order() -> None:
    query = predict_query("v", "m", ["title", "body text", "stars"])
    assert query == ("SELECT * FROM ML_PREDICT(TABLE `v`, MODEL `m`, "
                     "DESCRIPTOR(`title`, `body text`, `stars`))")
    (call,) = find_predict_calls(query)
    assert call.columns == ("title", "body text", "stars")


OPTIONS = {"provider": "openai", "endpoint": "http://127.0.0.1:9/v1", "api-key": "k",
           "model": "gpt-4o-mini"}


class _NoFlink:
    """Stands in for a TableEnvironment where none may be reached: bad columns fail first."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"t_env.{name} used before the columns were checked")


@pytest.mark.parametrize("outputs, message", [
    ([("label",)], "OUTPUT column ('label',) must be (name, type) or (name, type, comment)"),
    ([("label", "STRING", 3)], "OUTPUT column ('label', 'STRING', 3) must be"),
    ({"label": ("STRING", "a", "b")}, "OUTPUT column ('label', 'STRING', 'a', 'b') must be"),
    ([("score", "BYTES", "x")], "column 'score' has type BYTES"),
])
def test_register_model_refuses_malformed_columns(outputs: object, message: str) -> None:
    with pytest.raises(ModelDefinitionError) as caught:
        register_model(_NoFlink(), "m", OPTIONS, outputs=outputs)  # type: ignore[arg-type]
    assert message in str(caught.value) and "register_model('m')" in str(caught.value)
