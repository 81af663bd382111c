"""Unit tests for flink_ml_predict.sqltext: script splitting, statement kinds and the SQL client's statements."""

from __future__ import annotations

from pathlib import Path

import pytest

from flink_ml_predict.errors import ConfigurationError, SqlSyntaxError
from flink_ml_predict.sqltext import (
    ColumnDef,
    Statement,
    explain_target,
    find_predict_calls,
    parse_create_model,
    parse_reset,
    parse_set,
    parse_use,
    split_statements,
    statement_kind,
    statement_set_inner,
    substitute_env,
    with_options,
)
from tests.unit.sql_seeds import (
    SEED_BAILIAN,
    SEED_BAILIAN_FILE_HEADER,
    SEED_EMBEDDING,
    SEED_OPENAI,
    SEED_OPENAI_SENTIMENT,
    SEED_QWEN_MASKING,
)


def texts(script: str) -> list[str]:
    """The texts of the statements of ``script``."""
    return [s.text for s in split_statements(script)]


class TestSplitSeeds:
    def test_bailian_seed(self) -> None:
        statements = split_statements(SEED_BAILIAN)
        assert [(s.index, s.line) for s in statements] == [(1, 1), (2, 11), (3, 20), (4, 22)]
        assert [statement_kind(s.text) for s in statements] == [
            "create_model",
            "other",
            "other",
            "insert",
        ]
        assert statements[0].text.startswith("CREATE MODEL ai_analyze_sentiment\n")
        assert statements[0].text.endswith("Output only the label.'\n)")
        assert statements[1].text.endswith("'logger' = 'true' -- 控制台顯示計算結果\n)")
        assert statements[2].text.endswith("'乏善可陳', 'negative')")
        assert statements[3].text.endswith("DESCRIPTOR(user_comment))")
        assert statements[3].label() == "statement 4 (line 22)"

    def test_bailian_seed_parses(self) -> None:
        statements = split_statements(SEED_BAILIAN)
        model = parse_create_model(statements[0].text)
        assert model.name == "ai_analyze_sentiment"
        assert model.inputs == (ColumnDef("input", "STRING"),)
        assert model.outputs == (ColumnDef("content", "STRING"),)
        assert list(model.options) == ["provider", "endpoint", "api-key", "model", "system-prompt"]
        assert model.options["api-key"] == "<YOUR KEY>"
        assert model.options["system-prompt"].startswith("Classify the text below")
        assert with_options(statements[1].text) == {"connector": "print", "logger": "true"}
        (call,) = find_predict_calls(statements[3].text)
        assert (call.table, call.model, call.columns, call.config) == (
            "movie_comment",
            "ai_analyze_sentiment",
            ("user_comment",),
            {},
        )
        assert statements[3].text[call.start : call.end].startswith("ML_PREDICT(\nTABLE")
        assert statements[3].text[call.end :] == ""

    def test_qwen_masking_seed(self) -> None:
        statements = split_statements(SEED_QWEN_MASKING)
        assert [(s.index, s.line, statement_kind(s.text)) for s in statements] == [
            (1, 4, "create_model"),
            (2, 16, "other"),
            (3, 20, "other"),
            (4, 29, "insert"),
        ]
        env = {"QWEN_ENDPOINT": "http://127.0.0.1:1/v1", "DASHSCOPE_API_KEY": "sk-x"}
        model = parse_create_model(substitute_env(statements[0].text, env))
        assert model.options["endpoint"] == "http://127.0.0.1:1/v1"
        assert model.options["system-prompt"] == "将内容中的身份证号 后四位用*号代替。"
        assert model.inputs == (ColumnDef("input", "STRING"),)
        (call,) = find_predict_calls(statements[3].text)
        assert (call.table, call.model, call.columns) == ("user_info", "ai_data_desensitization", ("info",))

    def test_bailian_seed_file_form(self) -> None:
        script = SEED_BAILIAN_FILE_HEADER + SEED_BAILIAN.replace(
            "CREATE TEMPORARY TABLE", "--建立臨時結果表\nCREATE TEMPORARY TABLE"
        ).replace(
            "CREATE TEMPORARY VIEW",
            "-- 建立臨時資料檢視構造測試資料\n-- | id | movie_name |;\n-- | 1 | 好東西 |\n-- | 2 | 水餃皇后 |\n"
            "CREATE TEMPORARY VIEW",
        )
        statements = split_statements(script)
        assert [(s.line, statement_kind(s.text)) for s in statements] == [
            (5, "create_model"),
            (16, "other"),
            (29, "other"),
            (31, "insert"),
        ]
        assert statements[1].text.startswith("CREATE TEMPORARY TABLE print_sink(")

    def test_openai_sentiment_seed(self) -> None:
        statements = split_statements(SEED_OPENAI_SENTIMENT)
        assert [(s.line, statement_kind(s.text)) for s in statements] == [
            (3, "create_model"),
            (14, "other"),
            (18, "other"),
            (27, "insert"),
        ]
        with pytest.raises(ConfigurationError, match="environment variable OPENAI_ENDPOINT is not set"):
            substitute_env(statements[0].text, {"OPENAI_API_KEY": "sk-x"})
        assert with_options(statements[2].text) == {"connector": "print"}

    @pytest.mark.parametrize(
        ("name", "embedded"),
        [
            ("seed_000_qwen_masking.sql", SEED_QWEN_MASKING),
            ("seed_003_openai_sentiment.sql", SEED_OPENAI_SENTIMENT),
            ("seed_002_bailian_sentiment.sql", None),
        ],
    )
    def test_seed_files_in_repository(self, name: str, embedded: str | None) -> None:
        path = Path(__file__).resolve().parents[2] / "sql" / name
        assert path.exists(), f"{path}: a seed script the repository ships is missing"
        script = path.read_text(encoding="utf-8")
        if embedded is not None:
            assert script == embedded
        kinds = [statement_kind(s.text) for s in split_statements(script)]
        assert kinds[0] == "create_model" and kinds[-1] == "insert" and len(kinds) == 4

    def test_openai_seed(self) -> None:
        statements = split_statements(SEED_OPENAI)
        summary = [(s.line, statement_kind(s.text)) for s in statements]
        assert summary == [
            (2, "set"),
            (3, "set"),
            (5, "create_model"),
            (17, "other"),
            (19, "other"),
            (21, "statement_set"),
            (30, "reset"),
            (31, "reset"),
            (32, "query"),
        ]
        assert [s.index for s in statements] == list(range(1, 10))
        assert parse_set(statements[1].text) == ("pipeline.name", "openai; sentiment")
        model = parse_create_model(statements[2].text)
        assert model.name_parts == ("my_cat", "my_db", "gpt")
        assert model.temporary and model.if_not_exists
        assert model.comment == "chat; completions"
        assert model.inputs == (ColumnDef("input", "STRING", "the user's text"),)
        assert [c.name for c in model.outputs] == ["content", "http-status-code"]
        assert statements[3].text.endswith("(2, 'it''s bad')")
        assert statements[8].text == "SELECT 1"

    def test_openai_seed_statement_set_normalised(self) -> None:
        text = split_statements(SEED_OPENAI)[5].text
        assert text.startswith("EXECUTE STATEMENT SET BEGIN\nINSERT INTO out_sink\n")
        assert text.endswith(";\nINSERT INTO out_sink SELECT id, 'none' FROM reviews;\nEND")
        inner = statement_set_inner(text)
        assert len(inner) == 2
        (call,) = find_predict_calls(inner[0])
        assert call.model_parts == ("my_cat", "my_db", "gpt")
        assert call.config == {"async": "true", "timeout": "30s"}

    def test_embedding_seed(self) -> None:
        statements = split_statements(SEED_EMBEDDING)
        assert [(s.line, statement_kind(s.text)) for s in statements] == [
            (1, "create_model"),
            (6, "other"),
            (7, "other"),
            (9, "statement_set"),
            (16, "explain"),
        ]
        model = parse_create_model(statements[0].text)
        assert model.outputs == (ColumnDef("embedding", "ARRAY<FLOAT>"),)
        stmt_set = statements[3].text
        assert stmt_set.startswith("EXECUTE STATEMENT SET\nBEGIN\n")
        assert stmt_set.endswith("CHAR_LENGTH('x;y');\nEND")
        inner = statement_set_inner(stmt_set)
        assert inner[1] == "INSERT INTO lengths SELECT 1, CHAR_LENGTH('x;y')"
        (call,) = find_predict_calls(inner[0])
        assert call.table_is_query and call.table == "SELECT 1 AS id, 'a;b' AS s"
        prefix, target = explain_target(statements[4].text)
        assert prefix == "EXPLAIN PLAN FOR "
        assert statement_kind(target) == "query"


