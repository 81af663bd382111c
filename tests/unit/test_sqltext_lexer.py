"""Unit tests for flink_ml_predict.sqltext: tokenizer: tokens, kinds, positions, unterminated literals."""

from __future__ import annotations

import pytest

from flink_ml_predict.errors import SqlSyntaxError
from flink_ml_predict.sqltext import (
    Token,
    tokenize,
)
from tests.unit.sql_seeds import (
    SEED_BAILIAN,
    SEED_OPENAI,
)


class TestTokenize:
    def test_round_trip(self) -> None:
        assert "".join(t.text for t in tokenize(SEED_BAILIAN)) == SEED_BAILIAN
        assert "".join(t.text for t in tokenize(SEED_OPENAI)) == SEED_OPENAI

    def test_kinds(self) -> None:
        tokens = [t for t in tokenize("SELECT `a``b`, 'it''s', 1.5e3 => x <> y -- c\n/* d */")]
        kinds = [(t.kind, t.text) for t in tokens if t.kind != "ws"]
        assert kinds == [
            ("word", "SELECT"),
            ("qident", "`a``b`"),
            ("punct", ","),
            ("string", "'it''s'"),
            ("punct", ","),
            ("number", "1.5e3"),
            ("punct", "=>"),
            ("word", "x"),
            ("punct", "<>"),
            ("word", "y"),
            ("comment", "-- c"),
            ("comment", "/* d */"),
        ]

    def test_multi_char_operators(self) -> None:
        ops = [t.text for t in tokenize("a<=b>=c||d::e!=f") if t.kind == "punct"]
        assert ops == ["<=", ">=", "||", "::", "!="]

    def test_values(self) -> None:
        string, qident = [t for t in tokenize("'it''s' `a``b`") if t.kind != "ws"]
        assert string.value == "it's"
        assert qident.value == "a`b"
        assert Token("word", "abc", 0, 3).value == "abc"

    def test_prefixed_strings(self) -> None:
        tokens = [t for t in tokenize("X'0A' N'x' E'y' U&'z'") if t.kind != "ws"]
        assert [t.kind for t in tokens] == ["string"] * 4
        assert [t.value for t in tokens] == ["0A", "x", "y", "z"]

    def test_word_ending_in_prefix_letter_is_not_a_string(self) -> None:
        tokens = [t for t in tokenize("name'x'") if t.kind != "ws"]
        assert [(t.kind, t.text) for t in tokens] == [("word", "name"), ("string", "'x'")]

    def test_positions(self) -> None:
        tokens = tokenize("ab  'c'")
        assert [(t.start, t.end) for t in tokens] == [(0, 2), (2, 4), (4, 7)]

    def test_unterminated_string(self) -> None:
        with pytest.raises(SqlSyntaxError, match="unterminated string literal starting at line 2"):
            tokenize("SELECT 1;\nSELECT 'abc;\n")

    def test_unterminated_prefixed_string(self) -> None:
        with pytest.raises(SqlSyntaxError, match="unterminated string literal starting at line 1"):
            tokenize("SELECT X'0A")

    def test_unterminated_backquote(self) -> None:
        with pytest.raises(SqlSyntaxError, match="unterminated backquoted identifier .* line 3"):
            tokenize("\n\nSELECT `abc")

    def test_unterminated_block_comment(self) -> None:
        with pytest.raises(SqlSyntaxError, match="unterminated block comment starting at line 2"):
            tokenize("SELECT 1;\n/* never closed ;")

    def test_comment_markers_inside_string_are_text(self) -> None:
        tokens = [t for t in tokenize("'-- not /* a comment'") if t.kind != "ws"]
        assert [t.kind for t in tokens] == ["string"]


class TestByteOrderMark:
    def test_leading_byte_order_mark_is_whitespace(self) -> None:
        tokens = tokenize("\ufeffCREATE MODEL m")
        assert [(t.kind, t.text) for t in tokens[:2]] == [("ws", "\ufeff"), ("word", "CREATE")]
        assert tokenize("\ufeff\n  SELECT")[0] == Token("ws", "\ufeff\n  ", 0, 4)

    def test_byte_order_mark_elsewhere_is_not_whitespace(self) -> None:
        assert tokenize("a\ufeff")[-1] == Token("punct", "\ufeff", 1, 2)
