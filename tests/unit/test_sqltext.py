"""Unit tests for flink_ml_predict.sqltext (lexing, splitting, statement parsing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flink_ml_predict.errors import ConfigurationError, PredictCallError, SqlSyntaxError
from flink_ml_predict.sqltext import (
    ColumnDef,
    CreateModel,
    DropModel,
    Statement,
    Token,
    explain_target,
    find_predict_calls,
    parse_create_model,
    parse_drop_model,
    parse_reset,
    parse_set,
    remove_with_options,
    split_statements,
    statement_kind,
    statement_set_inner,
    substitute_env,
    tokenize,
    with_options,
)

# ---------------------------------------------------------------------------------------------
# Seed scripts
# ---------------------------------------------------------------------------------------------

SEED_BAILIAN = """\
CREATE MODEL ai_analyze_sentiment
INPUT (`input` STRING)
OUTPUT (`content` STRING)
WITH (
'provider'='bailian',
'endpoint'='<base_url>/compatible-mode/v1/chat/completions', -- chat/completions模型任務連接埠
'api-key' = '<YOUR KEY>',
'model'='qwen-turbo', -- 通義千問qwen-turbo模型
'system-prompt' = 'Classify the text below into one of the following labels: [positive, negative, neutral, mixed]. Output only the label.'
);
CREATE TEMPORARY TABLE print_sink(
id BIGINT,
movie_name VARCHAR,
predict_label VARCHAR,
actual_label VARCHAR
) WITH (
'connector' = 'print', -- print連接器
'logger' = 'true' -- 控制台顯示計算結果
);
CREATE TEMPORARY VIEW movie_comment(id, movie_name, user_comment, actual_label)
AS VALUES (1, '好東西', '最愛小孩子猜聲音那段,算得上看過的電影裡相當浪漫的敘事了。很溫和也很有愛。', 'positive'), (2, '水餃皇后', '乏善可陳', 'negative');
INSERT INTO print_sink
SELECT id, movie_name, content as predict_label, actual_label
FROM ML_PREDICT(
TABLE movie_comment,
MODEL ai_analyze_sentiment, -- 註冊的通義千問qwen-turbo模型
DESCRIPTOR(user_comment));
"""

SEED_QWEN_MASKING = """\
-- Seed 000 (Qwen): mask the last four digits of ID numbers.
-- Unchanged from the seed except the endpoint and the key, which come from the environment.
-- Create chat model
CREATE MODEL ai_data_desensitization
INPUT (input STRING)
OUTPUT (content STRING)
WITH (
  'provider' = 'qwen',
  'endpoint' = '${QWEN_ENDPOINT}',
  'api-key' = '${DASHSCOPE_API_KEY}',
  'model' = 'qwen-plus',
  'system-prompt' = '将内容中的身份证号 后四位用*号代替。'

);

CREATE TEMPORARY VIEW user_info(id, user_name,  info, actual_label)
AS VALUES
  (1, 'aaa', '我的名字叫 码界探索: 412721199803134419.', 'positive');

CREATE TEMPORARY TABLE print_sink(
  id BIGINT,
  user_name VARCHAR,
  desensitized_data VARCHAR,
  actual_label VARCHAR
) WITH (
  'connector' = 'print'
);

INSERT INTO print_sink
SELECT id, user_name, content as desensitized_data, actual_label
FROM ML_PREDICT(
  TABLE user_info,
  MODEL ai_data_desensitization,
  DESCRIPTOR(info));
"""

SEED_BAILIAN_FILE_HEADER = """\
-- Seed 002 (Bailian / Model Studio): sentiment of movie comments with qwen-turbo.
-- Unchanged from the seed except the endpoint and the key, which come from the environment.
-- The print table keeps the seed's 'logger' = 'true' (an option of Alibaba Cloud's Flink):
-- the runner drops it with a warning, because open-source Flink rejects it.
"""

SEED_OPENAI_SENTIMENT = """\
-- Seed 003 (OpenAI): sentiment of movie comments.
-- Unchanged from the seed except the endpoint and the key, which come from the environment.
CREATE MODEL ai_analyze_sentiment
INPUT (`input` STRING)
OUTPUT (`content` STRING)
WITH (
    'provider'='openai',
    'endpoint'='${OPENAI_ENDPOINT}',
    'api-key' = '${OPENAI_API_KEY}',
    'model'='gpt-3.5-turbo',
    'system-prompt' = 'Classify the text below into one of the following labels: [positive, negative, neutral, mixed]. Output only the label.'
);

CREATE TEMPORARY VIEW movie_comment(id, movie_name,  user_comment, actual_label)
AS VALUES
  (1, '好东西', '最爱小孩子猜声音那段,算得上看过的电影里相当浪漫的叙事了。很温和也很有爱。', 'positive');

