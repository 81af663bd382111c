"""CREATE MODEL and ML_PREDICT for PyFlink: OpenAI, Qwen (DashScope) and Bailian models from SQL.

Public API: :func:`register_model`, :func:`execute_script`, :func:`execute_sql`,
:func:`sql_query`, :func:`predict`, :class:`ScriptRunner`, :func:`create_table_environment`, the
error classes, and :class:`ModelSpec`.

The names that need PyFlink are imported on first use (module ``__getattr__``), so that importing
the package, or one of its Flink-free modules (the SQL text layer, model validation, the
command line's checks), does not pay for importing PyFlink.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from .errors import (
    AnswerFormatError,
    ConfigurationError,
    FlinkMlPredictError,
    ModelCallError,
    ModelDefinitionError,
    PermanentModelCallError,
    PredictCallError,
    RetryableModelCallError,
    SqlSyntaxError,
    StatementError,
)

if _TYPE_CHECKING:
    from .api import execute_script, execute_sql, predict, register_model, sql_query
    from .environment import create_table_environment
    from .model import ModelSpec
    from .runner import ScriptRunner

__version__ = "0.1.0"

# name -> the module that defines it, imported when the name is first used
_LAZY = {
    "execute_script": "api",
    "execute_sql": "api",
    "predict": "api",
    "register_model": "api",
    "sql_query": "api",
    "create_table_environment": "environment",
    "ModelSpec": "model",
    "ScriptRunner": "runner",
}

__all__ = [
    "AnswerFormatError",
    "ConfigurationError",
    "FlinkMlPredictError",
    "ModelCallError",
    "ModelDefinitionError",
    "ModelSpec",
    "PermanentModelCallError",
    "PredictCallError",
    "RetryableModelCallError",
    "ScriptRunner",
    "SqlSyntaxError",
    "StatementError",
    "__version__",
    "create_table_environment",
    "execute_script",
    "execute_sql",
    "predict",
    "register_model",
    "sql_query",
]


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