class TestSplit:
    def test_semicolons_in_strings_backquotes_and_comments(self) -> None:
        script = (
            "SELECT 'a;b', `c;d` FROM t; -- x; y\n"
            "SELECT /* ; */ 2;\n"
            "SELECT 'it''s; fine'"
        )
        assert texts(script) == [
            "SELECT 'a;b', `c;d` FROM t",
            "SELECT /* ; */ 2",
            "SELECT 'it''s; fine'",
        ]

    def test_line_numbers_skip_leading_comments_and_blank_lines(self) -> None:
        script = "\n\n-- header;\n/* block\n; */\n  SELECT 1;\n\nSELECT\n2;"
        statements = split_statements(script)
        assert [(s.text, s.line) for s in statements] == [("SELECT 1", 6), ("SELECT\n2", 8)]

    def test_comment_only_statements_are_dropped(self) -> None:
        statements = split_statements("-- only;\n;;\n/* c */;\nSELECT 1;\n-- tail")
        assert [(s.text, s.index, s.line) for s in statements] == [("SELECT 1", 1, 4)]

    def test_comment_at_end_without_newline(self) -> None:
        assert texts("SELECT 1; -- done") == ["SELECT 1"]
        assert texts("SELECT 1 -- done") == ["SELECT 1"]

    def test_inner_comments_kept(self) -> None:
        assert texts("SELECT a, -- first\n b FROM t;") == ["SELECT a, -- first\n b FROM t"]

    def test_last_statement_without_semicolon(self) -> None:
        assert texts("SELECT 1;\nSELECT 2\n") == ["SELECT 1", "SELECT 2"]

    def test_empty_script(self) -> None:
        assert split_statements("") == []
        assert split_statements("  \n -- nothing\n") == []

    def test_statement_label(self) -> None:
        assert Statement("SELECT 1", 3, 12).label() == "statement 3 (line 12)"

    def test_execute_statement_set(self) -> None:
        script = (
            "SET 'a' = 'b';\n"
            "execute  /* c */ Statement\n set begin\n"
            "INSERT INTO t1 SELECT 1;\n"
            "INSERT INTO t2 SELECT CASE WHEN x THEN 1 ELSE 2 END FROM s;\n"
            "end;\n"
            "SELECT 3;"
        )
        statements = split_statements(script)
        assert [(s.index, s.line) for s in statements] == [(1, 1), (2, 2), (3, 7)]
        assert statements[1].text.startswith("execute  /* c */ Statement")
        assert statements[1].text.endswith("FROM s;\nend")
        assert statement_kind(statements[1].text) == "statement_set"
        assert statement_set_inner(statements[1].text) == [
            "INSERT INTO t1 SELECT 1",
            "INSERT INTO t2 SELECT CASE WHEN x THEN 1 ELSE 2 END FROM s",
        ]

    def test_execute_statement_set_on_one_line_without_final_semicolon(self) -> None:
        script = "EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT 1; INSERT INTO b SELECT 2; END"
        assert texts(script) == [script]

    def test_begin_statement_set(self) -> None:
        script = (
            "BEGIN STATEMENT SET;\n"
            "-- comment only;\n"
            "INSERT INTO t1 SELECT 'x;y';\n"
            "INSERT INTO t2\nSELECT 2 -- trailing\n;\n"
            "END;\n"
            "SELECT 1;"
        )
        statements = split_statements(script)
        assert [(s.index, s.line) for s in statements] == [(1, 1), (2, 8)]
        assert statements[0].text == (
            "EXECUTE STATEMENT SET BEGIN\n"
            "INSERT INTO t1 SELECT 'x;y';\n"
            "INSERT INTO t2\nSELECT 2;\n"
            "END"
        )
        assert statement_set_inner(statements[0].text) == [
            "INSERT INTO t1 SELECT 'x;y'",
            "INSERT INTO t2\nSELECT 2",
        ]

    def test_begin_statement_set_case_insensitive(self) -> None:
        statements = split_statements("begin statement set;\ninsert into t select 1;\nend")
        assert statements[0].text == "EXECUTE STATEMENT SET BEGIN\ninsert into t select 1;\nEND"

    def test_statement_set_without_end(self) -> None:
        with pytest.raises(SqlSyntaxError, match=r"statement 2 \(line 2\): STATEMENT SET has no END"):
            split_statements("SELECT 1;\nBEGIN STATEMENT SET;\nINSERT INTO t SELECT 1;")
        with pytest.raises(SqlSyntaxError, match=r"statement 1 \(line 1\): STATEMENT SET has no END"):
            split_statements("EXECUTE STATEMENT SET BEGIN INSERT INTO t SELECT CASE WHEN a THEN 1 END;")

    def test_unbalanced_parentheses(self) -> None:
        with pytest.raises(
            SqlSyntaxError, match=r"statement 2 \(line 2\): unbalanced parentheses: '\(' at line 2 is never closed"
        ):
            split_statements("SELECT 1;\nSELECT f(\n(1);\nSELECT 2;")

    def test_unbalanced_closing_parenthesis(self) -> None:
        with pytest.raises(SqlSyntaxError, match=r"statement 1 \(line 1\): .*'\)' at line 1 has no"):
            split_statements("SELECT 1);")

    def test_unbalanced_brackets(self) -> None:
        with pytest.raises(SqlSyntaxError, match=r"statement 1 \(line 1\): unbalanced .*'\['"):
            split_statements("SELECT MAP['a', 'b';")
        with pytest.raises(SqlSyntaxError, match="unbalanced"):
            split_statements("SELECT (1];")

    def test_unbalanced_inside_statement_set(self) -> None:
        with pytest.raises(SqlSyntaxError, match=r"statement 1 \(line 1\): unbalanced .* line 2"):
            split_statements("BEGIN STATEMENT SET;\nINSERT INTO t SELECT (1;\nEND;")

    def test_parentheses_in_strings_do_not_count(self) -> None:
        assert texts("SELECT '(' , `)`;") == ["SELECT '(' , `)`"]

    def test_unterminated_errors_propagate(self) -> None:
        with pytest.raises(SqlSyntaxError, match="unterminated string literal starting at line 2"):
            split_statements("SELECT 1;\nSELECT 'a;\nSELECT 2;")
        with pytest.raises(SqlSyntaxError, match="unterminated backquoted identifier"):
            split_statements("SELECT `a;")
        with pytest.raises(SqlSyntaxError, match="unterminated block comment starting at line 1"):
            split_statements("SELECT 1 /* ;")


