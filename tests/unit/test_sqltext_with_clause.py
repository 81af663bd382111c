"""Unit tests for flink_ml_predict.sqltext: WITH clauses: reading and removing options."""

from __future__ import annotations

import pytest

from flink_ml_predict.errors import SqlSyntaxError
from flink_ml_predict.sqltext import (
    remove_with_options,
    split_statements,
    with_options,
)
from tests.unit.sql_seeds import SEED_BAILIAN

TABLE_DDL = """CREATE TEMPORARY TABLE print_sink(
id BIGINT,
movie_name VARCHAR
) WITH (
'connector' = 'print', -- print連接器
'logger' = 'true', /* c */ 'extra' = 'x''y'
)"""


class TestWithOptions:
    def test_with_options(self) -> None:
        assert with_options(TABLE_DDL) == {"connector": "print", "logger": "true", "extra": "x'y"}

    def test_no_with(self) -> None:
        assert with_options("CREATE VIEW v AS SELECT 1") == {}
        assert with_options("SELECT 'WITH (' FROM t") == {}

    def test_last_top_level_with(self) -> None:
        text = (
            "CREATE TABLE t WITH ('connector' = 'filesystem') "
            "AS WITH x AS (SELECT * FROM s /*+ OPTIONS('a'='b') */) SELECT * FROM x"
        )
        assert with_options(text) == {"connector": "filesystem"}
        assert with_options("CREATE TABLE t (a INT) WITH ('a' = '1') LIKE s WITH ('b' = '2')") == {"b": "2"}

    def test_nested_with_is_ignored(self) -> None:
        assert with_options("SELECT * FROM (SELECT 1) WHERE x IN (SELECT f(WITH ('a'='b')))") == {}

    def test_with_options_errors(self) -> None:
        with pytest.raises(SqlSyntaxError, match="WITH options: duplicate option 'a'"):
            with_options("CREATE TABLE t (a INT) WITH ('a' = '1', 'a' = '2')")
        with pytest.raises(SqlSyntaxError, match="WITH options: expected '='"):
            with_options("CREATE TABLE t (a INT) WITH ('a', 'b')")

    def test_remove_middle(self) -> None:
        assert remove_with_options(TABLE_DDL, ["logger"]) == TABLE_DDL.replace("'logger' = 'true',", "")

    def test_remove_last(self) -> None:
        expected = TABLE_DDL.replace("'true', /* c */ 'extra' = 'x''y'", "'true' /* c */ ")
        assert remove_with_options(TABLE_DDL, ["extra"]) == expected
        assert with_options(expected) == {"connector": "print", "logger": "true"}

    def test_remove_first(self) -> None:
        expected = TABLE_DDL.replace("'connector' = 'print',", "")
        assert remove_with_options(TABLE_DDL, {"connector"}) == expected

    def test_remove_several(self) -> None:
        result = remove_with_options(TABLE_DDL, ["connector", "extra"])
        assert with_options(result) == {"logger": "true"}
        assert result == TABLE_DDL.replace("'connector' = 'print',", "").replace(
            "'true', /* c */ 'extra' = 'x''y'", "'true' /* c */ "
        )

    def test_remove_all(self) -> None:
        result = remove_with_options(TABLE_DDL, ["connector", "logger", "extra"])
        assert with_options(result) == {}
        assert result.startswith(TABLE_DDL[: TABLE_DDL.index("'connector'")])
        assert "-- print連接器" in result and "/* c */" in result

    def test_remove_absent_key_returns_text_unchanged(self) -> None:
        assert remove_with_options(TABLE_DDL, ["nope"]) is TABLE_DDL
        assert remove_with_options("SELECT 1", ["a"]) == "SELECT 1"

    def test_remove_seed_logger(self) -> None:
        ddl = split_statements(SEED_BAILIAN)[1].text
        result = remove_with_options(ddl, ["logger"])
        assert result == ddl.replace("'print',", "'print'").replace("'logger' = 'true'", "")
        assert with_options(result) == {"connector": "print"}
