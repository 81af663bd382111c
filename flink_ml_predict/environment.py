"""Creating the TableEnvironment a script runs on: the embedded mini-cluster, or a running cluster.

On the mini-cluster PyFlink runs the Python functions in this process ("loopback"). On a cluster
they run in each TaskManager's Python worker, which needs an interpreter with this package
installed (``python.executable``, from the cluster's configuration unless given); and the
cluster's ``lib/`` from the pip distribution has no flink-python jar, so it is shipped with the
job (``pipeline.jars``), as ``flink run -py`` does.

Secrets. Two Flink loggers write a process's whole environment, API keys included: Beam's
``DefaultJobBundleFactory`` (the Python worker's environment: every variable of the JVM that
starts the worker, at INFO "Closing environment ... payload" and WARN "Error cleaning up servers")
and ``PythonEnvUtils`` (``flink run -py``: the client program's environment, at INFO). So:

* the JVM this module launches gets an environment without the secret variables (well-known
  provider key variables, the ``${NAME}`` variables a script references, and any variable with
  the same value as one of those): on the mini-cluster the Python functions run in this process
  ("loopback") and have the key from the model, so the JVM never needs them;
* those loggers are raised above the level they log at in the running JVM
  (:func:`silence_environment_logging`, also for a JVM that already runs), and
  :data:`LOG4J_SETTINGS` does the same in a cluster's ``log4j*.properties`` (TaskManagers start
  the workers with their own environment).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ._planner_threads import seed_planner_threads
from .errors import ConfigurationError

_LOGGER = logging.getLogger(__name__)
_WORKER_MODE = "_python_worker_execution_mode"  # read by PyFlink's TableEnvironment._open
PYTHON_WORKER_MODES = ("loopback", "process")
"""Where PyFlink runs the Python functions: in this process ("loopback", the embedded
mini-cluster's default) or in Python worker processes that Flink starts ("process", one per
parallel instance; a cluster's only mode)."""

KNOWN_SECRET_VARIABLES = ("OPENAI_API_KEY", "DASHSCOPE_API_KEY", "AZURE_OPENAI_API_KEY")
"""Provider key variables never passed to the JVM this package launches."""

ENVIRONMENT_LOGGERS = {
    "org.apache.beam.runners.fnexecution.control.DefaultJobBundleFactory": "ERROR",
    "org.apache.flink.client.python.PythonEnvUtils": "WARN",
}
"""Loggers that write a process's environment (API keys included), and the level that keeps
them from doing so."""

LOG4J_SETTINGS = (
    "# flink-ml-predict: these loggers write a process's whole environment (API keys included)\n"
    "# below these levels.\n"
    + "".join(f"logger.fmp_environment_{i}.name = {name}\n"
              f"logger.fmp_environment_{i}.level = {level}\n"
              for i, (name, level) in enumerate(ENVIRONMENT_LOGGERS.items()))
)
"""Lines to append to every ``log4j*.properties`` of a cluster that runs our functions."""

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def flink_python_jar() -> str:
    """file:// URI of the flink-python jar of the installed PyFlink distribution."""
    import pyflink

    home = os.environ.get("FLINK_HOME") or os.path.dirname(os.path.abspath(pyflink.__file__))
    jars = sorted(glob.glob(os.path.join(home, "opt", "flink-python*.jar")))
    if not jars:
        raise ConfigurationError(f"no flink-python jar under {home}/opt: is apache-flink "
                                 "installed?")
    return "file://" + jars[-1]


def remote_settings(jobmanager: str, config: Mapping[str, str]) -> dict[str, str]:
    """Flink options that submit jobs to the JobManager at HOST:PORT (its REST port)."""
    host, sep, port = jobmanager.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigurationError(f"--jobmanager must be HOST:PORT (the REST port, e.g. "
                                 f"localhost:8081), not '{jobmanager}'")
    jars = [j for j in config.get("pipeline.jars", "").split(";") if j]
    settings: dict[str, str] = {
        "execution.target": "remote",
        "rest.address": host,
        "rest.port": port,
        "pipeline.jars": ";".join([*jars, flink_python_jar()]),
    }
    # The TaskManagers' Python (python.executable) comes from the cluster's configuration unless
    # given (-D python.executable=...): a path of this machine may not exist on theirs.
    settings["python.client.executable"] = config.get("python.client.executable", sys.executable)
    return settings


def referenced_variables(script: str) -> set[str]:
    """Names of the ``${NAME}`` references in a script (wherever they are: a superset)."""
    return set(_REFERENCE.findall(script))


def secret_variables(environ: Mapping[str, str], names: Iterable[str] = ()) -> set[str]:
    """The variables of ``environ`` kept from the JVM: :data:`KNOWN_SECRET_VARIABLES`, ``names``
    and every variable whose value is one of theirs (the same key under another name)."""
    chosen = {n for n in (*KNOWN_SECRET_VARIABLES, *names) if environ.get(n)}
    values = {environ[n] for n in chosen}
    return chosen | {name for name, value in environ.items() if value and value in values}


@contextlib.contextmanager
def _launch_environment(hidden: Iterable[str], worker_mode: str | None) -> Iterator[None]:
    """os.environ without ``hidden`` (and with PyFlink's worker mode) while the JVM starts:
    PyFlink passes this process's environment to the JVM it launches."""
    saved = {name: os.environ.pop(name) for name in hidden if name in os.environ}
    saved_mode = os.environ.get(_WORKER_MODE)
    if worker_mode is not None:
        os.environ[_WORKER_MODE] = worker_mode
    try:
        yield
    finally:
        os.environ.update(saved)
        if worker_mode is not None:
            if saved_mode is None:
                os.environ.pop(_WORKER_MODE, None)
            else:
                os.environ[_WORKER_MODE] = saved_mode


def resolve_worker_mode(python_worker_mode: str | None, jobmanager: str | None) -> str | None:
    """The value for PyFlink's worker-mode variable (None: PyFlink's choice, loopback locally).

    Raises:
        ConfigurationError: an unknown mode, or "loopback" on a cluster.
    """
    if python_worker_mode is None:
        return None if jobmanager is None else "process"
    mode = python_worker_mode.strip().lower()
    if mode not in PYTHON_WORKER_MODES:
        raise ConfigurationError(f"python worker mode '{python_worker_mode}' is not one of "
                                 f"{', '.join(PYTHON_WORKER_MODES)}")
    if mode == "loopback" and jobmanager is not None:
        raise ConfigurationError(f"python worker mode 'loopback' runs the functions in this "
                                 f"process, which only the embedded mini-cluster can do; on the "
                                 f"cluster at {jobmanager} they run in its TaskManagers' workers "
                                 f"('process')")
    return mode


def silence_environment_logging() -> None:
    """Raises the :data:`ENVIRONMENT_LOGGERS` to their levels in the running JVM (idempotent).

    For a JVM that already holds a key in its environment: it is then never logged. Only effective
    when log4j is the JVM's logging backend (as in Flink's distribution); otherwise a warning.
    """
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    try:
        for name, level in ENVIRONMENT_LOGGERS.items():
            jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(
                name, jvm.org.apache.logging.log4j.Level.getLevel(level))
    except Exception as exc:  # noqa: BLE001 - py4j errors: another logging backend
        _LOGGER.warning("could not raise the level of %s (%s): Flink may log environment "
                        "variables; keep API keys out of the JVM's environment",
                        ", ".join(ENVIRONMENT_LOGGERS), exc)


def create_table_environment(*, batch: bool = False, parallelism: int | None = None,
                             config: Mapping[str, str] | None = None,
                             jobmanager: str | None = None,
                             secret_names: Iterable[str] = (),
                             datastream: bool = False,
                             python_worker_mode: str | None = None) -> Any:
    """A TableEnvironment on the embedded mini-cluster, or on the cluster at ``jobmanager``.

    Args:
        batch: batch mode instead of streaming.
        parallelism: default parallelism of the jobs (Flink's default when None).
        config: further Flink options, e.g. {"python.executable": "/opt/venv/bin/python"}.
        jobmanager: HOST:PORT of a running cluster's REST endpoint (None: embedded mini-cluster).
        secret_names: variables to keep from the JVM besides the known ones (e.g. the ``${NAME}``
            references of a script, see :func:`referenced_variables`); only effective when this
            call launches the JVM.
        datastream: a ``StreamTableEnvironment`` (streaming mode only), on which ML_PREDICT with
            ``'output-mode' = 'ALLOW_UNORDERED'`` emits results as they arrive (see
            :mod:`flink_ml_predict.unordered`); otherwise a plain ``TableEnvironment``, on which
            every call emits in input order.
        python_worker_mode: where the Python functions run on the mini-cluster: "loopback" (the
            default there: in this process, so parallel instances share its one CPU) or "process"
            (a Python worker process per parallel instance, started by Flink with
            ``python.executable``, default this interpreter: parallel instances use several
            cores; metrics are then only visible through Flink, not in this process). On a
            cluster (``jobmanager``) the functions always run in the TaskManagers' workers
            ("process"); "loopback" is refused there. PyFlink reads it when a TableEnvironment
            is created, so environments of one process may differ.

    Raises:
        ConfigurationError: an unknown ``python_worker_mode``, or "loopback" with ``jobmanager``.
    """
    from pyflink.table import EnvironmentSettings, StreamTableEnvironment, TableEnvironment

    worker_mode = resolve_worker_mode(python_worker_mode, jobmanager)
    options = dict(config or {})
    if jobmanager is not None:
        options.update(remote_settings(jobmanager, options))
    # On a cluster: PyFlink decides at creation, from the (then local) execution target, to run
    # Python functions in this process ("loopback"), and the cluster's workers would call back
    # here. Process mode runs them in the TaskManagers' Python workers, as `flink run -py` does.
    hidden = secret_variables(os.environ, secret_names)
    with _launch_environment(hidden, worker_mode):
        # Building the settings already starts the JVM (PyFlink's gateway) if none runs.
        settings = (EnvironmentSettings.in_batch_mode() if batch
                    else EnvironmentSettings.in_streaming_mode())
        if datastream and not batch:
            from pyflink.datastream import StreamExecutionEnvironment

            stream_env = StreamExecutionEnvironment.get_execution_environment()
            t_env = StreamTableEnvironment.create(stream_env, environment_settings=settings)
        else:
            t_env = TableEnvironment.create(settings)
    silence_environment_logging()
    seed_planner_threads(t_env)
    table_config = t_env.get_config()
    if parallelism is not None:
        table_config.set("parallelism.default", str(parallelism))
    for key, value in options.items():
        table_config.set(key, value)
    return t_env