# ---------------------------------------------------------------------------------------------
# Classification and SQL-client statements
# ---------------------------------------------------------------------------------------------


class TestStatementKind:
    @pytest.mark.parametrize(
        ("text", "kind"),
        [
            ("SET 'a' = 'b'", "set"),
            ("set", "set"),
            ("-- c\nRESET 'a'", "reset"),
            ("CREATE MODEL m WITH ()", "create_model"),
            ("create temporary model m", "create_model"),
            ("CREATE TEMPORARY SYSTEM MODEL m", "create_model"),
            ("CREATE OR REPLACE MODEL m", "create_model"),
            ("CREATE /* x */ MODEL m", "create_model"),
            ("DROP MODEL m", "drop_model"),
            ("drop temporary model if exists m", "drop_model"),
            ("EXECUTE STATEMENT SET BEGIN END", "statement_set"),
            ("EXPLAIN SELECT 1", "explain"),
            ("SELECT 1", "query"),
            ("with x as (select 1) select * from x", "query"),
            ("VALUES (1)", "query"),
            ("((SELECT 1))", "query"),
            ("INSERT INTO t SELECT 1", "insert"),
            ("insert overwrite t select 1", "insert"),
            ("CREATE TABLE t (a INT)", "other"),
            ("CREATE TEMPORARY FUNCTION f AS 'x'", "other"),
            ("DROP TABLE t", "other"),
            ("SHOW MODELS", "other"),
            ("`SET` 'a' = 'b'", "other"),
            ("", "other"),
            ("-- just a comment", "other"),
        ],
    )
    def test_kinds(self, text: str, kind: str) -> None:
        assert statement_kind(text) == kind


