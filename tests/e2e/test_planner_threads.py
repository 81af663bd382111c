"""A query planned on a gateway thread that did not create the TableEnvironment (FLINK-36298).

py4j serves each pooled connection on a Java thread of its own and opens a new one whenever the
pool is empty, as it is while another Python thread (a garbage collection on one of Beam's worker
threads during a job) holds the only idle one. Flink 2.3.0's optimizer then failed on that thread
with ``NullPointerException: metadataHandlerProvider``. Here the pool is emptied on purpose, so
the query below is planned on a brand-new Java thread.
"""

from __future__ import annotations

import pytest

from flink_ml_predict import execute_script
from tests.conftest import collect, model_ddl
from tests.fakes.openai_server import FaultInjectingServer

pytestmark = pytest.mark.flink


def test_a_query_is_planned_on_a_new_gateway_thread(t_env, server: FaultInjectingServer) -> None:
    from pyflink.java_gateway import get_gateway

    execute_script(t_env, model_ddl("m", server.base_url) + ";\n"
                   "CREATE TEMPORARY VIEW src(id, txt) AS VALUES (1, 'a'), (2, 'b');\n")
    gateway = get_gateway()
    thread = gateway.jvm.java.lang.Thread.currentThread

    before = thread().getId()
    pool = gateway._gateway_client.deque
    idle = []
    while pool:  # every idle connection taken: the next call opens a new one
        idle.append(pool.pop())
    try:
        fresh = thread().getId()
        # Planned over that connection (or, if another thread took it meanwhile, over yet
        # another new one): a Java thread that never created a planner either way.
        rows = sorted(collect(t_env, "SELECT id, content FROM ML_PREDICT(TABLE src, MODEL m, "
                                     "DESCRIPTOR(txt))"))
    finally:
        pool.extend(idle)
    assert fresh != before  # Java thread ids are never reused
    assert rows == [(1, "a"), (2, "b")]
