"""Unit tests for flink_ml_predict.sqltext: ${NAME} substitution."""

from __future__ import annotations

import pytest

from flink_ml_predict.errors import ConfigurationError
from flink_ml_predict.sqltext import (
    parse_create_model,
    parse_set,
    split_statements,
    substitute_env,
)
from tests.unit.sql_seeds import SEED_OPENAI


class TestSubstituteEnv:
    def test_substitutes_in_strings_only(self) -> None:
        text = "SET 'k' = '${A}-${B_2}'; -- ${A}\nSELECT ${A}, `${A}` FROM t"
        result = substitute_env(text, {"A": "x", "B_2": "y"})
        assert result == "SET 'k' = 'x-y'; -- ${A}\nSELECT ${A}, `${A}` FROM t"

    def test_quotes_in_value_are_escaped(self) -> None:
        result = substitute_env("SET 'k' = 'say ${V}'", {"V": "it's"})
        assert result == "SET 'k' = 'say it''s'"
        assert parse_set(result) == ("k", "say it's")

    def test_escape(self) -> None:
        assert substitute_env("SELECT '$${HOME} and ${X}'", {"X": "1"}) == "SELECT '${HOME} and 1'"

    def test_not_a_reference(self) -> None:
        text = "SELECT '$HOME ${1X} ${} $ {A} $$'"
        assert substitute_env(text, {}) == text

    def test_seed_script(self) -> None:
        result = substitute_env(SEED_OPENAI, {"OPENAI_API_KEY": "sk-test"})
        model = parse_create_model(split_statements(result)[2].text)
        assert model.options["api-key"] == "sk-test"

    def test_unset_variable(self) -> None:
        with pytest.raises(
            ConfigurationError,
            match=r"environment variable MISSING is not set \(referenced in a string literal starting at line 2\)",
        ):
            substitute_env("SELECT 1;\nSET 'k' = '${SET_ONE} ${MISSING}'", {"SET_ONE": "s3cr3t-value"})

    def test_error_never_contains_values(self) -> None:
        with pytest.raises(ConfigurationError) as info:
            substitute_env("SELECT '${KEY}', '${MISSING}'", {"KEY": "sk-very-secret"})
        assert "sk-very-secret" not in str(info.value)