class TestSetReset:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("SET 'execution.runtime-mode' = 'batch'", ("execution.runtime-mode", "batch")),
            ("set 'a'='b'", ("a", "b")),
            ("SET table.exec.resource.default-parallelism = 2", ("table.exec.resource.default-parallelism", "2")),
            ("SET pipeline.name = my job", ("pipeline.name", "my job")),
            ("SET 'k' = 'it''s; ok'", ("k", "it's; ok")),
            ("SET k = 'quoted'", ("k", "quoted")),
            ("SET 'k' = ''", ("k", "")),
            ("SET 'k' = 10s", ("k", "10s")),
            ("SET /* c */ 'k' = 'v' -- done", ("k", "v")),
            ("SET", None),
            ("SET -- nothing", None),
        ],
    )
    def test_parse_set(self, text: str, expected: tuple[str, str] | None) -> None:
        assert parse_set(text) == expected

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("SET 'k'", "SET: expected 'key' = 'value'"),
            ("SET 'k' 'v'", "SET: expected 'key' = 'value'"),
            ("SET = 'v'", "SET: expected a key before '='"),
            ("SET 'k' =", "SET: expected a value after '='"),
            ("SET 'k' = 'v' 'w'", "SET: unexpected string literal in the value"),
            ("SET a b = 'v'", "SET: expected a single key"),
            ("RESET 'k'", "SET: expected SET, found 'RESET'"),
        ],
    )
    def test_parse_set_errors(self, text: str, message: str) -> None:
        with pytest.raises(SqlSyntaxError, match=message):
            parse_set(text)

    def test_set_error_never_quotes_values(self) -> None:
        with pytest.raises(SqlSyntaxError) as info:
            parse_set("SET 'k' = 'sk-secret' 'sk-other'")
        assert "sk-" not in str(info.value)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("RESET 'pipeline.name'", "pipeline.name"),
            ("reset pipeline.name", "pipeline.name"),
            ("RESET `a.b`", "a.b"),
            ("RESET", None),
            ("RESET /* all */", None),
        ],
    )
    def test_parse_reset(self, text: str, expected: str | None) -> None:
        assert parse_reset(text) == expected

    def test_parse_reset_errors(self) -> None:
        with pytest.raises(SqlSyntaxError, match="RESET: unexpected string literal in the key"):
            parse_reset("RESET 'a' 'b'")
        with pytest.raises(SqlSyntaxError, match="RESET: expected a single key"):
            parse_reset("RESET a b")


