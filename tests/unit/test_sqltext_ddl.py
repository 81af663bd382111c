"""Unit tests for flink_ml_predict.sqltext: CREATE MODEL / DROP MODEL."""

from __future__ import annotations

import pytest

from flink_ml_predict.errors import SqlSyntaxError
from flink_ml_predict.sqltext import (
    ColumnDef,
    CreateModel,
    DropModel,
    parse_create_model,
    parse_drop_model,
    split_statements,
)
from tests.unit.sql_seeds import SEED_BAILIAN


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


class TestColumnDefinitions:
    """INPUT/OUTPUT columns keep their type text whole, NOT NULL included, and their comment apart."""

    @pytest.mark.parametrize(
        ("column", "expected"),
        [
            ("`input` STRING NOT NULL", ColumnDef("input", "STRING NOT NULL")),
            ("`input` STRING NULL", ColumnDef("input", "STRING NULL")),
            ("`input` STRING NOT NULL COMMENT 'the text'", ColumnDef("input", "STRING NOT NULL", "the text")),
            ("tags ARRAY<STRING>", ColumnDef("tags", "ARRAY<STRING>")),
            ("counts MAP<STRING, INT>", ColumnDef("counts", "MAP<STRING, INT>")),
            ("r ROW<a INT, b STRING>", ColumnDef("r", "ROW<a INT, b STRING>")),
            ("r ROW<a INT COMMENT 'x'>", ColumnDef("r", "ROW<a INT COMMENT 'x'>")),
            ("r ROW<a INT COMMENT 'x', b STRING> NOT NULL COMMENT 'y'",
             ColumnDef("r", "ROW<a INT COMMENT 'x', b STRING> NOT NULL", "y")),
            ("price DECIMAL(10, 2)", ColumnDef("price", "DECIMAL(10, 2)")),
            ("price DECIMAL(10,2) NOT NULL", ColumnDef("price", "DECIMAL(10, 2) NOT NULL")),
            ("ts TIMESTAMP(3)", ColumnDef("ts", "TIMESTAMP(3)")),
            ("`prompt-tokens` INT", ColumnDef("prompt-tokens", "INT")),
            ("`prompt-tokens` INT NOT NULL COMMENT 'usage; as reported'",
             ColumnDef("prompt-tokens", "INT NOT NULL", "usage; as reported")),
            ("`it``s` STRING COMMENT 'it''s'", ColumnDef("it`s", "STRING", "it's")),
        ],
    )
    def test_column(self, column: str, expected: ColumnDef) -> None:
        model = parse_create_model(f"CREATE MODEL m INPUT (`x` STRING) OUTPUT ({column}, `z` INT) WITH ()")
        assert model.outputs == (expected, ColumnDef("z", "INT"))
        model = parse_create_model(f"CREATE MODEL m INPUT ({column}) WITH ()")
        assert model.inputs == (expected,)

    def test_render_keeps_not_null_and_comments(self) -> None:
        model = parse_create_model(
            "CREATE MODEL m INPUT (`input` STRING NOT NULL COMMENT 'the user''s text') "
            "OUTPUT (`content` STRING, `prompt-tokens` INT NOT NULL, r ROW<a INT COMMENT 'x'> COMMENT 'y', "
            "d DECIMAL(10, 2), ts TIMESTAMP(3), tags ARRAY<STRING>, counts MAP<STRING, INT>) WITH ('provider' = 'openai')"
        )
        assert model.render() == (
            "CREATE MODEL `m`\n"
            "INPUT (`input` STRING NOT NULL COMMENT 'the user''s text')\n"
            "OUTPUT (`content` STRING, `prompt-tokens` INT NOT NULL, `r` ROW<a INT COMMENT 'x'> COMMENT 'y', "
            "`d` DECIMAL(10, 2), `ts` TIMESTAMP(3), `tags` ARRAY<STRING>, `counts` MAP<STRING, INT>)\n"
            "WITH (\n  'provider' = 'openai'\n)"
        )
        assert parse_create_model(model.render()) == model

    def test_comment_of_a_column_without_type_is_an_error(self) -> None:
        with pytest.raises(SqlSyntaxError, match="expected a type for column `x`"):
            parse_create_model("CREATE MODEL m INPUT (x COMMENT 'c') WITH ()")

    @pytest.mark.parametrize(
        ("column", "message"),
        [
            ("r ROW<a INT, b STRING)", r"'\)' closes '<' in the type of column `r` at line 1"),
            ("r ARRAY<STRING>>", "'>' closes nothing in the type of column `r`"),
            ("d DECIMAL(10, 2>", "'>' closes '\\(' in the type of column `d`"),
        ],
    )
    def test_unbalanced_type_is_an_error(self, column: str, message: str) -> None:
        with pytest.raises(SqlSyntaxError, match=message):
            parse_create_model(f"CREATE MODEL m OUTPUT ({column}) WITH ()")

    def test_type_never_closed(self) -> None:
        with pytest.raises(SqlSyntaxError, match="'<' in the type of column `r` is never closed at line 2"):
            parse_create_model("CREATE MODEL m\nOUTPUT (r ARRAY<STRING")
