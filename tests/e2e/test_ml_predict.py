"""ML_PREDICT as real Flink jobs on the embedded mini-cluster against a real HTTP server."""

from __future__ import annotations

import pytest

from flink_ml_predict import PredictCallError, execute_script, predict, register_model, sql_query
from flink_ml_predict.demo_answers import embedding_vector
from tests.conftest import METADATA_OUTPUT, TEST_KEY, collect, model_ddl, sequence_source
from tests.fakes.openai_server import Fault

pytestmark = pytest.mark.flink


def test_every_row_gets_its_own_answer_under_random_latency(t_env, server) -> None:
    """FLINK-39532 guard: distinct inputs, random latencies, many in flight -> no mix-ups."""
    server.latency = (0.0, 0.05)
    execute_script(t_env, model_ddl("echo", server.base_url) + ";\n" + sequence_source("src", 400))
    rows = collect(t_env, "SELECT id, txt, content FROM ML_PREDICT(TABLE src, MODEL echo, "
                          "DESCRIPTOR(txt), MAP['max-concurrent-operations', '50'])")
    assert len(rows) == 400
    wrong = [row for row in rows if row[2] != row[1]]
    assert wrong == []
    assert sorted(row[0] for row in rows) == list(range(1, 401))
    assert server.max_in_flight > 1  # the rows really were in flight together


def test_one_request_per_row_with_several_output_columns(t_env, server) -> None:
    ddl = model_ddl("m", server.base_url, output=METADATA_OUTPUT, error_handling_strategy="IGNORE")
    execute_script(t_env, ddl + ";\n" + sequence_source("src", 30))
    rows = collect(t_env, "SELECT id, content, `error-string`, `http-status-code`, "
                          "`http-headers-map`, UPPER(content) AS upper_content "
                          "FROM ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt))")
    assert len(rows) == 30
    assert all(r[1] == f"text-{r[0]}" and r[2] is None and r[3] is None and r[4] is None
               and r[5] == r[1].upper() for r in rows)
    assert server.wait_idle()
    assert len(server.completed_requests("/chat/completions")) == 30


def hold_until_in_flight(t_env, server, bound: int, rows: int) -> None:
    """Hold each round of answers until `bound` requests wait together, and 0.1 s longer (the
    last few rows go as they come).

    However loaded the machine, the job must then have `bound` requests out at once, or the gate
    times out (server.gate_expired); the extra 0.1 s of every round is the window in which a job
    allowed more would send more (max_in_flight above `bound`). PyFlink ends a bundle after 1 s
    by default and waits for the requests in flight before the next: a bundle cut in the middle
    of a round would leave fewer than `bound` requests to hold, so the input here is one bundle."""
    t_env.get_config().set("python.fn-execution.bundle.time", "3600000")
    server.hold(release_when=lambda s: s.in_flight >= bound or s.arrived > rows - 2 * bound,
                linger=0.1)


def test_in_flight_requests_are_bounded_by_max_concurrent_operations(t_env, server) -> None:
    execute_script(t_env, model_ddl("m", server.base_url) + ";\n" + sequence_source("src", 60))
    hold_until_in_flight(t_env, server, 4, rows=60)
    rows = collect(t_env, "SELECT id, content FROM ML_PREDICT(TABLE src, MODEL m, "
                          "DESCRIPTOR(txt), MAP['max-concurrent-operations', '4'])")
    assert len(rows) == 60
    assert (server.max_in_flight, server.gate_expired) == (4, 0)


def test_an_unanswered_row_does_not_hold_back_the_requests_behind_it(t_env, server) -> None:
    """Ordered output: answered rows wait in PyFlink's queue for the rows before them without
    keeping a request slot. Row 1 is answered only once 24 requests have reached the server
    (with only 4 queue entries, as many as the slots, no more than 4 could); at no time are
    more than max-concurrent-operations = 4 requests out, and the output keeps input order."""
    server.script("text-1", [Fault.after_arrivals(24)])
    execute_script(t_env, model_ddl("m", server.base_url) + ";\n" + sequence_source("src", 40))
    t_env.get_config().set("python.fn-execution.bundle.time", "3600000")  # no mid-run drain
    rows = collect(t_env, "SELECT id, content FROM ML_PREDICT(TABLE src, MODEL m, "
                          "DESCRIPTOR(txt), MAP['max-concurrent-operations', '4'])")
    assert rows == [(i, f"text-{i}") for i in range(1, 41)]
    assert server.gate_expired == 0  # row 1 saw 24 arrivals: the others went on meanwhile
    assert server.max_in_flight <= 4