class TestStatementSetInner:
    def test_inner(self) -> None:
        text = "EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT 1; -- c\n INSERT OVERWRITE b SELECT 2; END"
        assert statement_set_inner(text) == ["INSERT INTO a SELECT 1", "INSERT OVERWRITE b SELECT 2"]

    def test_not_an_insert(self) -> None:
        text = "EXECUTE STATEMENT SET BEGIN\nINSERT INTO a SELECT 1;\nSELECT 2;\nEND"
        with pytest.raises(
            SqlSyntaxError,
            match="STATEMENT SET: only INSERT statements are allowed, found 'SELECT' at line 3",
        ):
            statement_set_inner(text)

    def test_missing_end(self) -> None:
        with pytest.raises(SqlSyntaxError, match="STATEMENT SET: expected '; END'"):
            statement_set_inner("EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT 1;")
        with pytest.raises(SqlSyntaxError, match="STATEMENT SET: expected '; END'"):
            statement_set_inner("EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT CASE WHEN x THEN 1 END")

    def test_empty(self) -> None:
        with pytest.raises(SqlSyntaxError, match="expected at least one INSERT statement"):
            statement_set_inner("EXECUTE STATEMENT SET BEGIN END")

    def test_not_a_statement_set(self) -> None:
        with pytest.raises(SqlSyntaxError, match="STATEMENT SET: expected STATEMENT, found 'INSERT'"):
            statement_set_inner("EXECUTE INSERT INTO a SELECT 1")


