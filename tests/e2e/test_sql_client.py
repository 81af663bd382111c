"""Files for Flink's SQL client: generated from CREATE MODEL statements, then executed through
PyFlink's TableEnvironment the way the SQL client would (the pip distribution has no SQL gateway)."""

from __future__ import annotations

import pytest

from flink_ml_predict import ConfigurationError
from flink_ml_predict.sqlclient import generate
from tests.conftest import TEST_KEY

pytestmark = pytest.mark.flink

MODELS = """
SET 'table.exec.async-scalar.max-concurrent-operations' = '16';
CREATE MODEL ai_analyze_sentiment
INPUT (`input` STRING)
OUTPUT (`content` STRING)
WITH (
  'provider' = 'qwen',
  'endpoint' = '${QWEN_ENDPOINT}',
  'api-key' = '${DASHSCOPE_API_KEY}',
  'model' = 'qwen-turbo',
  'system-prompt' = 'Classify the text below into one of the following labels: [positive, negative, neutral, mixed]. Output only the label.'
);
CREATE MODEL embed INPUT (`input` STRING) OUTPUT (`embedding` ARRAY<FLOAT>) WITH (
  'provider' = 'qwen', 'endpoint' = '${QWEN_ENDPOINT}/embeddings',
  'api-key' = '${DASHSCOPE_API_KEY}', 'model' = 'text-embedding-v4', 'dimension' = '3');
"""


CLASSIFY = ("Classify the text below into one of the following labels: [positive, negative, "
            "neutral, mixed]. Output only the label.")
# What init.sql must hold, written out here (not split or parsed by the package's own code): the
# SQL client's SET statements, then one statement per entry.
EXPECTED_SETTINGS = [("table.exec.async-scalar.retry-strategy", "NO_RETRY"),
                     ("table.exec.async-scalar.max-concurrent-operations", "16")]
EXPECTED_STATEMENTS = [
    "CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS `ai_analyze_sentiment` AS "
    "'flink_ml_predict_models.ai_analyze_sentiment' LANGUAGE PYTHON",
    "CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS `embed` AS 'flink_ml_predict_models.embed' "
    "LANGUAGE PYTHON",
    "CREATE MODEL `ai_analyze_sentiment`\nINPUT (`input` STRING)\nOUTPUT (`content` STRING)\n"
    "WITH (\n  'provider' = 'qwen',\n  'endpoint' = '${QWEN_ENDPOINT}',\n  'api-key' = '******',\n"
    f"  'model' = 'qwen-turbo',\n  'system-prompt' = '{CLASSIFY}'\n)",
    "CREATE MODEL `embed`\nINPUT (`input` STRING)\nOUTPUT (`embedding` ARRAY<FLOAT>)\nWITH (\n"
    "  'provider' = 'qwen',\n  'endpoint' = '${QWEN_ENDPOINT}/embeddings',\n"
    "  'api-key' = '******',\n  'model' = 'text-embedding-v4',\n  'dimension' = '3'\n)",
]


def run_like_the_sql_client(t_env) -> None:
    """What `sql-client.sh -i init.sql` does with the expected file: SETs, then each statement."""
    for key, value in EXPECTED_SETTINGS:
        t_env.get_config().set(key, value)
    for statement in EXPECTED_STATEMENTS:
        t_env.execute_sql(statement)