def test_default_concurrency_follows_the_table_option(t_env, server) -> None:
    script = (model_ddl("m", server.base_url) + ";\n" + sequence_source("src", 60)
              + "SET 'table.exec.async-ml-predict.max-concurrent-operations' = '6';\n")
    execute_script(t_env, script)
    hold_until_in_flight(t_env, server, 6, rows=60)
    rows = collect(t_env, "SELECT id, content FROM ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt))")
    assert len(rows) == 60
    assert (server.max_in_flight, server.gate_expired) == (6, 0)


def test_ordered_output_follows_input_order(t_env, server) -> None:
    server.latency = (0.0, 0.05)
    execute_script(t_env, model_ddl("m", server.base_url) + ";\n" + sequence_source("src", 100))
    rows = collect(t_env, "SELECT id FROM ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt), "
                          "MAP['output-mode', 'ORDERED', 'max-concurrent-operations', '20'])")
    assert [r[0] for r in rows] == list(range(1, 101))


def test_n_choices_give_one_row_each(t_env, server) -> None:
    execute_script(t_env, model_ddl("m", server.base_url, n="2") + ";\n"
                   + sequence_source("src", 3))
    rows = sorted(collect(t_env, "SELECT id, content FROM ML_PREDICT(TABLE src, MODEL m, "
                                 "DESCRIPTOR(txt))"))
    assert rows == [(i, text) for i in (1, 2, 3) for text in (f"text-{i}", f"text-{i} #2")]
    assert len(server.requests) == 3


def test_chat_options_reach_the_request_body(t_env, server) -> None:
    ddl = model_ddl("m", server.dashscope_base_url, provider="qwen", model="qwen-plus",
                    system_prompt="Be brief, in JSON.", temperature="0.3", top_p="0.9", stop="END,STOP",
                    max_tokens="64", presence_penalty="0.5", seed="42",
                    response_format="json_object", top_k="20", enable_search="true",
                    repetition_penalty="1.1")
    execute_script(t_env, ddl + ";\n" + sequence_source("src", 1))
    collect(t_env, "SELECT content FROM ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt))")
    (request,) = server.requests
    assert request.path == "/compatible-mode/v1/chat/completions"
    assert request.body == {
        "model": "qwen-plus",
        "messages": [{"role": "system", "content": "Be brief, in JSON."},
                     {"role": "user", "content": "text-1"}],
        "temperature": 0.3, "top_p": 0.9, "stop": ["END", "STOP"], "max_tokens": 64,
        "presence_penalty": 0.5, "seed": 42, "response_format": {"type": "json_object"},
        "top_k": 20, "enable_search": True, "repetition_penalty": 1.1,
    }


def test_default_system_prompt(t_env, server) -> None:
    execute_script(t_env, model_ddl("m", server.base_url) + ";\n" + sequence_source("src", 1))
    collect(t_env, "SELECT content FROM ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt))")
    assert server.requests[0].body["messages"][0] == {"role": "system",
                                                      "content": "You are a helpful assistant."}


def test_embeddings_through_base_url_and_output_type(t_env, server) -> None:
    ddl = model_ddl("emb", server.dashscope_base_url, provider="qwen", model="text-embedding-v4",
                    output="`embedding` ARRAY<FLOAT>", dimension="4")
    execute_script(t_env, ddl + ";\n" + sequence_source("src", 5))
    rows = collect(t_env, "SELECT id, txt, embedding FROM ML_PREDICT(TABLE src, MODEL emb, "
                          "DESCRIPTOR(txt))")
    assert len(rows) == 5
    for _, text, vector in rows:
        assert vector == pytest.approx(embedding_vector(text, 4), abs=1e-6)
    assert server.wait_idle()
    bodies = [r.body for r in server.completed_requests("/embeddings")]
    assert sorted(text for b in bodies for text in b["input"]) == sorted(r[1] for r in rows)
    assert all(b["model"] == "text-embedding-v4" and b["dimensions"] == 4
               and b["encoding_format"] == "float" and len(b["input"]) <= 10 for b in bodies)


