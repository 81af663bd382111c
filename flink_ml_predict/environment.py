"""Creating the TableEnvironment a script runs on: the embedded mini-cluster, or a running cluster.

On the mini-cluster PyFlink runs the Python functions in this process ("loopback"). On a cluster
they run in each TaskManager's Python worker, which needs an interpreter with this package
installed (``python.executable``, from the cluster's configuration unless given); and the
cluster's ``lib/`` from the pip distribution has no flink-python jar, so it is shipped with the
job (``pipeline.jars``), as ``flink run -py`` does.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Mapping
from typing import Any

from .errors import ConfigurationError

_WORKER_MODE = "_python_worker_execution_mode"  # read by PyFlink's TableEnvironment._open


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


def create_table_environment(*, batch: bool = False, parallelism: int | None = None,
                             config: Mapping[str, str] | None = None,
                             jobmanager: str | None = None) -> Any:
    """A TableEnvironment on the embedded mini-cluster, or on the cluster at ``jobmanager``.

    Args:
        batch: batch mode instead of streaming.
        parallelism: default parallelism of the jobs (Flink's default when None).
        config: further Flink options, e.g. {"python.executable": "/opt/venv/bin/python"}.
        jobmanager: HOST:PORT of a running cluster's REST endpoint (None: embedded mini-cluster).
    """
    from pyflink.table import EnvironmentSettings, TableEnvironment

    options = dict(config or {})
    if jobmanager is not None:
        options.update(remote_settings(jobmanager, options))
    settings = (EnvironmentSettings.in_batch_mode() if batch
                else EnvironmentSettings.in_streaming_mode())
    if jobmanager is None:
        t_env = TableEnvironment.create(settings)
    else:
        # PyFlink decides at creation, from the (then local) execution target, to run Python
        # functions in this process ("loopback"), and the cluster's workers would call back here.
        # Process mode runs them in the TaskManagers' Python workers, as `flink run -py` does.
        saved = os.environ.get(_WORKER_MODE)
        os.environ[_WORKER_MODE] = "process"
        try:
            t_env = TableEnvironment.create(settings)
        finally:
            if saved is None:
                os.environ.pop(_WORKER_MODE, None)
            else:
                os.environ[_WORKER_MODE] = saved
    table_config = t_env.get_config()
    if parallelism is not None:
        table_config.set("parallelism.default", str(parallelism))
    for key, value in options.items():
        table_config.set(key, value)
    return t_env