def test_generated_files_run_model_queries(t_env, server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("QWEN_ENDPOINT", server.dashscope_base_url)
    monkeypatch.setenv("DASHSCOPE_API_KEY", TEST_KEY)
    generated = generate(MODELS, tmp_path / "client")
    assert generated.functions == ("ai_analyze_sentiment", "embed")
    init_sql = generated.init_sql.read_text(encoding="utf-8")
    assert TEST_KEY not in init_sql + generated.module.read_text(encoding="utf-8")
    assert "LANGUAGE PYTHON" in init_sql and "'******'" in init_sql
    statements = "\n".join(line for line in init_sql.splitlines() if not line.startswith("--"))
    assert statements == "\n".join(
        [f"SET '{key}' = '{value}';" for key, value in EXPECTED_SETTINGS]
        + [f"{statement};" for statement in EXPECTED_STATEMENTS])

    server.latency = (0.0, 0.03)
    # What -pyfs does: the SQL client's Python process imports the file to register the functions
    # (here: this process, through PyFlink's function factory), and the workers get it too.
    monkeypatch.syspath_prepend(str(generated.module.parent))
    t_env.add_python_file(str(generated.module))
    run_like_the_sql_client(t_env)
    t_env.execute_sql("CREATE TEMPORARY VIEW comments(id, txt) AS SELECT id, CASE WHEN "
                      "MOD(id, 2) = 0 THEN CONCAT('I love it ', CAST(id AS STRING)) ELSE "
                      "CONCAT('boring ', CAST(id AS STRING)) END FROM (SELECT CAST(id AS INT) "
                      "AS id FROM (VALUES (1), (2), (3), (4), (5), (6)) AS v(id))")
    with t_env.execute_sql(
            "SELECT t.id, p.content, CARDINALITY(e.embedding) FROM comments AS t "
            "CROSS JOIN UNNEST(ai_analyze_sentiment(t.txt)) AS p(content) "
            "CROSS JOIN UNNEST(embed(t.txt)) AS e(embedding)").collect() as results:
        rows = sorted(tuple(r) for r in results)
    assert rows == [(i, "positive" if i % 2 == 0 else "negative", 3) for i in range(1, 7)]
    assert server.wait_idle()
    assert len(server.completed_requests("/chat/completions")) == 6
    # Embeddings rows in flight share requests (batching): each text is embedded exactly once.
    embedded = [text for r in server.completed_requests("/embeddings") for text in r.body["input"]]
    assert sorted(embedded) == sorted(
        f"I love it {i}" if i % 2 == 0 else f"boring {i}" for i in range(1, 7))
    with t_env.execute_sql("SHOW MODELS").collect() as results:
        assert sorted(r[0] for r in results) == ["ai_analyze_sentiment", "embed"]


def test_generator_refuses_other_statements_and_bad_models(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("QWEN_ENDPOINT", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("DASHSCOPE_API_KEY", TEST_KEY)
    with pytest.raises(ConfigurationError, match=r"statement 3 \(line 13\): only CREATE MODEL and SET"):
        generate(MODELS.replace("CREATE MODEL embed", "CREATE VIEW v AS SELECT 1;\nCREATE MODEL e"),
                 tmp_path)
    with pytest.raises(ConfigurationError, match="unknown option 'temprature'"):
        generate(MODELS.replace("'dimension' = '3'", "'temprature' = '3'"), tmp_path)
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    with pytest.raises(ConfigurationError, match="DASHSCOPE_API_KEY is not set"):
        generate(MODELS, tmp_path)


STRUCTURED = """
CREATE MODEL review
INPUT (title STRING, body STRING COMMENT 'the review')
OUTPUT (label STRING COMMENT 'positive, negative, neutral or mixed', words INT,
        `prompt-tokens` INT)
WITH (
  'provider' = 'qwen', 'endpoint' = '${QWEN_ENDPOINT}', 'api-key' = '${DASHSCOPE_API_KEY}',
  'model' = 'qwen-plus', 'prompt-template' = '{title}: {body}'
);
"""


def test_structured_models_with_several_inputs_are_functions_of_several_arguments(
        t_env, server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("QWEN_ENDPOINT", server.dashscope_base_url)
    monkeypatch.setenv("DASHSCOPE_API_KEY", TEST_KEY)
    # its own module name: the other test's module of the same name stays imported in this process
    generated = generate(STRUCTURED, tmp_path / "client", module="structured_models")
    init_sql = generated.init_sql.read_text(encoding="utf-8")
    assert ("--   SELECT t.*, p.* FROM t CROSS JOIN UNNEST(review(t.title, t.body)) AS "
            "p(label, words, `prompt-tokens`);\n") in init_sql
    model = ("CREATE MODEL `review`\nINPUT (`title` STRING, `body` STRING COMMENT 'the review')\n"
             "OUTPUT (`label` STRING COMMENT 'positive, negative, neutral or mixed', `words` INT, "
             "`prompt-tokens` INT)\nWITH (\n  'provider' = 'qwen',\n"
             "  'endpoint' = '${QWEN_ENDPOINT}',\n  'api-key' = '******',\n"
             "  'model' = 'qwen-plus',\n  'prompt-template' = '{title}: {body}'\n)")
    statements = [line for line in init_sql.split(";\n") if not line.startswith("--")]
    assert model in statements

    monkeypatch.syspath_prepend(str(generated.module.parent))
    t_env.add_python_file(str(generated.module))
    t_env.get_config().set("table.exec.async-scalar.retry-strategy", "NO_RETRY")
    t_env.execute_sql("CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS `review` AS "
                      "'structured_models.review' LANGUAGE PYTHON")
    t_env.execute_sql(model)
    t_env.execute_sql("CREATE TEMPORARY VIEW films(id, title, body) AS VALUES "
                      "(1, 'Up', 'I love it'), (2, 'Cats', 'boring')")
    with t_env.execute_sql(
            "SELECT t.id, p.label, p.words, p.`prompt-tokens` FROM films AS t CROSS JOIN "
            "UNNEST(review(t.title, t.body)) AS p(label, words, `prompt-tokens`)"
    ).collect() as results:
        rows = sorted(tuple(r) for r in results)
    system = "You are a helpful assistant."
    assert rows == [(1, "positive", 4, (len(system) + 3) // 4 + (len("Up: I love it") + 3) // 4),
                    (2, "negative", 2, (len(system) + 3) // 4 + (len("Cats: boring") + 3) // 4)]
    assert server.wait_idle()
    (schema,) = {str(f["json_schema"]["schema"]) for f in server.structured.received}
    assert "'description': 'positive, negative, neutral or mixed'" in schema
    assert len(server.completed_requests("/chat/completions")) == 2