def test_embeddings_max_tokens_truncates_each_row(t_env, server) -> None:
    ddl = model_ddl("emb", server.dashscope_base_url + "/embeddings", provider="qwen",
                    model="text-embedding-v4", output="`embedding` ARRAY<FLOAT>", max_tokens="3")
    script = ddl + ";\nCREATE TEMPORARY VIEW src(id, txt) AS VALUES (1, 'one two three four five six')"
    execute_script(t_env, script)
    collect(t_env, "SELECT embedding FROM ML_PREDICT(TABLE src, MODEL emb, DESCRIPTOR(txt))")
    assert server.requests[0].body["input"] == ["one two three"]


def test_null_input_is_skipped_without_a_request(t_env, server) -> None:
    script = model_ddl("m", server.base_url) + (
        ";\nCREATE TEMPORARY VIEW src(id, txt) AS SELECT * FROM (VALUES (1, 'a'), "
        "(2, CAST(NULL AS STRING)), (3, 'c'))")
    execute_script(t_env, script)
    rows = sorted(collect(t_env, "SELECT id, content FROM ML_PREDICT(TABLE src, MODEL m, "
                                 "DESCRIPTOR(txt))"))
    assert rows == [(1, "a"), (3, "c")]
    assert sorted(r.body["messages"][1]["content"] for r in server.requests) == ["a", "c"]


def test_two_calls_in_one_query_and_a_subquery_table(t_env, server) -> None:
    script = "\n".join([
        model_ddl("upper_m", server.base_url) + ";",
        model_ddl("`second model`", server.dashscope_base_url, provider="qwen",
                  model="qwen-turbo", output="`answer` STRING") + ";",
        sequence_source("src", 4),
    ])
    execute_script(t_env, script)
    rows = collect(t_env, """
        SELECT a.id, a.content, b.answer
        FROM ML_PREDICT(TABLE src, MODEL upper_m, DESCRIPTOR(txt)) AS a
        JOIN ML_PREDICT(TABLE (SELECT id, CONCAT(txt, '!') AS t2 FROM src WHERE id > 2),
                        MODEL `second model`, DESCRIPTOR(t2)) AS b ON a.id = b.id
        -- ML_PREDICT(TABLE nothing) in a comment is left alone
        WHERE a.content <> 'ML_PREDICT(TABLE x)'""")
    assert sorted(rows) == [(3, "text-3", "text-3!"), (4, "text-4", "text-4!")]
    assert sorted(r.path for r in server.requests) == (
        ["/compatible-mode/v1/chat/completions"] * 2 + ["/v1/chat/completions"] * 4)


def test_named_arguments_and_synchronous_mode(t_env, server) -> None:
    execute_script(t_env, model_ddl("m", server.base_url) + ";\n" + sequence_source("src", 3))
    rows = collect(t_env, "SELECT id, content FROM ML_PREDICT(INPUT => TABLE src, "
                          "MODEL => MODEL m, ARGS => DESCRIPTOR(txt), "
                          "CONFIG => MAP['async', 'false'])")
    assert sorted(rows) == [(1, "text-1"), (2, "text-2"), (3, "text-3")]
    assert server.max_in_flight == 1


def test_python_api_register_and_predict(t_env, server) -> None:
    register_model(t_env, "labeller", {
        "provider": "openai", "endpoint": server.base_url + "/chat/completions",
        "api-key": TEST_KEY, "model": "gpt-4o-mini",
        "system-prompt": "Classify the text below into one of the following labels: "
                         "[positive, negative, neutral, mixed]. Output only the label."},
        outputs={"label": "STRING"})
    comments = t_env.from_elements([(1, "I love it, great film"), (2, "boring and bad")],
                                   ["id", "comment"])
    table = predict(t_env, comments, "labeller", "comment")
    assert table.get_schema().get_field_names() == ["id", "comment", "label"]
    with table.execute().collect() as results:
        rows = sorted(tuple(r) for r in results)
    assert rows == [(1, "I love it, great film", "positive"), (2, "boring and bad", "negative")]


