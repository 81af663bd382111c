"""Creating the TableEnvironment a script runs on (embedded mini-cluster by default)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def create_table_environment(*, batch: bool = False, parallelism: int | None = None,
                             config: Mapping[str, str] | None = None) -> Any:
    """A TableEnvironment on the embedded mini-cluster.

    Args:
        batch: batch mode instead of streaming.
        parallelism: default parallelism of the jobs (Flink's default when None).
        config: further Flink options, e.g. {"python.executable": "/opt/venv/bin/python"}.
    """
    from pyflink.table import EnvironmentSettings, TableEnvironment

    settings = (EnvironmentSettings.in_batch_mode() if batch
                else EnvironmentSettings.in_streaming_mode())
    t_env = TableEnvironment.create(settings)
    table_config = t_env.get_config()
    if parallelism is not None:
        table_config.set("parallelism.default", str(parallelism))
    for key, value in (config or {}).items():
        table_config.set(key, value)
    return t_env
