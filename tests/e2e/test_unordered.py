"""'output-mode' = 'ALLOW_UNORDERED' in a real Flink job on a StreamTableEnvironment: the results
leave in the order they arrive (a slow first row comes out last), every row keeps its own answer
and each input row causes one request; on the same environment ORDERED keeps input order, and a
plain TableEnvironment runs ALLOW_UNORDERED in order (PyFlink's async scalar operator has no
unordered mode)."""

from __future__ import annotations

import pytest

from flink_ml_predict import create_table_environment, execute_script
from tests.conftest import collect, model_ddl, sequence_source
from tests.fakes.openai_server import Fault

pytestmark = pytest.mark.flink

ROWS = 20
SLOW_S = 4.0  # the first row's answer; the other 19 are immediate


def query(mode: str) -> str:
    return ("SELECT id, txt, content FROM ML_PREDICT(TABLE src, MODEL m, DESCRIPTOR(txt), "
            f"MAP['output-mode', '{mode}', 'max-concurrent-operations', '{ROWS}'])")


def run(t_env, server, mode: str) -> list[tuple]:
    server.script("text-1", [Fault.slow(SLOW_S)])
    execute_script(t_env, model_ddl("m", server.base_url) + ";\n" + sequence_source("src", ROWS))
    return collect(t_env, query(mode))


def check_rows(rows: list[tuple]) -> None:
    assert sorted(r[0] for r in rows) == list(range(1, ROWS + 1))
    assert all(content == f"text-{id_}" == txt for id_, txt, content in rows)


def test_allow_unordered_emits_as_answers_arrive(server) -> None:
    st_env = create_table_environment(parallelism=1, datastream=True)
    rows = run(st_env, server, "ALLOW_UNORDERED")
    check_rows(rows)
    assert rows[-1][0] == 1  # the slow row did not hold back the 19 behind it
    assert server.wait_idle()
    assert sorted(r.body["messages"][-1]["content"] for r in server.requests) == sorted(
        f"text-{i}" for i in range(1, ROWS + 1))


@pytest.mark.parametrize("datastream, mode", [(True, "ORDERED"), (False, "ALLOW_UNORDERED")])
def test_in_order_otherwise(server, datastream: bool, mode: str) -> None:
    t_env = create_table_environment(parallelism=1, datastream=datastream)
    rows = run(t_env, server, mode)
    check_rows(rows)
    assert [r[0] for r in rows] == list(range(1, ROWS + 1))


def test_the_python_api_predict_takes_the_unordered_path(server) -> None:
    from flink_ml_predict import predict

    st_env = create_table_environment(parallelism=1, datastream=True)
    server.script("text-1", [Fault.slow(SLOW_S)])
    execute_script(st_env, model_ddl("m", server.base_url) + ";\n" + sequence_source("src", ROWS))
    table = predict(st_env, st_env.from_path("src"), "m", "txt",
                    {"output-mode": "ALLOW_UNORDERED", "max-concurrent-operations": str(ROWS)})
    with table.execute().collect() as results:
        rows = [tuple(row) for row in results]
    check_rows(rows)
    assert rows[-1][0] == 1