def test_models_are_in_flinks_catalog_with_the_key_masked(t_env, server) -> None:
    catalog_model = model_ddl("m", server.base_url).replace("CREATE TEMPORARY", "CREATE")
    execute_script(t_env, catalog_model + ";\n" + sequence_source("src", 1))
    with t_env.execute_sql("SHOW MODELS").collect() as results:
        assert [r[0] for r in results] == ["m"]
    with t_env.execute_sql("SHOW CREATE MODEL m").collect() as results:
        ddl = "".join(str(r[0]) for r in results)
    assert TEST_KEY not in ddl and "******" in ddl
    plan = sql_query(t_env, "SELECT * FROM ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt))"
                     ).explain()
    assert TEST_KEY not in plan and "PythonAsyncCalc" in plan
    execute_script(t_env, "DROP MODEL m")
    with t_env.execute_sql("SHOW MODELS").collect() as results:
        assert list(results) == []


def test_in_flight_bound_is_capacity_times_parallelism(server) -> None:
    from flink_ml_predict import create_table_environment

    t_env = create_table_environment(parallelism=2)
    execute_script(t_env, model_ddl("m", server.base_url) + ";\n" + sequence_source("src", 120))
    hold_until_in_flight(t_env, server, 6, rows=120)  # 6 at once: both parallel instances, 3 each
    rows = collect(t_env, "SELECT id, content FROM ML_PREDICT(TABLE src, MODEL m, "
                          "DESCRIPTOR(txt), MAP['max-concurrent-operations', '3'])")
    assert sorted(r[0] for r in rows) == list(range(1, 121))
    assert all(content == f"text-{i}" for i, content in rows)
    assert (server.max_in_flight, server.gate_expired) == (6, 0)


def test_python_api_predict_config_values_are_quoted(t_env, server) -> None:
    register_model(t_env, "labeller", {"provider": "openai", "endpoint": server.base_url,
                                       "api-key": TEST_KEY, "model": "gpt-4o-mini"})
    comments = t_env.from_elements([(1, "a")], ["id", "comment"])
    with pytest.raises(PredictCallError,
                       match=r"ML_PREDICT CONFIG: output-mode 'ORDERED'' is not one of ORDERED"):
        predict(t_env, comments, "labeller", "comment", {"output-mode": "ordered'"})
    table = predict(t_env, comments, "labeller", "comment",
                    {"timeout": "30s", "max-concurrent-operations": "2"})
    with table.execute().collect() as results:
        assert [tuple(r) for r in results] == [(1, "a", "a")]
    assert server.requests and all(r.outcome == "ok" for r in server.requests)


def test_qualified_model_names_resolve_like_flink(t_env, server) -> None:
    def insert(row: int, model: str) -> str:
        return (f"INSERT INTO default_database.sink SELECT id, content FROM ML_PREDICT(TABLE "
                f"(SELECT * FROM default_database.src WHERE id = {row}), MODEL {model}, "
                "DESCRIPTOR(txt));\n")

    script = "".join([
        model_ddl("m1", server.base_url), ";\n",
        "CREATE DATABASE db2;\nUSE db2;\n",
        model_ddl("m2", server.base_url), ";\n",
        "USE default_database;\n",
        "CREATE TEMPORARY VIEW src(id, txt) AS VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), "
        "(5, 'e'), (6, 'f');\n",
        "CREATE TEMPORARY TABLE sink (id INT, content STRING) WITH ('connector' = 'blackhole');\n",
        "EXECUTE STATEMENT SET BEGIN\n",
        insert(1, "m1"), insert(2, "default_database.m1"),
        insert(3, "`default_catalog`.`default_database`.`m1`"), insert(4, "db2.m2"),
        insert(5, "default_catalog.db2.m2"), "END;\n",
        "USE db2;\n",
        insert(6, "m2"),
    ])
    execute_script(t_env, script)
    assert sorted(r.body["messages"][-1]["content"] for r in server.requests) == [
        "a", "b", "c", "d", "e", "f"]
    with pytest.raises(PredictCallError) as caught:
        sql_query(t_env, "SELECT * FROM ML_PREDICT(TABLE default_database.src, MODEL nope.m1, "
                         "DESCRIPTOR(txt))")
    assert str(caught.value) == (
        "sql_query: ML_PREDICT: unknown model 'nope.m1' (default_catalog.nope.m1); models "
        "created in this session: default_database.m1, m2")