class TestExplain:
    @pytest.mark.parametrize(
        ("text", "prefix", "inner"),
        [
            ("EXPLAIN SELECT 1", "EXPLAIN ", "SELECT 1"),
            ("explain plan for\nINSERT INTO t SELECT 1", "explain plan for\n", "INSERT INTO t SELECT 1"),
            (
                "EXPLAIN ESTIMATED_COST, CHANGELOG_MODE, JSON_EXECUTION_PLAN SELECT 1",
                "EXPLAIN ESTIMATED_COST, CHANGELOG_MODE, JSON_EXECUTION_PLAN ",
                "SELECT 1",
            ),
            ("EXPLAIN PLAN_ADVICE /* c */ (SELECT 1)", "EXPLAIN PLAN_ADVICE /* c */ ", "(SELECT 1)"),
            (
                "EXPLAIN STATEMENT SET BEGIN INSERT INTO t SELECT 1; END",
                "EXPLAIN ",
                "STATEMENT SET BEGIN INSERT INTO t SELECT 1; END",
            ),
        ],
    )
    def test_explain_target(self, text: str, prefix: str, inner: str) -> None:
        assert explain_target(text) == (prefix, inner)
        assert prefix + inner == text

    def test_explain_without_statement(self) -> None:
        with pytest.raises(SqlSyntaxError, match="EXPLAIN: expected a statement to explain, found end"):
            explain_target("EXPLAIN PLAN FOR")


def test_script_opening_with_a_byte_order_mark() -> None:
    statements = split_statements("\ufeffCREATE MODEL m1 WITH ();\nSELECT 1")
    assert [(s.text, s.index, s.line) for s in statements] == [
        ("CREATE MODEL m1 WITH ()", 1, 1), ("SELECT 1", 2, 2)]
    assert statement_kind(statements[0].text) == "create_model"


class TestUse:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("USE CATALOG c1", ("c1", None)),
            ("use catalog `my cat`", ("my cat", None)),
            ("USE db2", (None, "db2")),
            ("USE `c 1`.db2", ("c 1", "db2")),
            ("USE catalog", (None, "catalog")),
            ("USE MODULES core, hive", None),
            ("SELECT 1", None),
            ("CREATE TABLE use (a INT)", None),
        ],
    )
    def test_parse(self, text: str, expected: tuple[str | None, str | None] | None) -> None:
        assert parse_use(text) == expected

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("USE", "USE: expected a database name after USE, found end of statement"),
            ("USE a.b.c", r"expected \[catalog.\]database after USE"),
            ("USE CATALOG c d", "unexpected 'd' after the catalog name"),
        ],
    )
    def test_errors(self, text: str, message: str) -> None:
        with pytest.raises(SqlSyntaxError, match=message):
            parse_use(text)