CREATE TEMPORARY TABLE print_sink(
  id BIGINT,
  movie_name VARCHAR,
  predicit_label VARCHAR,
  actual_label VARCHAR
) WITH (
  'connector' = 'print'
);

INSERT INTO print_sink
SELECT id, movie_name, content as predicit_label, actual_label
FROM ML_PREDICT(
  TABLE movie_comment,
  MODEL ai_analyze_sentiment,
  DESCRIPTOR(user_comment));
"""

SEED_OPENAI = """\
-- OpenAI chat model, named ML_PREDICT arguments; this header has a ; in it
SET 'parallelism.default' = '1';
SET 'pipeline.name' = 'openai; sentiment';

CREATE TEMPORARY MODEL IF NOT EXISTS `my_cat`.`my_db`.`gpt`
INPUT (`input` STRING COMMENT 'the user''s text')
OUTPUT (`content` STRING, `http-status-code` INT)
COMMENT 'chat; completions'
WITH (
  'provider' = 'openai',
  'endpoint' = 'https://api.openai.com/v1/chat/completions',
  'api-key' = '${OPENAI_API_KEY}',
  'model' = 'gpt-4o-mini'
);

/* the source: ; inside a block comment */
CREATE TEMPORARY VIEW reviews(id, txt) AS VALUES (1, 'great; really'), (2, 'it''s bad');

CREATE TEMPORARY TABLE out_sink (id INT, label STRING) WITH ('connector' = 'blackhole');

BEGIN STATEMENT SET;
INSERT INTO out_sink
SELECT id, content FROM ML_PREDICT(
  INPUT => TABLE reviews,
  MODEL => MODEL `my_cat`.`my_db`.`gpt`,
  ARGS => DESCRIPTOR(txt),
  CONFIG => MAP['async', 'true', 'timeout', '30s']);
INSERT INTO out_sink SELECT id, 'none' FROM reviews;
END;
RESET 'pipeline.name';
RESET;
SELECT 1 -- trailing comment without newline and without ;"""

SEED_EMBEDDING = """\
CREATE MODEL embedder
INPUT (`input` STRING)
OUTPUT (`embedding` ARRAY<FLOAT>)
WITH ('provider' = 'openai', 'task' = 'embeddings', 'model' = 'text-embedding-3-small');

CREATE TABLE vectors (id INT, v ARRAY<FLOAT>) WITH ('connector' = 'print');
CREATE TABLE lengths (id INT, n INT) WITH ('connector' = 'print');

EXECUTE STATEMENT SET
BEGIN
  INSERT INTO vectors SELECT id, embedding FROM ML_PREDICT(TABLE (SELECT 1 AS id, 'a;b' AS s), MODEL embedder, DESCRIPTOR(s));
  -- a comment between the inserts; with a semicolon
  INSERT INTO lengths SELECT 1, CHAR_LENGTH('x;y');
END;

