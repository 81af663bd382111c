"""Flink's planner on every Java thread that serves PyFlink's gateway (FLINK-36298, in 2.3.0).

Calcite keeps the planner's metadata provider in a thread-local
(``RelMetadataQueryBase.THREAD_PROVIDERS``), which Flink 2.3.0 sets only on the Java thread that
creates a TableEnvironment's planner. py4j serves each of its pooled connections on a Java thread
of its own, and the pool grows whenever two Python threads talk to the JVM at once, which happens
during every job on the embedded mini-cluster: the functions run in this process, on Beam's
threads, and a garbage collection there releases py4j objects through the gateway while the main
thread waits for the job. A later statement that the pool happens to serve on such a new thread
fails in the optimizer with ``NullPointerException: metadataHandlerProvider``. Flink fixed it after
2.3.0 by setting the thread-local where the planner reads it.

:func:`seed_planner_threads` does the same from this side: every connection of the gateway, on
its first use, first sets the thread-local of its Java thread to the provider Flink installs
(``JaninoRelMetadataProvider.of(FlinkDefaultRelMetadataProvider.INSTANCE)``).
"""

from __future__ import annotations

import logging
from typing import Any

_LOGGER = logging.getLogger(__name__)
_CALCITE = "org.apache.calcite.rel.metadata."
_FLINK_PROVIDER = "org.apache.flink.table.planner.plan.metadata.FlinkDefaultRelMetadataProvider"
_INSTALLED = "_flink_ml_predict_seeds_planner_threads"
_SEEDED = "_flink_ml_predict_planner_thread_seeded"
_ATTEMPTS = 8  # pooled connections tried before py4j gets to report a dead gateway


def seed_planner_threads(t_env: Any) -> None:
    """Makes each py4j connection of this process's gateway set Calcite's metadata provider on
    its Java thread before its first command (once per gateway; a no-op after that).

    Args:
        t_env: a TableEnvironment of the gateway (its planner's class loader has Calcite).
    """
    from py4j.protocol import (
        CALL_COMMAND_NAME,
        END_COMMAND_PART,
        SUCCESS,
        Py4JNetworkError,
        get_command_part,
    )
    from pyflink.java_gateway import get_gateway

    gateway = get_gateway()
    client = gateway._gateway_client
    if getattr(client, _INSTALLED, False):
        return
    if not callable(getattr(client, "_get_connection", None)):
        _LOGGER.debug("py4j client %s has no connection pool: planner threads not seeded",
                      type(client).__name__)
        return
    try:
        thread_local, provider = _metadata_objects(gateway, t_env)
    except Exception as exc:  # noqa: BLE001 - another planner: nothing to seed
        _LOGGER.debug("Calcite's metadata provider not found, planner threads not seeded: %s",
                      exc)
        return
    # thread_local.set(provider), sent on the connection itself: it runs on that connection's
    # Java thread. The command names the two Java objects by id only: they are kept referenced
    # below, or py4j would let the JVM release them.
    command = (CALL_COMMAND_NAME + thread_local._target_id + "\nset\n"
               + get_command_part(provider) + END_COMMAND_PART)
    get_connection = client._get_connection

    def seeded_connection() -> Any:
        for _ in range(_ATTEMPTS):
            connection = get_connection()
            if getattr(connection, _SEEDED, False):
                return connection
            try:
                answer = connection.send_command(command)
            except Py4JNetworkError:  # a pooled connection the JVM closed: take another one
                connection.close()
                continue
            if not answer.startswith(SUCCESS):  # the connection strips the leading '!'
                _LOGGER.warning("could not set the planner's metadata provider on a gateway "
                                "thread (%s): a query planned there may fail (FLINK-36298)",
                                answer[:200])
            setattr(connection, _SEEDED, True)
            return connection
        return get_connection()  # let py4j report what is wrong with the gateway

    seeded_connection.java_objects = (thread_local, provider)  # type: ignore[attr-defined]
    client._get_connection = seeded_connection
    setattr(client, _INSTALLED, True)
    _LOGGER.debug("py4j connections set Calcite's metadata provider on their Java threads")


def _metadata_objects(gateway: Any, t_env: Any) -> tuple[Any, Any]:
    """Calcite's THREAD_PROVIDERS and the value Flink's planner puts in it, from the planner's
    class loader (the planner is isolated from the application class path)."""
    loader = t_env._j_tenv.getPlanner().getClass().getClassLoader()
    java_class, java_object = gateway.jvm.java.lang.Class, gateway.jvm.java.lang.Object

    def array(element: Any, *items: Any) -> Any:
        values = gateway.new_array(element, len(items))
        for i, item in enumerate(items):
            values[i] = item
        return values

    thread_local = loader.loadClass(_CALCITE + "RelMetadataQueryBase").getField(
        "THREAD_PROVIDERS").get(None)
    flink = loader.loadClass(_FLINK_PROVIDER).getMethod(
        "INSTANCE", array(java_class)).invoke(None, array(java_object))
    janino_of = loader.loadClass(_CALCITE + "JaninoRelMetadataProvider").getMethod(
        "of", array(java_class, loader.loadClass(_CALCITE + "RelMetadataProvider")))
    return thread_local, janino_of.invoke(None, array(java_object, flink))
