"""Why flink_ml_predict._pyflink_compat exists: PyFlink 2.3.0's async scalar operation hands a
reused input row to a coroutine that reads it later (FLINK-39532). In a fresh process, an async
function mixes up rows until our guard is installed; with it every row gets its own result.
If this test starts failing on the unguarded half, PyFlink fixed it and the guard can go."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT, subprocess_environ

pytestmark = pytest.mark.flink

PROGRAM = textwrap.dedent("""
    import asyncio, json
    from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment
    from pyflink.table.udf import AsyncScalarFunction, udf

    class Echo(AsyncScalarFunction):
        async def eval(self, text):
            await asyncio.sleep(0.02)
            return text

    def wrong_rows():
        t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
        t_env.get_config().set("parallelism.default", "1")
        t_env.create_temporary_function("echo", udf(Echo(), result_type=DataTypes.STRING()))
        t_env.execute_sql("CREATE TEMPORARY TABLE g (id BIGINT) WITH ('connector' = 'datagen', "
                          "'fields.id.kind' = 'sequence', 'fields.id.start' = '1', "
                          "'fields.id.end' = '50')")
        query = "SELECT t, echo(t) FROM (SELECT CAST(id AS STRING) AS t FROM g)"
        with t_env.execute_sql(query).collect() as rows:
            return sum(1 for r in rows if r[0] != r[1])

    unguarded = wrong_rows()
    from flink_ml_predict._pyflink_compat import install_async_row_copy_guard
    install_async_row_copy_guard()
    print(json.dumps({"unguarded": unguarded, "guarded": wrong_rows()}))
""")


def test_async_rows_are_mixed_up_without_the_guard_and_not_with_it() -> None:
    result = subprocess.run([sys.executable, "-c", PROGRAM], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env=subprocess_environ())
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    assert counts["unguarded"] > 0, "PyFlink no longer reuses rows: the guard may be removed"
    assert counts["guarded"] == 0