EXPLAIN PLAN FOR SELECT * FROM ML_PREDICT(TABLE vectors, MODEL embedder, DESCRIPTOR(id));
"""


def texts(script: str) -> list[str]:
    """The texts of the statements of ``script``."""
    return [s.text for s in split_statements(script)]


# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Splitting
# ---------------------------------------------------------------------------------------------


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
        if not path.exists():
            pytest.skip(f"{path} is not present")
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


# ---------------------------------------------------------------------------------------------
# CREATE MODEL / DROP MODEL
# ---------------------------------------------------------------------------------------------


class TestCreateModel:
    def test_full_syntax(self) -> None:
        text = """create temporary model if not exists cat.`my db`.`m-1`
            INPUT (`input` STRING COMMENT 'text; to classify', ctx VARCHAR (100) NOT NULL)
            OUTPUT (
              `error-string` STRING,
              tags MAP < STRING , ARRAY < STRING > > COMMENT 'nested',
              r ROW<a INT, b STRING>,
              d DECIMAL(10, 2),
              ts TIMESTAMP(3) WITH LOCAL TIME ZONE
            )
            COMMENT 'it''s a model'
            WITH (
              'provider' = 'openai', -- provider
              /* key */ 'api-key' = 'sk-''quoted'''
            )"""
        model = parse_create_model(text)
        assert model.name_parts == ("cat", "my db", "m-1")
        assert model.name == "cat.my db.m-1"
        assert model.temporary and model.if_not_exists
        assert model.inputs == (
            ColumnDef("input", "STRING", "text; to classify"),
            ColumnDef("ctx", "VARCHAR(100) NOT NULL"),
        )
        assert model.outputs == (
            ColumnDef("error-string", "STRING"),
            ColumnDef("tags", "MAP<STRING, ARRAY<STRING>>", "nested"),
            ColumnDef("r", "ROW<a INT, b STRING>"),
            ColumnDef("d", "DECIMAL(10, 2)"),
            ColumnDef("ts", "TIMESTAMP(3) WITH LOCAL TIME ZONE"),
        )
        assert model.comment == "it's a model"
        assert model.options == {"provider": "openai", "api-key": "sk-'quoted'"}

    def test_minimal(self) -> None:
        model = parse_create_model("CREATE MODEL m WITH ('provider' = 'openai')")
        assert model == CreateModel(("m",), False, False, (), (), {"provider": "openai"}, None)

    def test_options_keep_written_order(self) -> None:
        model = parse_create_model("CREATE MODEL m WITH ('z'='1', 'a'='2', 'm'='3')")
        assert list(model.options.items()) == [("z", "1"), ("a", "2"), ("m", "3")]

    def test_http_status_code_column(self) -> None:
        model = parse_create_model(
            "CREATE MODEL m INPUT (`input` STRING) OUTPUT (`content` STRING, `http-status-code` INT, "
            "`http-headers-map` MAP<STRING, ARRAY<STRING>>) WITH ('provider'='openai')"
        )
        assert [(c.name, c.type) for c in model.outputs] == [
            ("content", "STRING"),
            ("http-status-code", "INT"),
            ("http-headers-map", "MAP<STRING, ARRAY<STRING>>"),
        ]

    def test_type_spacing_is_normalised(self) -> None:
        model = parse_create_model(
            "CREATE MODEL m OUTPUT (a MAP<STRING,ARRAY<STRING>>, b ARRAY<ROW<x INT,y VARCHAR(10)>> NOT NULL,"
            " c ROW<`f g` INT 'desc'>) WITH ()"
        )
        assert [c.type for c in model.outputs] == [
            "MAP<STRING, ARRAY<STRING>>",
            "ARRAY<ROW<x INT, y VARCHAR(10)>> NOT NULL",
            "ROW<`f g` INT 'desc'>",
        ]
        assert parse_create_model(model.render()) == model

    def test_unterminated_string_in_statement(self) -> None:
        with pytest.raises(SqlSyntaxError, match="unterminated string literal starting at line 2"):
            parse_create_model("CREATE MODEL m\nWITH ('provider' = 'openai)")

    def test_render_round_trip(self) -> None:
        model = parse_create_model(
            "CREATE TEMPORARY MODEL IF NOT EXISTS c.d.`we``ird` "
            "INPUT (`in put` STRING COMMENT 'a''b') OUTPUT (o ARRAY<FLOAT>) COMMENT 'x' "
            "WITH ('provider'='openai', 'system-prompt'='Say ''hi''; then -- stop')"
        )
        rendered = model.render()
        assert parse_create_model(rendered) == model
        assert rendered.startswith("CREATE TEMPORARY MODEL IF NOT EXISTS `c`.`d`.`we``ird`\n")
        assert "'system-prompt' = 'Say ''hi''; then -- stop'" in rendered
        assert len(split_statements(rendered + ";")) == 1

    def test_render_with_replacement_options(self) -> None:
        model = parse_create_model(
            "CREATE MODEL m INPUT (i STRING) OUTPUT (o STRING) WITH ('provider'='openai', 'api-key'='sk-1')"
        )
        rendered = model.render({"provider": "openai", "api-key": "****"})
        assert "sk-1" not in rendered
        assert parse_create_model(rendered).options == {"provider": "openai", "api-key": "****"}
        assert model.options["api-key"] == "sk-1"

    def test_render_seed_round_trip(self) -> None:
        model = parse_create_model(split_statements(SEED_BAILIAN)[0].text)
        assert parse_create_model(model.render()) == model

    def test_same_column_in_input_and_output_is_allowed(self) -> None:
        model = parse_create_model("CREATE MODEL m INPUT (x STRING) OUTPUT (x STRING) WITH ()")
        assert model.inputs[0].name == model.outputs[0].name == "x"
        assert model.options == {}

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("CREATE MODEL m INPUT (i STRING) OUTPUT (o STRING)",
             r"CREATE MODEL: expected WITH \(\.\.\.\) after OUTPUT \(\.\.\.\), found end of statement"),
            ("CREATE MODEL m INPUT (i STRING)",
             r"expected WITH \(\.\.\.\) after INPUT \(\.\.\.\)"),
            ("CREATE MODEL m", r"expected WITH \(\.\.\.\) after the model name"),
            ("CREATE MODEL m COMMENT 'c'", r"expected WITH \(\.\.\.\) after COMMENT '\.\.\.'"),
            ("CREATE MODEL m OUTPUT (o STRING) INPUT (i STRING) WITH ()",
             r"expected WITH \(\.\.\.\) after OUTPUT \(\.\.\.\), found 'INPUT' at line 1"),
            ("CREATE MODEL m WITH ('a'='1', 'a'='2')", "CREATE MODEL: duplicate option 'a'"),
            ("CREATE MODEL m INPUT (x STRING, `x` INT) WITH ()", "duplicate column `x` in INPUT"),
            ("CREATE MODEL m OUTPUT (x STRING, x INT) WITH ()", "duplicate column `x` in OUTPUT"),
            ("CREATE MODEL m INPUT () WITH ()", r"expected a column name after INPUT \(, found '\)'"),
            ("CREATE MODEL m INPUT (x) WITH ()", "expected a type for column `x`"),
            ("CREATE MODEL m INPUT (x STRING COMMENT) WITH ()", "expected a string literal after COMMENT of column `x`"),
            ("CREATE MODEL m INPUT x STRING WITH ()", "expected '\\(' after INPUT, found 'x'"),
            ("CREATE MODEL m INPUT (x STRING WITH ()", "expected ',' or '\\)' after column `x` in INPUT"),
            ("CREATE MODEL m WITH ('a' 'b')", "expected '=' after option key 'a'"),
            ("CREATE MODEL m WITH (a = 'b')", "expected an option key \\(a string literal\\) after WITH \\("),
            ("CREATE MODEL m WITH ('a' = 1)", "expected a string literal after '=' of option 'a', found number 1"),
            ("CREATE MODEL m WITH ('a' = 'b',)", "expected an option key .* after ','"),
            ("CREATE MODEL m WITH ('a' = 'b' 'c' = 'd')", "expected ',' or '\\)' after option 'a'"),
            ("CREATE MODEL m WITH ('a' = 'b') EXTRA", "unexpected 'EXTRA' after WITH"),
            ("CREATE MODEL a.b.c.d WITH ()", "at most 3 parts"),
            ("CREATE MODEL IF EXISTS m WITH ()", "expected NOT after IF"),
            ("CREATE TABLE m WITH ()", "expected MODEL after CREATE \\[TEMPORARY\\], found 'TABLE'"),
            ("CREATE OR REPLACE MODEL m WITH ()", "CREATE OR REPLACE MODEL is not supported"),
            ("CREATE TEMPORARY SYSTEM MODEL m WITH ()", "SYSTEM models are not supported"),
            ("CREATE MODEL m\nINPUT (x STRING)\nWITH\n('k' = 'v'", "expected ',' or '\\)' after option 'k', found end of statement at line 4"),
        ],
    )
    def test_errors(self, text: str, message: str) -> None:
        with pytest.raises(SqlSyntaxError, match=message):
            parse_create_model(text)

    def test_missing_model_name(self) -> None:
        # `WITH` is taken as the name, then '(' is not a clause
        with pytest.raises(SqlSyntaxError, match=r"expected WITH \(\.\.\.\) after the model name, found '\('"):
            parse_create_model("CREATE MODEL WITH ()")
        with pytest.raises(SqlSyntaxError, match="expected a model name after CREATE MODEL, found end"):
            parse_create_model("CREATE MODEL")

    def test_error_line_number(self) -> None:
        with pytest.raises(SqlSyntaxError, match="at line 3"):
            parse_create_model("CREATE MODEL m\nINPUT (x STRING)\nOUTPUT y STRING\nWITH ()")

    def test_errors_never_quote_option_values(self) -> None:
        with pytest.raises(SqlSyntaxError) as info:
            parse_create_model("CREATE MODEL m WITH ('api-key' 'sk-abc123')")
        assert "sk-abc123" not in str(info.value)
        with pytest.raises(SqlSyntaxError) as info:
            parse_create_model("CREATE MODEL m WITH ('api-key' = 'sk-abc123' 'x')")
        assert "sk-abc123" not in str(info.value)


class TestDropModel:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("DROP MODEL m", DropModel(("m",), False, False)),
            ("drop temporary model if exists c.`d b`.m", DropModel(("c", "d b", "m"), True, True)),
            ("DROP MODEL IF EXISTS `x`", DropModel(("x",), True, False)),
        ],
    )
    def test_parse(self, text: str, expected: DropModel) -> None:
        assert parse_drop_model(text) == expected

    def test_name(self) -> None:
        assert parse_drop_model("DROP MODEL a.b").name == "a.b"

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("DROP MODEL", "DROP MODEL: expected a model name after DROP MODEL, found end of statement"),
            ("DROP MODEL IF m", "expected EXISTS after IF"),
            ("DROP MODEL m n", "unexpected 'n' after the model name"),
            ("DROP TABLE m", "expected MODEL after DROP"),
            ("DROP SYSTEM MODEL m", "SYSTEM models are not supported"),
        ],
    )
    def test_errors(self, text: str, message: str) -> None:
        with pytest.raises(SqlSyntaxError, match=message):
            parse_drop_model(text)


# ---------------------------------------------------------------------------------------------
# WITH clauses of other statements
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# ML_PREDICT
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Environment substitution
# ---------------------------------------------------------------------------------------------


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
